// The requantising store on zmm vectors (16 columns): the same float32
// operations as qstore_scalar.h, in the same order. Include only from files
// compiled with AVX-512 (F, BW, VL) flags.
#pragma once
#include <immintrin.h>

#include "int8/qgemm_ukernel.h"

namespace cnnx {
namespace {  // see qgemm_ukernel.h
namespace qzmm {

inline __mmask16 mask_of(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// The per-column constants of 16 columns, loaded once per tile.
struct Columns {
  __m512i zcomp;
  __m512 mult, offs;
  __mmask16 mask;
  void load(const QStoreArgs& st, int j0, int n) {
    mask = mask_of(n - j0);
    zcomp = _mm512_maskz_loadu_epi32(mask, st.zcomp + j0);
    mult = _mm512_maskz_loadu_ps(mask, st.mult + j0);
    offs = _mm512_maskz_loadu_ps(mask, st.offs + j0);
  }
};

// Row `row` (element 0 = the tile's first column), columns j0..j0+15.
inline void store(__m512i acc, const Columns& col, const QStoreArgs& st, void* row, int j0) {
  const __m512i a = _mm512_sub_epi32(acc, col.zcomp);
  if (st.out == QOutput::s32) {
    _mm512_mask_storeu_epi32(static_cast<int32_t*>(row) + j0, col.mask, a);
    return;
  }
  __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), col.mult, col.offs);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(st.lo)), _mm512_set1_ps(st.hi));
  if (st.out == QOutput::f32) {
    _mm512_mask_storeu_ps(static_cast<float*>(row) + j0, col.mask, v);
  } else {
    // cvtps2dq rounds half to even (default MXCSR); values are in [0, 255]
    // after adding the zero point, so truncating to bytes is exact.
    const __m512i r = _mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(st.zy));
    _mm_mask_storeu_epi8(static_cast<uint8_t*>(row) + j0, col.mask, _mm512_cvtepi32_epi8(r));
  }
}

}  // namespace qzmm
}  // namespace
}  // namespace cnnx
