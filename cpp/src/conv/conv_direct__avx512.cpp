// AVX-512 register tiles of the direct convolution (see conv_direct.h):
// R pixels x NV zmm of output channels; per segment value: NV weight loads,
// R broadcasts, R*NV FMAs.
#include <immintrin.h>

#include "conv/conv_direct.h"

namespace cnnx {
namespace conv_detail {
namespace {

template <int R, int NV>
void tile(const DirectTile& t) {
  constexpr int CB = 16 * NV;
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    const int live = t.nch - 16 * j;
    mask[j] = live >= 16 ? 0xFFFF : (live <= 0 ? 0 : static_cast<__mmask16>((1u << live) - 1u));
  }
  __m512 acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      acc[r][j] = t.accumulate && r < t.m ? _mm512_maskz_loadu_ps(mask[j], t.y + r * t.ldy + 16 * j)
                                          : _mm512_setzero_ps();
  for (int64_t s = 0; s < t.nseg; ++s) {
    const float* p[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) p[r] = t.a[s * R + r];
    const float* w = t.ws[s];
    for (int64_t l = 0; l < t.len; ++l, w += CB) {
      __m512 wv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        wv[j] = _mm512_loadu_ps(w + 16 * j);
        asm("" : "+v"(wv[j]));  // one load, not a memory operand per FMA
      }
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        __m512 av = _mm512_set1_ps(p[r][l]);
        asm("" : "+v"(av));  // one broadcast, not an embedded one per FMA
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(av, wv[j], acc[r][j]);
      }
    }
  }
  if (!t.final) {
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      if (r >= t.m) break;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        _mm512_mask_storeu_ps(t.y + r * t.ldy + 16 * j, mask[j], acc[r][j]);
    }
    return;
  }
  __m512 bias[NV], scale[NV];
  const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(t.relu_max);
  const bool clamp_top = t.relu && t.relu_max < INFINITY;
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    bias[j] = t.bias ? _mm512_maskz_loadu_ps(mask[j], t.bias + 16 * j) : zero;
    scale[j] = t.scale ? _mm512_maskz_loadu_ps(mask[j], t.scale + 16 * j) : _mm512_set1_ps(1.0f);
  }
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
    if (r >= t.m) break;
    float* y = t.y + r * t.ldy;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      __m512 v = _mm512_fmadd_ps(acc[r][j], scale[j], bias[j]);
      if (t.res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[j], t.res + r * t.ldy + 16 * j));
      if (t.relu) v = _mm512_max_ps(zero, v);    // (zero, v): NaN passes, as std::max(v, 0)
      if (clamp_top) v = _mm512_min_ps(top, v);  // ReLU6; NaN passes
      _mm512_mask_storeu_ps(y + 16 * j, mask[j], v);
    }
  }
}

}  // namespace

// Measured on Zen 4 with pre-packed weights (ResNet-50's layers at batch 1):
// 6 x 64 runs at 86-98% of the FMA peak, 14 x 32 2-15% slower (more
// broadcasts per FMA).
DirectKernel direct_kernel_avx512(int64_t nout) {
  if (nout <= 16) return {tile<14, 1>, 14, 16};
  if (nout <= 32) return {tile<12, 2>, 12, 32};
  if (nout <= 48) return {tile<8, 3>, 8, 48};
  return {tile<6, 4>, 6, 64};
}

}  // namespace conv_detail
}  // namespace cnnx
