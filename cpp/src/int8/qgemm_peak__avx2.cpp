// Peak throughput of the AVX2 int8 kernel's step, vpmaddwd (two int16
// products per lane) + vpaddd, on 10 independent chains. Inline asm keeps
// the product inside the loop (its inputs never change, so the compiler
// would hoist it) and the chains in registers (GCC 12 spills them).
#include <immintrin.h>

#include <cstdint>

namespace cnnx {

int32_t maddwd_chains_ymm__avx2(int64_t iters) {
  __m256i acc[10];
  const __m256i a = _mm256_set1_epi16(3), b = _mm256_set1_epi16(-2);
#pragma GCC unroll 10
  for (int i = 0; i < 10; ++i) acc[i] = _mm256_set1_epi32(i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 10
    for (int i = 0; i < 10; ++i) {
      __m256i t;
      __asm__("vpmaddwd %3, %2, %1\n\tvpaddd %1, %0, %0" : "+x"(acc[i]), "=&x"(t) : "x"(a), "x"(b));
    }
  }
  __m256i s = acc[0];
#pragma GCC unroll 10
  for (int i = 1; i < 10; ++i) s = _mm256_add_epi32(s, acc[i]);
  return _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 7);
}

}  // namespace cnnx
