// AVX2 body of the 2x2 / stride 2 / unpadded max pool (see
// pool_max2x2__avx512.cpp): 8 lanes, channel tails through mask loads.
#include <immintrin.h>

#include <algorithm>

#include "cnnx/threading.h"
#include "pool/pool_max2x2.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace pool {
namespace {

inline __m256 max4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 nan = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q),
                                               _mm256_cmp_ps(b, b, _CMP_UNORD_Q)),
                                  _mm256_or_ps(_mm256_cmp_ps(c, c, _CMP_UNORD_Q),
                                               _mm256_cmp_ps(d, d, _CMP_UNORD_Q)));
  const __m256 m = _mm256_max_ps(_mm256_max_ps(a, b), _mm256_max_ps(c, d));
  return _mm256_blendv_ps(m, _mm256_set1_ps(__builtin_nanf("")), nan);
}

void rows(const float* x, float* y, int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow,
          int64_t r0, int64_t r1) {
  const int64_t full = c / 8 * 8;
  const int rem = static_cast<int>(c - full);
  const __m256i tail =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / oh, i = r % oh;
    const float* a = x + ((img * h + 2 * i) * w) * c;
    const float* b = a + w * c;
    float* out = y + r * ow * c;
    for (int64_t j = 0; j < ow; ++j) {
      const float* a0 = a + 2 * j * c;
      const float* b0 = b + 2 * j * c;
      float* o = out + j * c;
      for (int64_t k = 0; k < full; k += 8)
        _mm256_storeu_ps(o + k, max4(_mm256_loadu_ps(a0 + k), _mm256_loadu_ps(a0 + c + k),
                                     _mm256_loadu_ps(b0 + k), _mm256_loadu_ps(b0 + c + k)));
      if (rem)
        _mm256_maskstore_ps(o + full, tail,
                            max4(_mm256_maskload_ps(a0 + full, tail),
                                 _mm256_maskload_ps(a0 + c + full, tail),
                                 _mm256_maskload_ps(b0 + full, tail),
                                 _mm256_maskload_ps(b0 + c + full, tail)));
    }
  }
}

}  // namespace

void max_pool_2x2_avx2(const PoolShape& s, const float* x, float* y) {
  const int64_t oh = s.h / 2, ow = s.w / 2, total = s.n * oh;
  if (total <= 0 || ow <= 0 || s.c <= 0) return;
  const int nt = threads_for_flops(8.0 * s.n * s.h * s.w * s.c);
  if (nt <= 1) {
    rows(x, y, s.h, s.w, s.c, oh, ow, 0, total);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
    rows(x, y, s.h, s.w, s.c, oh, ow, total * t / T, total * (t + 1) / T);
  }
#endif
}

}  // namespace pool
}  // namespace cnnx
