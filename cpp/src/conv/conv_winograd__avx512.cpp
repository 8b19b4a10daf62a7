// AVX-512 instance of the Winograd F(4x4, 3x3) tiles.
#include "conv/conv_winograd_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v16 __attribute__((vector_size(64)));
}  // namespace

WinogradKernel winograd_kernel_avx512() {
  return {winograd_tiles<v16, 16, 2, 12>, winograd_weights<v16, 16, 2>, wino_input<v16, 16>,
          winograd_ws_block<v16, 16, 2, 12>, 12, 32};
}

}  // namespace conv_detail
}  // namespace cnnx
