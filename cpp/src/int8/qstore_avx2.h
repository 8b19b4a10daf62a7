// The requantising store on ymm vectors (8 columns): the same float32
// operations as qstore_scalar.h, in the same order. Include only from files
// compiled with AVX2 + FMA flags.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "int8/qgemm_ukernel.h"

namespace cnnx {
namespace {  // see qgemm_ukernel.h
namespace qymm {

inline __m256i mask_of(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

// The per-column constants of 8 columns, loaded once per tile.
struct Columns {
  __m256i zcomp;
  __m256 mult, offs;
  __m256i mask;
  int n;  // valid columns, 1..8
  void load(const QStoreArgs& st, int j0, int n_total) {
    n = n_total - j0 < 8 ? n_total - j0 : 8;
    mask = mask_of(n);
    zcomp = _mm256_maskload_epi32(st.zcomp + j0, mask);
    mult = _mm256_maskload_ps(st.mult + j0, mask);
    offs = _mm256_maskload_ps(st.offs + j0, mask);
  }
};

// Eight int32 values in [0, 255] -> their low bytes in the low 8 bytes.
inline __m128i bytes_of(__m256i r) {
  const __m256i pick =
      _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                       -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i b = _mm256_shuffle_epi8(r, pick);
  return _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
}

inline void store(__m256i acc, const Columns& col, const QStoreArgs& st, void* row, int j0) {
  const __m256i a = _mm256_sub_epi32(acc, col.zcomp);
  if (st.out == QOutput::s32) {
    _mm256_maskstore_epi32(static_cast<int32_t*>(row) + j0, col.mask, a);
    return;
  }
  __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), col.mult, col.offs);
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(st.lo)), _mm256_set1_ps(st.hi));
  if (st.out == QOutput::f32) {
    _mm256_maskstore_ps(static_cast<float*>(row) + j0, col.mask, v);
  } else {
    const __m256i r = _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(st.zy));
    const __m128i b = bytes_of(r);
    uint8_t* dst = static_cast<uint8_t*>(row) + j0;
    if (col.n == 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), b);
    } else {
      alignas(16) uint8_t tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
      std::memcpy(dst, tmp, static_cast<size_t>(col.n));
    }
  }
}

}  // namespace qymm
}  // namespace
}  // namespace cnnx
