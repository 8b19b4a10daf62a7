// Peak throughput of the AVX2 int8 kernel's step: vpmaddwd (two int16
// products per lane) + vpaddd, 12 updates per iteration. Each product reads
// the neighbouring accumulator, so the compiler cannot hoist it out of the
// loop; a step's latency (madd + add) stays below the 12 updates' issue time.
#include <immintrin.h>

#include <cstdint>

namespace cnnx {

int32_t maddwd_chains_ymm__avx2(int64_t iters) {
  __m256i acc[12], next[12];
  const __m256i b = _mm256_set1_epi16(-2);
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_epi32(i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) next[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(acc[(i + 1) % 12], b));
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = next[i];
  }
  __m256i s = acc[0];
#pragma GCC unroll 12
  for (int i = 1; i < 12; ++i) s = _mm256_add_epi32(s, acc[i]);
  return _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 7);
}

}  // namespace cnnx
