// AVX2 instance of the flat pixel-vectorised kernel (8 pixels per ymm, up to
// 12 accumulators within 16 registers).
#include "conv/conv_planar_flat_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v8 __attribute__((vector_size(32)));
}  // namespace

void planar_flat_avx2(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                      const float* bias, Activation act, float* out, int64_t ldo) {
  flat::planar_flat<v8, 8, 12, 6, 4, 2>(g, P, Nout, wmat, ldw, bias, act, out, ldo);
}

}  // namespace conv_detail
}  // namespace cnnx
