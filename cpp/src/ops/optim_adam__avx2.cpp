// Adam / AdamW on AVX2 + FMA (8 floats per step): the template in
// optim_adam_impl.h over common/vec_avx2.h.
#include <cstdint>

#include "common/vec_avx2.h"
#include "ops/optim_kernels.h"

namespace cnnx {
namespace adam_avx2 {
namespace {
#define CNNX_ADAM_V vec_avx2::V
#include "ops/optim_adam_impl.h"
#undef CNNX_ADAM_V
}  // namespace

void run(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamArgs& a) {
  adam_loop(p, g, m, v, b, e, a);
}

}  // namespace adam_avx2
}  // namespace cnnx
