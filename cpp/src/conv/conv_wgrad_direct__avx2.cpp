// AVX2+FMA instance of the direct backward-weights kernel.
#include "conv/conv_wgrad_direct_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v8 __attribute__((vector_size(32)));
}  // namespace

WgradKernel wgrad_direct_kernel_avx2() { return {wgrad_direct_tiles<v8, 8, 6, 2>, 8, 2}; }

}  // namespace conv_detail
}  // namespace cnnx
