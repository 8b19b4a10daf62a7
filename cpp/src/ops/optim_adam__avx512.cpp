// Adam / AdamW update with AVX-512 (16 floats per step, masked tail).
#include <immintrin.h>

#include "ops/optim_kernels.h"

namespace cnnx {
namespace adam_avx512 {

void run(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamArgs& a) {
  const __m512 om1 = _mm512_set1_ps(a.one_minus_beta1), b2 = _mm512_set1_ps(a.beta2);
  const __m512 om2 = _mm512_set1_ps(a.one_minus_beta2), bc2 = _mm512_set1_ps(a.bc2_sqrt);
  const __m512 eps = _mm512_set1_ps(a.eps), nstep = _mm512_set1_ps(-a.step_size);
  const __m512 wd = _mm512_set1_ps(a.weight_decay);
  const __m512 decay = _mm512_set1_ps(a.decay);
  const bool dec = a.decoupled, l2 = !a.decoupled && a.weight_decay != 0.0f;
  for (int64_t i = b; i < e; i += 16) {
    const int64_t left = e - i;
    const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                   : static_cast<__mmask16>((1u << left) - 1u);
    __m512 gi = _mm512_maskz_loadu_ps(k, g + i);
    __m512 pi = _mm512_maskz_loadu_ps(k, p + i);
    __m512 mi = _mm512_maskz_loadu_ps(k, m + i);
    __m512 vi = _mm512_maskz_loadu_ps(k, v + i);
    if (dec) pi = _mm512_mul_ps(pi, decay);
    if (l2) gi = _mm512_fmadd_ps(wd, pi, gi);
    mi = _mm512_fmadd_ps(om1, _mm512_sub_ps(gi, mi), mi);
    vi = _mm512_fmadd_ps(b2, vi, _mm512_mul_ps(_mm512_mul_ps(om2, gi), gi));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), eps);
    pi = _mm512_fmadd_ps(nstep, _mm512_div_ps(mi, denom), pi);
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
    _mm512_mask_storeu_ps(p + i, k, pi);
  }
}

}  // namespace adam_avx512
}  // namespace cnnx
