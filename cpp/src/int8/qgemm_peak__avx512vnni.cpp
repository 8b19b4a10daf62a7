// Peak vpdpbusd throughput: independent accumulator chains (enough to cover
// latency x throughput), on zmm and, for the EVEX test build of the AVX-VNNI
// kernel, on ymm. Inline asm keeps each accumulator in its register: with
// the intrinsic, GCC 12 copies the chains through other registers every
// iteration and the loop measures the copies.
#include <immintrin.h>

#include <cstdint>

namespace cnnx {

int32_t vnni_chains_zmm__avx512vnni(int64_t iters) {
  __m512i acc[12];
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc[i]) : "v"(a), "v"(b));
  }
  __m512i s = acc[0];
#pragma GCC unroll 12
  for (int i = 1; i < 12; ++i) s = _mm512_add_epi32(s, acc[i]);
  alignas(64) int32_t lanes[16];  // (GCC 12's _mm512_reduce_add_epi32 warns)
  _mm512_store_si512(lanes, s);
  return lanes[0] + lanes[15];
}

int32_t vnni_chains_ymm_evex__avx512vnni(int64_t iters) {
  __m256i acc[12];
  const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_epi32(i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc[i]) : "v"(a), "v"(b));
  }
  __m256i s = acc[0];
#pragma GCC unroll 12
  for (int i = 1; i < 12; ++i) s = _mm256_add_epi32(s, acc[i]);
  return _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 7);
}

}  // namespace cnnx
