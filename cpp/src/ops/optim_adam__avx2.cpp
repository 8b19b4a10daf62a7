// Adam / AdamW update with AVX2 + FMA (8 floats per step, scalar tail).
#include <immintrin.h>

#include <cmath>

#include "ops/optim_kernels.h"

namespace cnnx {
namespace adam_avx2 {

void run(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamArgs& a) {
  const __m256 om1 = _mm256_set1_ps(a.one_minus_beta1), b2 = _mm256_set1_ps(a.beta2);
  const __m256 om2 = _mm256_set1_ps(a.one_minus_beta2), bc2 = _mm256_set1_ps(a.bc2_sqrt);
  const __m256 eps = _mm256_set1_ps(a.eps), nstep = _mm256_set1_ps(-a.step_size);
  const __m256 wd = _mm256_set1_ps(a.weight_decay);
  const __m256 decay = _mm256_set1_ps(a.decay);
  const bool dec = a.decoupled, l2 = !a.decoupled && a.weight_decay != 0.0f;
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    __m256 gi = _mm256_loadu_ps(g + i);
    __m256 pi = _mm256_loadu_ps(p + i);
    __m256 mi = _mm256_loadu_ps(m + i);
    __m256 vi = _mm256_loadu_ps(v + i);
    if (dec) pi = _mm256_mul_ps(pi, decay);
    if (l2) gi = _mm256_fmadd_ps(wd, pi, gi);
    mi = _mm256_fmadd_ps(om1, _mm256_sub_ps(gi, mi), mi);
    vi = _mm256_fmadd_ps(b2, vi, _mm256_mul_ps(_mm256_mul_ps(om2, gi), gi));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
    pi = _mm256_fmadd_ps(nstep, _mm256_div_ps(mi, denom), pi);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    _mm256_storeu_ps(p + i, pi);
  }
  const float fom1 = a.one_minus_beta1, fom2 = a.one_minus_beta2, fdecay = a.decay;
  for (; i < e; ++i) {
    float gi = g[i], pi = p[i];
    if (dec) pi *= fdecay;
    if (l2) gi = std::fma(a.weight_decay, pi, gi);
    const float mi = std::fma(fom1, gi - m[i], m[i]);
    const float vi = std::fma(a.beta2, v[i], fom2 * gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = std::fma(-a.step_size, mi / (std::sqrt(vi) / a.bc2_sqrt + a.eps), pi);
  }
}

}  // namespace adam_avx2
}  // namespace cnnx
