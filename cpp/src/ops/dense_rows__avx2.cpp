// AVX2+FMA version of the few-row dense kernels (see dense_rows__avx512.cpp):
// columns in blocks of up to 32 (four ymm), tails through mask loads/stores.
#include <immintrin.h>

#include "ops/dense_rows.h"

namespace cnnx {
namespace ops_detail {
namespace {

// Lanes [0, rem) on (rem clipped to 0..8), as maskload/maskstore want them.
inline __m256i lane_mask(int64_t rem) {
  const int n = rem <= 0 ? 0 : (rem >= 8 ? 8 : static_cast<int>(rem));
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

template <int M, int NV>
void block(const float* x, int64_t in, const float* w, int64_t ld, int64_t j0, int64_t ncols,
           const float* bias, bool relu, float* y) {
  constexpr int KS = (M * NV >= 8) ? 1 : 2;  // partial sums over k (16 ymm registers)
  __m256i mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = lane_mask(ncols - 8 * v);
  __m256 acc[KS][M][NV];
  for (int s = 0; s < KS; ++s)
    for (int m = 0; m < M; ++m)
      for (int v = 0; v < NV; ++v) acc[s][m][v] = _mm256_setzero_ps();
  const float* wj = w + j0;
  int64_t k = 0;
  for (; k + KS <= in; k += KS) {
    for (int s = 0; s < KS; ++s) {
      const float* wk = wj + (k + s) * ld;
      __m256 bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = _mm256_maskload_ps(wk + 8 * v, mk[v]);
      for (int m = 0; m < M; ++m) {
        const __m256 a = _mm256_broadcast_ss(x + m * in + k + s);
        for (int v = 0; v < NV; ++v) acc[s][m][v] = _mm256_fmadd_ps(a, bv[v], acc[s][m][v]);
      }
    }
  }
  for (; k < in; ++k) {
    const float* wk = wj + k * ld;
    for (int v = 0; v < NV; ++v) {
      const __m256 bv = _mm256_maskload_ps(wk + 8 * v, mk[v]);
      for (int m = 0; m < M; ++m)
        acc[0][m][v] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + m * in + k), bv, acc[0][m][v]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int v = 0; v < NV; ++v) {
    const __m256 bb = bias ? _mm256_maskload_ps(bias + j0 + 8 * v, mk[v]) : zero;
    for (int m = 0; m < M; ++m) {
      __m256 r = acc[0][m][v];
      for (int s = 1; s < KS; ++s) r = _mm256_add_ps(r, acc[s][m][v]);
      r = _mm256_add_ps(r, bb);
      if (relu) r = _mm256_max_ps(zero, r);  // NaN passes, as std::max(v, 0)
      _mm256_maskstore_ps(y + m * ld + j0 + 8 * v, mk[v], r);
    }
  }
}

template <int M>
void rows(const float* x, const float* w, const float* b, float* y, int64_t in, int64_t out,
          int64_t c0, int64_t c1, bool relu) {
  int64_t j = c0;
  for (; j + 32 <= c1; j += 32) block<M, 4>(x, in, w, out, j, 32, b, relu, y);
  const int64_t rem = c1 - j;
  if (rem > 24) block<M, 4>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > 16) block<M, 3>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > 8) block<M, 2>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > 0) block<M, 1>(x, in, w, out, j, rem, b, relu, y);
}

// dw[k, j0:j0+32] = sum_m x[m, k] * dy[m, j0:j0+32] for every k.
template <int M>
void outer_block(const float* x, int64_t in, const float* dy, int64_t out, int64_t j0,
                 float* dw) {
  __m256i mk[4];
  for (int v = 0; v < 4; ++v) mk[v] = lane_mask(out - j0 - 8 * v);
  __m256 d[M][4];
  for (int m = 0; m < M; ++m)
    for (int v = 0; v < 4; ++v) d[m][v] = _mm256_maskload_ps(dy + m * out + j0 + 8 * v, mk[v]);
  for (int64_t k = 0; k < in; ++k) {
    __m256 r[4];
    const __m256 a0 = _mm256_broadcast_ss(x + k);
    for (int v = 0; v < 4; ++v) r[v] = _mm256_mul_ps(a0, d[0][v]);
    for (int m = 1; m < M; ++m) {
      const __m256 a = _mm256_broadcast_ss(x + m * in + k);
      for (int v = 0; v < 4; ++v) r[v] = _mm256_fmadd_ps(a, d[m][v], r[v]);
    }
    float* row = dw + k * out + j0;
    for (int v = 0; v < 4; ++v) _mm256_maskstore_ps(row + 8 * v, mk[v], r[v]);
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// dx[m, k] = dot(dy[m, :], w[k, :]) for k in [k0, k1).
template <int M>
void dots(const float* dy, const float* w, int64_t out, int64_t k0, int64_t k1, float* dx,
          int64_t in) {
  for (int64_t k = k0; k < k1; ++k) {
    const float* wk = w + k * out;
    __m256 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
    for (int64_t j = 0; j < out; j += 8) {
      const __m256i mk = lane_mask(out - j);
      const __m256 wv = _mm256_maskload_ps(wk + j, mk);
      for (int m = 0; m < M; ++m)
        acc[m] = _mm256_fmadd_ps(_mm256_maskload_ps(dy + m * out + j, mk), wv, acc[m]);
    }
    for (int m = 0; m < M; ++m) dx[m * in + k] = hsum(acc[m]);
  }
}

}  // namespace

void dense_rows_avx2(const float* x, const float* w, const float* b, float* y, int64_t M,
                     int64_t in, int64_t out, int64_t c0, int64_t c1, bool relu) {
  switch (M) {
    case 1: rows<1>(x, w, b, y, in, out, c0, c1, relu); return;
    case 2: rows<2>(x, w, b, y, in, out, c0, c1, relu); return;
    case 3: rows<3>(x, w, b, y, in, out, c0, c1, relu); return;
    default: rows<4>(x, w, b, y, in, out, c0, c1, relu); return;
  }
}

void dense_rows_backward_avx2(const float* dy, const float* x, const float* w, float* dx,
                              float* dw, int64_t M, int64_t in, int64_t out, int64_t c0,
                              int64_t c1, int64_t k0, int64_t k1) {
  if (dw) {
    for (int64_t j = c0; j < c1; j += 32) {
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

}  // namespace ops_detail
}  // namespace cnnx
