// Depthwise convolution (groups == C_in, C_out = m*C_in): a direct loop with
// the channels innermost, contiguous in NHWC, so the compiler vectorises it
// over channels. Included by conv_depthwise.cpp (portable), *__avx2.cpp and
// *__avx512.cpp, each defining CNNX_DW_NS, so every ISA gets its own code.
// Output channel co = ci*m + j reads input channel ci.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnx/threading.h"
#include "conv/conv_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace conv_detail {
namespace CNNX_DW_NS {
namespace {

// acc[co] += x[co / m] * w[co] for co < C*m.
inline void madd(float* __restrict acc, const float* __restrict x, const float* __restrict w,
                 int64_t C, int64_t m) {
  if (m == 1) {
    for (int64_t c = 0; c < C; ++c) acc[c] += x[c] * w[c];
  } else {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < m; ++j) acc[c * m + j] += x[c] * w[c * m + j];
  }
}

}  // namespace

void forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                       float* y, Activation act) {
  const int64_t OH = s.out_h(), OW = s.out_w(), C = s.C_in, Co = s.C_out, m = Co / C;
  const int64_t rows = s.N * OH;
  const int nt = threads_for_flops(2.0 * rows * OW * s.KH * s.KW * Co);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / OH, oh = r % OH;
    const float* xn = x + n * s.H * s.W * C;
    for (int64_t ow = 0; ow < OW; ++ow) {
      float* acc = y + (r * OW + ow) * Co;
      if (bias)
        std::memcpy(acc, bias, sizeof(float) * Co);
      else
        std::memset(acc, 0, sizeof(float) * Co);
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
        if (ih < 0 || ih >= s.H) continue;
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
          if (iw < 0 || iw >= s.W) continue;
          madd(acc, xn + (ih * s.W + iw) * C, w + (kh * s.KW + kw) * Co, C, m);
        }
      }
      if (act == Activation::relu)
        for (int64_t c = 0; c < Co; ++c) acc[c] = std::max(acc[c], 0.0f);
    }
  }
}

void backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  const int64_t OH = s.out_h(), OW = s.out_w(), C = s.C_in, Co = s.C_out, m = Co / C;
  const int nt = threads_for_flops(2.0 * s.N * OH * OW * s.KH * s.KW * Co);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
  for (int64_t n = 0; n < s.N; ++n) {
    float* dxn = dx + n * s.H * s.W * C;
    std::memset(dxn, 0, sizeof(float) * s.H * s.W * C);
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const float* g = dy + ((n * OH + oh) * OW + ow) * Co;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
          if (ih < 0 || ih >= s.H) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
            if (iw < 0 || iw >= s.W) continue;
            float* d = dxn + (ih * s.W + iw) * C;
            const float* wk = w + (kh * s.KW + kw) * Co;
            if (m == 1) {
              for (int64_t c = 0; c < C; ++c) d[c] += g[c] * wk[c];
            } else {
              for (int64_t c = 0; c < C; ++c) {
                float v = 0.0f;
                for (int64_t j = 0; j < m; ++j) v += g[c * m + j] * wk[c * m + j];
                d[c] += v;
              }
            }
          }
        }
      }
  }
}

void backward_weights(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                                float* db) {
  const int64_t OH = s.out_h(), OW = s.out_w(), C = s.C_in, Co = s.C_out, m = Co / C;
  const int64_t rows = s.N * OH, wsize = s.KH * s.KW * Co;
  int nt = threads_for_flops(2.0 * rows * OW * s.KH * s.KW * Co);
  if (rows < nt) nt = static_cast<int>(std::max<int64_t>(1, rows));
  std::vector<float> part(static_cast<size_t>(nt * (wsize + Co)), 0.0f);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
  {
#ifdef CNNX_HAVE_OPENMP
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
#else
    const int t = 0, got = 1;
#endif
    float* pw = part.data() + t * (wsize + Co);
    float* pb = pw + wsize;
    for (int64_t r = rows * t / got; r < rows * (t + 1) / got; ++r) {
      const int64_t n = r / OH, oh = r % OH;
      const float* xn = x + n * s.H * s.W * C;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const float* g = dy + (r * OW + ow) * Co;
        for (int64_t c = 0; c < Co; ++c) pb[c] += g[c];
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
          if (ih < 0 || ih >= s.H) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
            if (iw < 0 || iw >= s.W) continue;
            // dw[kh, kw, co] += x[ci] * dy[co]: the same shape as madd with x and dy.
            madd(pw + (kh * s.KW + kw) * Co, xn + (ih * s.W + iw) * C, g, C, m);
          }
        }
      }
    }
  }
  for (int64_t i = 0; i < wsize; ++i) {
    float v = 0.0f;
    for (int t = 0; t < nt; ++t) v += part[t * (wsize + Co) + i];
    dw[i] = v;
  }
  if (db)
    for (int64_t c = 0; c < Co; ++c) {
      float v = 0.0f;
      for (int t = 0; t < nt; ++t) v += part[t * (wsize + Co) + wsize + c];
      db[c] = v;
    }
}

}  // namespace CNNX_DW_NS
}  // namespace conv_detail
}  // namespace cnnx
