// Fused SGD update (torch.optim.SGD semantics, dampening 0), one pass.
#include "cnnx/optim.h"
#include "ops/ops_common.h"

namespace cnnx {

void sgd_update(float* param, const float* grad, float* velocity, int64_t n, float lr,
                float momentum, bool nesterov, float weight_decay) {
  const int nt = ops_detail::threads_for_bytes(16.0 * n);
  const float wd = weight_decay, mu = momentum;
  if (mu == 0.0f || !velocity) {
    ops_detail::parallel_range(n, nt, [=](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float g = grad[i] + wd * param[i];
        param[i] -= lr * g;
      }
    });
    return;
  }
  ops_detail::parallel_range(n, nt, [=](int64_t b, int64_t e) {
    if (nesterov) {
      for (int64_t i = b; i < e; ++i) {
        const float g = grad[i] + wd * param[i];
        const float v = mu * velocity[i] + g;
        velocity[i] = v;
        param[i] -= lr * (g + mu * v);
      }
    } else {
      for (int64_t i = b; i < e; ++i) {
        const float g = grad[i] + wd * param[i];
        const float v = mu * velocity[i] + g;
        velocity[i] = v;
        param[i] -= lr * v;
      }
    }
  });
}

}  // namespace cnnx
