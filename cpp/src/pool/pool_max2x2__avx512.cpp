// 2x2 max pooling with stride 2 and no padding (the pool of LeNet and most
// CNNs), AVX-512, straight from the input: each output vector is the max of
// four input vectors, so one pass reads x once and writes y once. The
// general path (window tables, running maxima kept in y) costs about 2x this
// on the small maps of a LeNet or a small ResNet.
//
// NaN: a window holding a NaN gives NaN, as the general path does.
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

inline __m512 max4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // max_ps returns its second operand when either is NaN: mark NaNs apart.
  const __mmask16 nan = _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) |
                        _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q) |
                        _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q) |
                        _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
  const __m512 m = _mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d));
  return _mm512_mask_blend_ps(nan, m, _mm512_set1_ps(__builtin_nanf("")));
}

void rows(const float* x, float* y, int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow,
          int64_t r0, int64_t r1) {
  const int64_t full = c / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (c - full)) - 1u);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / oh, i = r % oh;
    const float* a = x + ((img * h + 2 * i) * w) * c;
    const float* b = a + w * c;
    float* out = y + r * ow * c;
    for (int64_t j = 0; j < ow; ++j) {
      const float* a0 = a + 2 * j * c;
      const float* b0 = b + 2 * j * c;
      float* o = out + j * c;
      for (int64_t k = 0; k < full; k += 16)
        _mm512_storeu_ps(o + k, max4(_mm512_loadu_ps(a0 + k), _mm512_loadu_ps(a0 + c + k),
                                     _mm512_loadu_ps(b0 + k), _mm512_loadu_ps(b0 + c + k)));
      if (tail)
        _mm512_mask_storeu_ps(o + full, tail,
                              max4(_mm512_maskz_loadu_ps(tail, a0 + full),
                                   _mm512_maskz_loadu_ps(tail, a0 + c + full),
                                   _mm512_maskz_loadu_ps(tail, b0 + full),
                                   _mm512_maskz_loadu_ps(tail, b0 + c + full)));
    }
  }
}

}  // namespace

void max_pool_2x2_avx512(const PoolShape& s, const float* x, float* y) {
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
