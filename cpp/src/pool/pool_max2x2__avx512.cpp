// The 2x2 / stride 2 / unpadded max pool on AVX-512: the template in
// pool_max2x2_impl.h over common/vec_avx512.h.
#include <cstdint>

#include "cnnx/threading.h"
#include "common/vec_avx512.h"
#include "pool/pool_max2x2.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace pool {
namespace {
#define CNNX_POOL_MAX2X2_V vec_avx512::V
#include "pool/pool_max2x2_impl.h"
#undef CNNX_POOL_MAX2X2_V
}  // namespace

void max_pool_2x2_avx512(const PoolShape& s, const float* x, float* y) { max_pool_2x2(s, x, y); }

}  // namespace pool
}  // namespace cnnx
