// AVX2+FMA instance of the Winograd F(4x4, 3x3) tiles (16 ymm registers).
#include "conv/conv_winograd_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v8 __attribute__((vector_size(32)));
}  // namespace

WinogradKernel winograd_kernel_avx2() {
  return {winograd_tiles<v8, 8, 2, 6>, winograd_weights<v8, 8, 2>, wino_input<v8, 8>,
          winograd_ws_block<v8, 8, 2, 6>, 6, 16};
}

}  // namespace conv_detail
}  // namespace cnnx
