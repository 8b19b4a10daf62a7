// Adam / AdamW on AVX-512 (16 floats per step): the template in
// optim_adam_impl.h over common/vec_avx512.h.
#include <cstdint>

#include "common/vec_avx512.h"
#include "ops/optim_kernels.h"

namespace cnnx {
namespace adam_avx512 {
namespace {
#define CNNX_ADAM_V vec_avx512::V
#include "ops/optim_adam_impl.h"
#undef CNNX_ADAM_V
}  // namespace

void run(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamArgs& a) {
  adam_loop(p, g, m, v, b, e, a);
}

}  // namespace adam_avx512
}  // namespace cnnx
