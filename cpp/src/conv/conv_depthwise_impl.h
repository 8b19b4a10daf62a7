// Depthwise convolution (groups == C_in, C_out = m*C_in): a direct loop with
// the channels innermost, contiguous in NHWC, so the compiler vectorises it
// over channels. Included by conv_depthwise.cpp (portable), *__avx2.cpp and
// *__avx512.cpp, each defining CNNX_DW_NS (and CNNX_DW_V, the vector width in
// floats), so every ISA gets its own code.
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

// Forward with channel multiplier 1, 3x3 or 5x5 filters, no dilation: a
// register-blocked kernel on channel vectors (V lanes). The generic loops
// below keep a pixel's sums in y and re-read them for every tap
// (load/store bound); this keeps P pixels x one channel vector in
// registers, with the filter's taps for that vector loaded once per row.
// Channel counts that are not a multiple of V end with one partial vector.
// Measured on one Zen 4 core (MobileNetV2's layers): 1.5-4x the generic
// loops at batch 1 (data in cache); with software prefetch of the next
// rows, 1.0-1.6x at batch 16-128 (memory-bound), except 0.85x at
// 112x112x96 stride 2. The same blocking for backward-data and -weights
// measured slower than the generic loops on memory-bound batches and is not
// used.
typedef float VT __attribute__((vector_size(4 * CNNX_DW_V)));
constexpr int V = CNNX_DW_V;
constexpr int P = 8;  // output pixels per register block

inline VT vload(const float* p, int64_t n) {
  VT v;
  if (n == V) {
    std::memcpy(&v, p, sizeof(VT));
  } else {
    v = VT{};
    std::memcpy(&v, p, sizeof(float) * n);
  }
  return v;
}
inline void vstore(float* p, const VT& v, int64_t n) {
  if (n == V)
    std::memcpy(p, &v, sizeof(VT));
  else
    std::memcpy(p, &v, sizeof(float) * n);
}

// Square 3x3 or 5x5 filters (the taps unroll into registers).
bool fast_forward_ok(const Conv2dShape& s) {
  return s.C_out == s.C_in && s.dilation_h == 1 && s.dilation_w == 1 && s.KH == s.KW &&
         (s.KH == 3 || s.KH == 5);
}

// np (<= P) output pixels from ow0 of one row, channels [c0, c0 + cn):
// xr0 points at the row's first tap row (kh = 0) and channel c0; CHECK:
// some taps fall outside the image columns.
template <int K, bool CHECK>
inline void dw_pixels(const Conv2dShape& s, const float* xr0, const VT* wv, const VT& b,
                      int64_t kh0, int64_t kh1, int64_t ow0, int np, int64_t cn, bool relu,
                      float* yr) {
  const int64_t C = s.C_in, sw = s.stride_w, rowp = s.W * C;
  const int64_t iw_first = ow0 * sw - s.pad_left;
  VT acc[P];
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) acc[p] = b;
#pragma GCC unroll 5
  for (int64_t kh = 0; kh < K; ++kh) {
    if (kh < kh0 || kh >= kh1) continue;
    const float* xr = xr0 + kh * rowp;
#pragma GCC unroll 5
    for (int64_t kw = 0; kw < K; ++kw) {
      const VT wk = wv[kh * K + kw];
      // Constant indices only (a run-time index would move acc to memory).
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) {
        if (p >= np) break;
        const int64_t iw = iw_first + p * sw + kw;
        if (CHECK && (iw < 0 || iw >= s.W)) continue;
        acc[p] += vload(xr + iw * C, cn) * wk;
      }
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) {
    if (p >= np) break;
    VT v = acc[p];
    if (relu) v = v < VT{} ? VT{} : v;  // NaN stays NaN, as std::max(v, 0)
    vstore(yr + p * C, v, cn);
  }
}

// Output rows [r0, r1) of all images (row r = image r / OH, row r % OH):
// for each channel vector, the row's pixels in blocks of P, without bounds
// checks between the columns whose taps all fall inside the image.
template <int K>
void fwd_rows(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
              bool relu, int64_t r0, int64_t r1) {
  const int64_t OH = s.out_h(), OW = s.out_w(), C = s.C_in;
  const int64_t sh = s.stride_h, sw = s.stride_w;
  // Columns [ow_lo, ow_hi) read no padding.
  const int64_t ow_lo = std::min(OW, ceil_div(s.pad_left, sw));
  const int64_t reach = s.W - K + s.pad_left;  // last first-tap column inside, times sw
  const int64_t ow_hi = std::max(ow_lo, std::min(OW, reach < 0 ? 0 : reach / sw + 1));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / OH, oh = r % OH;
    const int64_t kh0 = std::max<int64_t>(0, s.pad_top - oh * sh);
    const int64_t kh1 = std::min<int64_t>(K, s.H + s.pad_top - oh * sh);
    float* yrow = y + r * OW * C;
    // The input rows the next output row adds (sh of them), fetched into L2
    // a slice per channel vector while this row is computed.
    const int64_t next_ih = (oh + 1) * sh - s.pad_top + K - sh;
    const float* nx = (oh + 1 < OH && next_ih >= 0 && next_ih + sh <= s.H)
                          ? x + (n * s.H + next_ih) * s.W * C
                          : nullptr;
    const int64_t nbytes = sh * s.W * C * 4, nvec = ceil_div(C, V);
    for (int64_t c0 = 0; c0 < C; c0 += V) {
      const int64_t cn = std::min<int64_t>(V, C - c0);
      if (nx) {
        const int64_t i = c0 / V;
        const char* b = reinterpret_cast<const char*>(nx);
        for (int64_t o = nbytes * i / nvec; o < nbytes * (i + 1) / nvec; o += 64)
          __builtin_prefetch(b + o, 0, 2);
        // and the next output row's lines, for writing
        const char* yb = reinterpret_cast<const char*>(yrow + OW * C);
        const int64_t ybytes = OW * C * 4;
        for (int64_t o = ybytes * i / nvec; o < ybytes * (i + 1) / nvec; o += 64)
          __builtin_prefetch(yb + o, 1, 2);
      }
      // xr0: tap row kh = 0 of this output row (may lie outside the image:
      // only rows [kh0, kh1) are read).
      const float* xr0 = x + (n * s.H + oh * sh - s.pad_top) * s.W * C + c0;
      VT wv[K * K];
#pragma GCC unroll 25
      for (int64_t k = 0; k < K * K; ++k) wv[k] = vload(w + k * C + c0, cn);
      const VT b = bias ? vload(bias + c0, cn) : VT{};
      for (int64_t ow0 = 0; ow0 < ow_lo; ow0 += P)
        dw_pixels<K, true>(s, xr0, wv, b, kh0, kh1, ow0,
                           static_cast<int>(std::min<int64_t>(P, ow_lo - ow0)), cn, relu,
                           yrow + ow0 * C + c0);
      for (int64_t ow0 = ow_lo; ow0 < ow_hi; ow0 += P)
        dw_pixels<K, false>(s, xr0, wv, b, kh0, kh1, ow0,
                            static_cast<int>(std::min<int64_t>(P, ow_hi - ow0)), cn, relu,
                            yrow + ow0 * C + c0);
      for (int64_t ow0 = ow_hi; ow0 < OW; ow0 += P)
        dw_pixels<K, true>(s, xr0, wv, b, kh0, kh1, ow0,
                           static_cast<int>(std::min<int64_t>(P, OW - ow0)), cn, relu,
                           yrow + ow0 * C + c0);
    }
  }
}

}  // namespace

void forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
             Activation act) {
  const int64_t OH = s.out_h(), OW = s.out_w(), C = s.C_in, Co = s.C_out, m = Co / C;
  const int64_t rows = s.N * OH;
  const int nt = threads_for_flops(2.0 * rows * OW * s.KH * s.KW * Co);
  if (fast_forward_ok(s)) {
    const bool relu = act == Activation::relu;
    if (nt <= 1) {
      (s.KH == 3 ? fwd_rows<3> : fwd_rows<5>)(s, x, w, bias, y, relu, 0, rows);
      return;
    }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), got = omp_get_num_threads();
      (s.KH == 3 ? fwd_rows<3> : fwd_rows<5>)(s, x, w, bias, y, relu, rows * t / got,
                                              rows * (t + 1) / got);
    }
#endif
    return;
  }
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

void backward_weights(const Conv2dShape& s, const float* dy, const float* x, float* dw, float* db) {
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
