// AVX2 register tiles of the direct convolution (see conv_direct.h): R
// pixels x NV ymm of output channels within 16 ymm registers.
#include <immintrin.h>

#include "conv/conv_direct.h"

namespace cnnx {
namespace conv_detail {
namespace {

inline __m256i lane_mask(int count) {  // first `count` lanes on (0..8)
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), idx);
}

template <int R, int NV>
void tile(const DirectTile& t) {
  constexpr int CB = 8 * NV;
  __m256i mask[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    const int live = t.nch - 8 * j;
    mask[j] = lane_mask(live < 0 ? 0 : (live > 8 ? 8 : live));
  }
  __m256 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      acc[r][j] = t.accumulate && r < t.m ? _mm256_maskload_ps(t.y + r * t.ldy + 8 * j, mask[j])
                                          : _mm256_setzero_ps();
  for (int64_t s = 0; s < t.nseg; ++s) {
    const float* p[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) p[r] = t.a[s * R + r];
    const float* w = t.ws[s];
    for (int64_t l = 0; l < t.len; ++l, w += CB) {
      __m256 wv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        wv[j] = _mm256_loadu_ps(w + 8 * j);
        asm("" : "+x"(wv[j]));
      }
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m256 av = _mm256_broadcast_ss(p[r] + l);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm256_fmadd_ps(av, wv[j], acc[r][j]);
      }
    }
  }
  if (!t.final) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      if (r >= t.m) break;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) _mm256_maskstore_ps(t.y + r * t.ldy + 8 * j, mask[j], acc[r][j]);
    }
    return;
  }
  const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(t.relu_max);
  const bool clamp_top = t.relu && t.relu_max < INFINITY;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    if (r >= t.m) break;
    float* y = t.y + r * t.ldy;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const int live = t.nch - 8 * j;
      if (live <= 0) break;
      if (live >= 8) {
        const __m256 b = t.bias ? _mm256_loadu_ps(t.bias + 8 * j) : zero;
        __m256 v = t.scale ? _mm256_fmadd_ps(acc[r][j], _mm256_loadu_ps(t.scale + 8 * j), b)
                           : _mm256_add_ps(acc[r][j], b);
        if (t.res) v = _mm256_add_ps(v, _mm256_loadu_ps(t.res + r * t.ldy + 8 * j));
        if (t.relu) v = _mm256_max_ps(zero, v);
        if (clamp_top) v = _mm256_min_ps(top, v);  // ReLU6; NaN passes
        _mm256_storeu_ps(y + 8 * j, v);
      } else {
        const __m256i mk = lane_mask(live);
        const __m256 b = t.bias ? _mm256_maskload_ps(t.bias + 8 * j, mk) : zero;
        __m256 v = t.scale ? _mm256_fmadd_ps(acc[r][j], _mm256_maskload_ps(t.scale + 8 * j, mk), b)
                           : _mm256_add_ps(acc[r][j], b);
        if (t.res) v = _mm256_add_ps(v, _mm256_maskload_ps(t.res + r * t.ldy + 8 * j, mk));
        if (t.relu) v = _mm256_max_ps(zero, v);
        if (clamp_top) v = _mm256_min_ps(top, v);  // ReLU6; NaN passes
        _mm256_maskstore_ps(y + 8 * j, mk, v);
      }
    }
  }
}

}  // namespace

DirectKernel direct_kernel_avx2(int64_t nout) {
  if (nout <= 8) return {tile<12, 1>, 12, 8};
  return {tile<6, 2>, 6, 16};
}

}  // namespace conv_detail
}  // namespace cnnx
