// Dense forward for a handful of rows (batch 1..4, the inference case):
// y[m, :] = act(x[m, :] @ w + b) streams w once, straight from its
// row-major (in, out) memory. The packed GEMM would first copy all of w into
// panels, which for one row costs more than the product itself.
//
// Columns go in blocks of up to 64 (four zmm, the last ones masked); with
// few rows and columns the k loop keeps interleaved partial sums so that the
// FMAs do not wait on each other's latency.
#include <immintrin.h>

#include "ops/dense_rows.h"

namespace cnnx {
namespace ops_detail {
namespace {

inline __mmask16 lane_mask(int64_t rem) {
  return rem >= 16 ? static_cast<__mmask16>(0xFFFF)
                   : rem > 0 ? static_cast<__mmask16>((1u << rem) - 1u) : 0;
}

// Columns [j0, j0 + ncols), ncols <= 16 * NV; rows of w, y have stride ld.
template <int M, int NV>
void block(const float* x, int64_t in, const float* w, int64_t ld, int64_t j0, int64_t ncols,
           const float* bias, bool relu, float* y) {
  constexpr int KS = (M * NV >= 8) ? 1 : (M * NV >= 4 ? 2 : 4);  // partial sums over k
  __mmask16 mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = lane_mask(ncols - 16 * v);
  __m512 acc[KS][M][NV];
  for (int s = 0; s < KS; ++s)
    for (int m = 0; m < M; ++m)
      for (int v = 0; v < NV; ++v) acc[s][m][v] = _mm512_setzero_ps();
  const float* wj = w + j0;
  int64_t k = 0;
  for (; k + KS <= in; k += KS) {
#pragma GCC unroll 4
    for (int s = 0; s < KS; ++s) {
      const float* wk = wj + (k + s) * ld;
      __m512 bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(mk[v], wk + 16 * v);
      for (int m = 0; m < M; ++m) {
        const __m512 a = _mm512_set1_ps(x[m * in + k + s]);
        for (int v = 0; v < NV; ++v) acc[s][m][v] = _mm512_fmadd_ps(a, bv[v], acc[s][m][v]);
      }
    }
  }
  for (; k < in; ++k) {
    const float* wk = wj + k * ld;
    for (int v = 0; v < NV; ++v) {
      const __m512 bv = _mm512_maskz_loadu_ps(mk[v], wk + 16 * v);
      for (int m = 0; m < M; ++m)
        acc[0][m][v] = _mm512_fmadd_ps(_mm512_set1_ps(x[m * in + k]), bv, acc[0][m][v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int v = 0; v < NV; ++v) {
    const __m512 bb = bias ? _mm512_maskz_loadu_ps(mk[v], bias + j0 + 16 * v) : zero;
    for (int m = 0; m < M; ++m) {
      __m512 r = acc[0][m][v];
      for (int s = 1; s < KS; ++s) r = _mm512_add_ps(r, acc[s][m][v]);
      r = _mm512_add_ps(r, bb);
      if (relu) r = _mm512_max_ps(zero, r);  // NaN passes, as std::max(v, 0)
      _mm512_mask_storeu_ps(y + m * ld + j0 + 16 * v, mk[v], r);
    }
  }
}

template <int M>
void rows(const float* x, const float* w, const float* b, float* y, int64_t in, int64_t out,
          int64_t c0, int64_t c1, bool relu) {
  int64_t j = c0;
  for (; j + 64 <= c1; j += 64) block<M, 4>(x, in, w, out, j, 64, b, relu, y);
  const int64_t rem = c1 - j;
  if (rem > 48) block<M, 4>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > 32) block<M, 3>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > 16) block<M, 2>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > 0) block<M, 1>(x, in, w, out, j, rem, b, relu, y);
}

// dw[k, j0:j0+64] = sum_m x[m, k] * dy[m, j0:j0+64] for every k: dy's block
// stays in registers while dw streams out row by row.
template <int M>
void outer_block(const float* x, int64_t in, const float* dy, int64_t out, int64_t j0,
                 float* dw) {
  __mmask16 mk[4];
  for (int v = 0; v < 4; ++v) mk[v] = lane_mask(out - j0 - 16 * v);
  __m512 d[M][4];
  for (int m = 0; m < M; ++m)
    for (int v = 0; v < 4; ++v) d[m][v] = _mm512_maskz_loadu_ps(mk[v], dy + m * out + j0 + 16 * v);
  for (int64_t k = 0; k < in; ++k) {
    __m512 r[4];
    const __m512 a0 = _mm512_set1_ps(x[k]);
    for (int v = 0; v < 4; ++v) r[v] = _mm512_mul_ps(a0, d[0][v]);
    for (int m = 1; m < M; ++m) {
      const __m512 a = _mm512_set1_ps(x[m * in + k]);
      for (int v = 0; v < 4; ++v) r[v] = _mm512_fmadd_ps(a, d[m][v], r[v]);
    }
    float* row = dw + k * out + j0;
    for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(row + 16 * v, mk[v], r[v]);
  }
}

// dx[m, k] = dot(dy[m, :], w[k, :]) for k in [k0, k1).
template <int M>
void dots(const float* dy, const float* w, int64_t out, int64_t k0, int64_t k1, float* dx,
          int64_t in) {
  for (int64_t k = k0; k < k1; ++k) {
    const float* wk = w + k * out;
    __m512 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t j = 0; j < out; j += 16) {
      const __mmask16 mk = lane_mask(out - j);
      const __m512 wv = _mm512_maskz_loadu_ps(mk, wk + j);
      for (int m = 0; m < M; ++m)
        acc[m] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, dy + m * out + j), wv, acc[m]);
    }
    for (int m = 0; m < M; ++m) dx[m * in + k] = _mm512_reduce_add_ps(acc[m]);
  }
}

}  // namespace

void dense_rows_backward_avx512(const float* dy, const float* x, const float* w, float* dx,
                                float* dw, int64_t M, int64_t in, int64_t out, int64_t c0,
                                int64_t c1, int64_t k0, int64_t k1) {
  if (dw) {
    for (int64_t j = c0; j < c1; j += 64) {
      switch (M) {
        case 1: outer_block<1>(x, in, dy, out, j, dw); break;
        case 2: outer_block<2>(x, in, dy, out, j, dw); break;
        case 3: outer_block<3>(x, in, dy, out, j, dw); break;
        default: outer_block<4>(x, in, dy, out, j, dw); break;
      }
    }
  }
  if (dx) {
    switch (M) {
      case 1: dots<1>(dy, w, out, k0, k1, dx, in); break;
      case 2: dots<2>(dy, w, out, k0, k1, dx, in); break;
      case 3: dots<3>(dy, w, out, k0, k1, dx, in); break;
      default: dots<4>(dy, w, out, k0, k1, dx, in); break;
    }
  }
}

void dense_rows_avx512(const float* x, const float* w, const float* b, float* y, int64_t M,
                       int64_t in, int64_t out, int64_t c0, int64_t c1, bool relu) {
  switch (M) {
    case 1: rows<1>(x, w, b, y, in, out, c0, c1, relu); return;
    case 2: rows<2>(x, w, b, y, in, out, c0, c1, relu); return;
    case 3: rows<3>(x, w, b, y, in, out, c0, c1, relu); return;
    default: rows<4>(x, w, b, y, in, out, c0, c1, relu); return;
  }
}

}  // namespace ops_detail
}  // namespace cnnx
