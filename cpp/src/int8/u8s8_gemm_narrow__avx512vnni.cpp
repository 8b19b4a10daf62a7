// AVX512-VNNI micro-kernels for narrow layers (few output channels), where
// the default 8x32 tile would compute mostly padding columns:
//   16x16:  16 rows x 16 columns, one zmm per row (layers of 9..16 outputs);
//   16x8p:  16 rows x 8 columns, each zmm holding TWO rows' 8 columns (lanes
//           0-7 row 2i, lanes 8-15 row 2i+1), so a layer with 8 outputs
//           (LeNet's first) uses every lane. The packed panel has each step's
//           8 columns twice (QGemmConfig::dup = 2); the activations of the
//           two rows are broadcast into the two halves of one vector (measured
//           on LeNet's first layer, batch 64: 391 us, against 410 us for 16
//           rows of one ymm each and 540 us for the 8x32 tile).
// Same contract and store arithmetic as u8s8_gemm__avx512vnni.cpp.
#include <immintrin.h>

#include <cstring>

#include "int8/qstore_avx512.h"

namespace cnnx {
namespace {

inline size_t out_bytes(QOutput o) { return o == QOutput::u8 ? 1 : 4; }

inline int32_t word_at(const uint8_t* p) {
  int32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// MR rows x 16 columns.
template <int MR>
void gemm_rows16(int64_t seg_steps, int nseg, const uint8_t* const* a, int a_stride,
                 const uint8_t* b, void* c, int64_t ldc, int m, int n, const QStoreArgs& st) {
  __m512i acc[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_si512();
  for (int s = 0; s < nseg; ++s, a += a_stride) {
    const uint8_t* row[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) row[i] = a[i];
    for (int64_t q = 0; q < seg_steps; ++q) {
      const __m512i bv = _mm512_load_si512(b);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i)
        acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_set1_epi32(word_at(row[i] + q * 4)), bv);
      b += 64;
    }
  }
  const size_t row_bytes = static_cast<size_t>(ldc) * out_bytes(st.out);
  qzmm::Columns col;
  col.load(st, 0, n);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    qzmm::store(acc[i], col, st, static_cast<uint8_t*>(c) + i * row_bytes, 0);
  }
}

// 2*PAIRS rows x 8 columns, rows 2p and 2p+1 in the halves of acc[p].
template <int PAIRS>
void gemm_pairs8(int64_t seg_steps, int nseg, const uint8_t* const* a, int a_stride,
                 const uint8_t* b, void* c, int64_t ldc, int m, int n, const QStoreArgs& st) {
  constexpr __mmask16 kHigh = 0xFF00;
  __m512i acc[PAIRS];
#pragma GCC unroll 8
  for (int p = 0; p < PAIRS; ++p) acc[p] = _mm512_setzero_si512();
  for (int s = 0; s < nseg; ++s, a += a_stride) {
    const uint8_t* row[2 * PAIRS];
#pragma GCC unroll 16
    for (int i = 0; i < 2 * PAIRS; ++i) row[i] = a[i];
    for (int64_t q = 0; q < seg_steps; ++q) {
      const __m512i bv = _mm512_load_si512(b);
#pragma GCC unroll 8
      for (int p = 0; p < PAIRS; ++p) {
        __m512i av = _mm512_set1_epi32(word_at(row[2 * p] + q * 4));
        av = _mm512_mask_set1_epi32(av, kHigh, word_at(row[2 * p + 1] + q * 4));
        acc[p] = _mm512_dpbusd_epi32(acc[p], av, bv);
      }
      b += 64;
    }
  }
  // The 8 columns' constants in both halves of a vector (a lane-masked load
  // of 16 values from the same 8: no vbroadcasti32x8, which GCC 12's header
  // builds from an uninitialised vector).
  const __mmask8 m8 = static_cast<__mmask8>(n >= 8 ? 0xFF : (1u << n) - 1u);
  const __mmask16 both = static_cast<__mmask16>(m8 | (m8 << 8));
  const __m512i twice = _mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i zcomp = _mm512_maskz_permutexvar_epi32(
      both, twice, _mm512_castsi256_si512(_mm256_maskz_loadu_epi32(m8, st.zcomp)));
  const __m512 mult = _mm512_maskz_permutexvar_ps(
      both, twice, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, st.mult)));
  const __m512 offs = _mm512_maskz_permutexvar_ps(
      both, twice, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, st.offs)));
  const __m512 lo = _mm512_set1_ps(st.lo), hi = _mm512_set1_ps(st.hi);
  const size_t row_bytes = static_cast<size_t>(ldc) * out_bytes(st.out);
  uint8_t* out = static_cast<uint8_t*>(c);
#pragma GCC unroll 8
  for (int p = 0; p < PAIRS; ++p) {
    if (2 * p >= m) break;
    const bool second = 2 * p + 1 < m;
    uint8_t* r0 = out + (2 * p) * row_bytes;
    uint8_t* r1 = r0 + row_bytes;
    const __m512i av = _mm512_sub_epi32(acc[p], zcomp);
    if (st.out == QOutput::s32) {
      _mm256_mask_storeu_epi32(r0, m8, _mm512_castsi512_si256(av));
      if (second) _mm256_mask_storeu_epi32(r1, m8, _mm512_extracti32x8_epi32(av, 1));
      continue;
    }
    __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(av), mult, offs);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    if (st.out == QOutput::f32) {
      _mm256_mask_storeu_ps(reinterpret_cast<float*>(r0), m8, _mm512_castps512_ps256(v));
      if (second)
        _mm256_mask_storeu_ps(reinterpret_cast<float*>(r1), m8, _mm512_extractf32x8_ps(v, 1));
    } else {
      const __m512i r = _mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(st.zy));
      const __m128i bytes = _mm512_cvtepi32_epi8(r);
      _mm_mask_storeu_epi8(r0, m8, bytes);
      if (second) _mm_mask_storeu_epi8(r1, m8, _mm_srli_si128(bytes, 8));
    }
  }
}

const QGemmUkernel kRows16[16] = {
    gemm_rows16<1>,  gemm_rows16<2>,  gemm_rows16<3>,  gemm_rows16<4>,
    gemm_rows16<5>,  gemm_rows16<6>,  gemm_rows16<7>,  gemm_rows16<8>,
    gemm_rows16<9>,  gemm_rows16<10>, gemm_rows16<11>, gemm_rows16<12>,
    gemm_rows16<13>, gemm_rows16<14>, gemm_rows16<15>, gemm_rows16<16>};
// m rows need ceil(m / 2) pairs.
const QGemmUkernel kPairs8[16] = {gemm_pairs8<1>, gemm_pairs8<1>, gemm_pairs8<2>, gemm_pairs8<2>,
                                  gemm_pairs8<3>, gemm_pairs8<3>, gemm_pairs8<4>, gemm_pairs8<4>,
                                  gemm_pairs8<5>, gemm_pairs8<5>, gemm_pairs8<6>, gemm_pairs8<6>,
                                  gemm_pairs8<7>, gemm_pairs8<7>, gemm_pairs8<8>, gemm_pairs8<8>};

}  // namespace

const QGemmConfig kQGemmAvx512VnniN16 = {
    "u8s8_gemm_16x16__avx512vnni", 16, 16, 1, gemm_rows16<16>, kRows16};
const QGemmConfig kQGemmAvx512VnniN8 = {
    "u8s8_gemm_16x8p__avx512vnni", 16, 8, 1, gemm_pairs8<8>, kPairs8, 2};

}  // namespace cnnx
