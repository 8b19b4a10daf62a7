// Weight fingerprints: the portable build of weight_print_impl.h and the
// dispatch to the per-ISA builds.
#include "plan/weight_print.h"

#include "cnnx/cpu.h"

#define CNNX_WP_NS wp_generic
#define CNNX_WP_V 4
#include "plan/weight_print_impl.h"

namespace cnnx {
namespace plan_detail {
namespace wp_avx2 {
void fingerprint(const float* w, int64_t n, uint32_t* out);
}
namespace wp_avx512 {
void fingerprint(const float* w, int64_t n, uint32_t* out);
}

void weight_print(const float* w, int64_t n, uint32_t* out) {
  switch (active_isa()) {
    case Isa::avx512: return wp_avx512::fingerprint(w, n, out);
    case Isa::avx2: return wp_avx2::fingerprint(w, n, out);
    default: return wp_generic::fingerprint(w, n, out);
  }
}

}  // namespace plan_detail
}  // namespace cnnx
