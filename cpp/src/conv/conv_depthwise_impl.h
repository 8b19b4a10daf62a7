// Depthwise convolution (groups == C_in, C_out = m*C_in): a direct loop with
// the channels innermost, contiguous in NHWC, so the compiler vectorises it
// over channels. Included by conv_depthwise.cpp (portable), *__avx2.cpp and
// *__avx512.cpp, each defining CNNX_DW_NS (and CNNX_DW_V, the vector width in
// floats), so every ISA gets its own code.
// Output channel co = ci*m + j reads input channel ci.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
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
// Output pixels per register block: 8 accumulators beside the 9 taps of a
// 3x3 filter fit AVX-512's 32 registers; 16-register ISAs take 4.
constexpr int P = V >= 16 ? 8 : 4;

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
inline VT vload_full(const float* p) {
  VT v;
  std::memcpy(&v, p, sizeof(VT));
  return v;
}
inline void vstore(float* p, const VT& v, int64_t n) {
  if (n == V)
    std::memcpy(p, &v, sizeof(VT));
  else
    std::memcpy(p, &v, sizeof(float) * n);
}

// The activation in the store: y = min(max(v, lo), hi) (ReLU: [0, inf),
// ReLU6: [0, 6]); a NaN stays NaN, as std::max(v, 0) and the plan's clip.
struct Clamp {
  bool on;
  VT lo, hi;
  Clamp(float l, float h) : on(l > -INFINITY || h < INFINITY) {
    lo = VT{} + l;
    hi = VT{} + h;
  }
  VT operator()(VT v) const {
    if (!on) return v;
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
  }
};

// Square 3x3 or 5x5 filters (the taps unroll into registers).
bool fast_forward_ok(const Conv2dShape& s) {
  return s.C_out == s.C_in && s.dilation_h == 1 && s.dilation_w == 1 && s.KH == s.KW &&
         (s.KH == 3 || s.KH == 5);
}

// NP (<= P) output pixels of one row, one full channel vector, column
// stride S: the (NP-1)*S + K input columns of each tap row are loaded once
// and each feeds every accumulator that reads it (3x3 stride 1: 10 loads
// for 24 FMAs instead of 24 and 24). Only columns [jlo, jhi) lie inside the
// image (the others are zero padding: skipped). Every index is a
// compile-time constant, so the accumulators stay in registers. x: tap row
// 0, first tap column of pixel 0, this channel vector; rowp, C: the input's
// row and pixel strides.
template <int K, int S, int NP>
inline void dw_block(const float* x, int64_t rowp, int64_t C, const VT* wv, const VT& b,
                     int64_t kh0, int64_t kh1, int64_t jlo, int64_t jhi, const Clamp& act,
                     float* yr) {
  constexpr int J = (NP - 1) * S + K;
  VT acc[NP];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p) acc[p] = b;
#pragma GCC unroll 5
  for (int kh = 0; kh < K; ++kh) {
    if (kh < kh0 || kh >= kh1) continue;
    const float* xr = x + kh * rowp;
#pragma GCC unroll 40
    for (int j = 0; j < J; ++j) {
      if (j < jlo || j >= jhi) continue;
      const VT v = vload_full(xr + j * C);
#pragma GCC unroll 5
      for (int kw = 0; kw < K; ++kw) {
        const int d = j - kw;
        if (d >= 0 && d % S == 0 && d / S < NP) acc[d / S] += v * wv[kh * K + kw];
      }
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p) {
    const VT v = act(acc[p]);
    std::memcpy(yr + p * C, &v, sizeof(VT));
  }
}

// A row's pixels [0, OW) of one full channel vector, in blocks of P and a
// last block of the rest.
template <int K, int S>
void dw_row(const float* xr0, int64_t W, int64_t pad_left, int64_t OW, int64_t rowp, int64_t C,
            const VT* wv, const VT& b, int64_t kh0, int64_t kh1, const Clamp& act, float* yrow) {
  auto block = [&](auto np_const, int64_t ow0) {
    constexpr int NP = decltype(np_const)::value;
    constexpr int J = (NP - 1) * S + K;
    const int64_t iw0 = ow0 * S - pad_left;
    const int64_t jlo = std::max<int64_t>(0, -iw0), jhi = std::min<int64_t>(J, W - iw0);
    dw_block<K, S, NP>(xr0 + iw0 * C, rowp, C, wv, b, kh0, kh1, jlo, jhi, act, yrow + ow0 * C);
  };
  int64_t ow0 = 0;
  for (; ow0 + P <= OW; ow0 += P) block(std::integral_constant<int, P>{}, ow0);
  switch (OW - ow0) {
    case 1: block(std::integral_constant<int, 1>{}, ow0); break;
    case 2: block(std::integral_constant<int, 2>{}, ow0); break;
    case 3: block(std::integral_constant<int, 3>{}, ow0); break;
    case 4: block(std::integral_constant<int, (P > 4 ? 4 : 1)>{}, ow0); break;
    case 5: block(std::integral_constant<int, (P > 5 ? 5 : 1)>{}, ow0); break;
    case 6: block(std::integral_constant<int, (P > 6 ? 6 : 1)>{}, ow0); break;
    case 7: block(std::integral_constant<int, (P > 7 ? 7 : 1)>{}, ow0); break;
    default: break;
  }
}

// np (<= P) output pixels from ow0 of one row, channels [c0, c0 + cn):
// xr0 points at the row's first tap row (kh = 0) and channel c0; CHECK:
// some taps fall outside the image columns. (The general case: channel
// counts that leave a partial vector, strides above 2.)
template <int K, bool CHECK>
inline void dw_pixels(const Conv2dShape& s, const float* xr0, const VT* wv, const VT& b,
                      int64_t kh0, int64_t kh1, int64_t ow0, int np, int64_t cn, const Clamp& act,
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
    vstore(yr + p * C, act(acc[p]), cn);
  }
}

// Output rows [r0, r1) of all images (row r = image r / OH, row r % OH):
// for each channel vector, the row's pixels in blocks of P, without bounds
// checks between the columns whose taps all fall inside the image.
template <int K>
void fwd_rows(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
              const Clamp& act, int64_t r0, int64_t r1) {
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
      if (cn == V && (sw == 1 || sw == 2)) {
        (sw == 1 ? dw_row<K, 1> : dw_row<K, 2>)(xr0, s.W, s.pad_left, OW, s.W * C, C, wv, b, kh0,
                                                kh1, act, yrow + c0);
        continue;
      }
      for (int64_t ow0 = 0; ow0 < ow_lo; ow0 += P)
        dw_pixels<K, true>(s, xr0, wv, b, kh0, kh1, ow0,
                           static_cast<int>(std::min<int64_t>(P, ow_lo - ow0)), cn, act,
                           yrow + ow0 * C + c0);
      for (int64_t ow0 = ow_lo; ow0 < ow_hi; ow0 += P)
        dw_pixels<K, false>(s, xr0, wv, b, kh0, kh1, ow0,
                            static_cast<int>(std::min<int64_t>(P, ow_hi - ow0)), cn, act,
                            yrow + ow0 * C + c0);
      for (int64_t ow0 = ow_hi; ow0 < OW; ow0 += P)
        dw_pixels<K, true>(s, xr0, wv, b, kh0, kh1, ow0,
                           static_cast<int>(std::min<int64_t>(P, OW - ow0)), cn, act,
                           yrow + ow0 * C + c0);
    }
  }
}

}  // namespace

void forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
             float lo, float hi) {
  const int64_t OH = s.out_h(), OW = s.out_w(), C = s.C_in, Co = s.C_out, m = Co / C;
  const int64_t rows = s.N * OH;
  const int nt = threads_for_flops(2.0 * rows * OW * s.KH * s.KW * Co);
  if (fast_forward_ok(s)) {
    const Clamp act(lo, hi);
    if (nt <= 1) {
      (s.KH == 3 ? fwd_rows<3> : fwd_rows<5>)(s, x, w, bias, y, act, 0, rows);
      return;
    }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), got = omp_get_num_threads();
      (s.KH == 3 ? fwd_rows<3> : fwd_rows<5>)(s, x, w, bias, y, act, rows * t / got,
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
      if (lo > -INFINITY || hi < INFINITY)
        for (int64_t c = 0; c < Co; ++c) {
          const float v = acc[c] < lo ? lo : acc[c];  // NaN stays NaN
          acc[c] = v > hi ? hi : v;
        }
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
