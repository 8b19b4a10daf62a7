// Peak throughput of vpdpbusd in its VEX (AVX-VNNI) form on ymm (inline asm,
// see qgemm_peak__avx512vnni.cpp).
#include <immintrin.h>

#include <cstdint>

namespace cnnx {

int32_t vnni_chains_ymm__avxvnni(int64_t iters) {
  __m256i acc[12];
  const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_epi32(i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i)
      __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc[i]) : "x"(a), "x"(b));
  }
  __m256i s = acc[0];
#pragma GCC unroll 12
  for (int i = 1; i < 12; ++i) s = _mm256_add_epi32(s, acc[i]);
  return _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 7);
}

}  // namespace cnnx
