// AVX-512 instance of the direct backward-weights kernel.
#include "conv/conv_wgrad_direct_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v16 __attribute__((vector_size(64)));
}  // namespace

WgradKernel wgrad_direct_kernel_avx512() { return {wgrad_direct_tiles<v16, 16, 8, 3>, 16, 3}; }

}  // namespace conv_detail
}  // namespace cnnx
