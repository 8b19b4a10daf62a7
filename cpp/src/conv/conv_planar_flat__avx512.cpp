// AVX-512 instance of the flat pixel-vectorised kernel (16 pixels per zmm,
// up to 24 accumulators).
#include "conv/conv_planar_flat_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v16 __attribute__((vector_size(64)));
}  // namespace

void planar_flat_avx512(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                        const float* bias, Activation act, float* out, int64_t ldo) {
  flat::planar_flat<v16, 16, 16, 12, 8, 6>(g, P, Nout, wmat, ldw, bias, act, out, ldo);
}

}  // namespace conv_detail
}  // namespace cnnx
