// Per-ISA Adam loops (optim_adam*.cpp) and their common argument pack.
#pragma once
#include <cstdint>

namespace cnnx {

struct AdamArgs {
  float lr, beta1, beta2, eps, weight_decay;
  bool decoupled;
  float step_size;        // lr / (1 - beta1^step)
  float bc2_sqrt;         // sqrt(1 - beta2^step)
  float one_minus_beta1;  // rounded from double
  float one_minus_beta2;
  float decay;  // 1 - lr * weight_decay (AdamW)
};

using AdamKernel = void (*)(float* p, const float* g, float* m, float* v, int64_t b, int64_t e,
                            const AdamArgs& a);

namespace adam_generic {
void run(float*, const float*, float*, float*, int64_t, int64_t, const AdamArgs&);
}
namespace adam_avx2 {
void run(float*, const float*, float*, float*, int64_t, int64_t, const AdamArgs&);
}
namespace adam_avx512 {
void run(float*, const float*, float*, float*, int64_t, int64_t, const AdamArgs&);
}

}  // namespace cnnx
