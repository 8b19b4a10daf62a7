// Fused Adam / AdamW update (torch.optim semantics), one pass over the four
// buffers. The portable loop is scalar-exact; the AVX2 / AVX-512 files hold
// intrinsic versions (the compiler does not vectorise sqrt without
// -fno-math-errno).
#include <cmath>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cnnx/cpu.h"
#include "cnnx/optim.h"
#include "ops/ops_common.h"
#include "ops/optim_kernels.h"

namespace cnnx {

namespace adam_generic {
void run(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamArgs& a) {
  const float om1 = a.one_minus_beta1, om2 = a.one_minus_beta2;
  const float decay = a.decay;
  int64_t i = b;
#if defined(__SSE2__)
  // x86-64 baseline: 4 floats at a time (sqrt and div are exact in SSE, so
  // the results equal the scalar loop's).
  {
    const __m128 vom1 = _mm_set1_ps(om1), vb2 = _mm_set1_ps(a.beta2), vom2 = _mm_set1_ps(om2);
    const __m128 vbc2 = _mm_set1_ps(a.bc2_sqrt), veps = _mm_set1_ps(a.eps);
    const __m128 vstep = _mm_set1_ps(a.step_size), vwd = _mm_set1_ps(a.weight_decay);
    const __m128 vdecay = _mm_set1_ps(decay);
    for (; i + 4 <= e; i += 4) {
      __m128 gi = _mm_loadu_ps(g + i), pi = _mm_loadu_ps(p + i);
      __m128 mi = _mm_loadu_ps(m + i), vi = _mm_loadu_ps(v + i);
      if (a.decoupled) {
        pi = _mm_mul_ps(pi, vdecay);
      } else {
        gi = _mm_add_ps(gi, _mm_mul_ps(vwd, pi));
      }
      mi = _mm_add_ps(mi, _mm_mul_ps(vom1, _mm_sub_ps(gi, mi)));
      vi = _mm_add_ps(_mm_mul_ps(vb2, vi), _mm_mul_ps(_mm_mul_ps(vom2, gi), gi));
      const __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc2), veps);
      pi = _mm_sub_ps(pi, _mm_mul_ps(vstep, _mm_div_ps(mi, denom)));
      _mm_storeu_ps(m + i, mi);
      _mm_storeu_ps(v + i, vi);
      _mm_storeu_ps(p + i, pi);
    }
  }
#endif
  for (; i < e; ++i) {
    float gi = g[i], pi = p[i];
    if (a.decoupled) {
      pi *= decay;
    } else {
      gi += a.weight_decay * pi;
    }
    const float mi = m[i] + om1 * (gi - m[i]);
    const float vi = a.beta2 * v[i] + om2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / a.bc2_sqrt + a.eps;
    p[i] = pi - a.step_size * (mi / denom);
  }
}
}  // namespace adam_generic

void adam_update(float* param, const float* grad, float* m, float* v, int64_t n, int64_t step,
                 double lr, double beta1, double beta2, double eps, double weight_decay,
                 bool decoupled) {
  if (n <= 0 || step < 1) return;
  AdamArgs a;
  a.lr = static_cast<float>(lr);
  a.beta1 = static_cast<float>(beta1);
  a.beta2 = static_cast<float>(beta2);
  a.eps = static_cast<float>(eps);
  a.weight_decay = static_cast<float>(weight_decay);
  a.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  a.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  a.decay = static_cast<float>(1.0 - lr * weight_decay);
  a.decoupled = decoupled;
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  a.step_size = static_cast<float>(lr / bc1);
  a.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  AdamKernel k = adam_generic::run;
  switch (active_isa()) {
    case Isa::avx512: k = adam_avx512::run; break;
    case Isa::avx2: k = adam_avx2::run; break;
    default: break;
  }
  const int nt = ops_detail::threads_for_bytes(28.0 * n);
  ops_detail::parallel_range(n, nt, [&](int64_t b, int64_t e) { k(param, grad, m, v, b, e, a); });
}

}  // namespace cnnx
