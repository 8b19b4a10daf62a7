// Fused Adam / AdamW update (torch.optim semantics), one pass over the four
// buffers. The portable loop is scalar-exact; the AVX2 / AVX-512 files hold
// intrinsic versions (the compiler does not vectorise sqrt without
// -fno-math-errno).
#include <cmath>

#include "cnnx/cpu.h"
#include "cnnx/optim.h"
#include "ops/ops_common.h"
#include "ops/optim_kernels.h"

namespace cnnx {

namespace adam_generic {
void run(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamArgs& a) {
  const float om1 = a.one_minus_beta1, om2 = a.one_minus_beta2;
  const float decay = a.decay;
  for (int64_t i = b; i < e; ++i) {
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
