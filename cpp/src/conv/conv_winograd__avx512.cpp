// AVX-512 instance of the Winograd F(4x4, 3x3) and F(2x2, 5x5) tiles.
#include "conv/conv_winograd_wgrad_impl.h"
#include "conv/conv_winograd_dx_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
}  // namespace

// VI, VIL: input-transform vectors; VT, V, NV, R: GEMM tile (R tiles x NV*V
// output channels), also used by the weight and output transforms.
template <class VI, int VIL, class VT, int V, int NV, int R, int KS>
WinogradKernel make() {
  return {winograd_tiles<VI, VIL, VT, V, NV, R, KS>,
          winograd_weights<VT, V, NV, KS>,
          wino_input<VI, VIL, 7 - KS>,
          winograd_ws_block<VT, V, NV, R, KS>,
          R,
          NV * V};
}

WinogradKernel winograd_kernel_avx512(int ks, int64_t cin, int64_t nout) {
  if (ks == 3) return make<v16, 16, v16, 16, 2, 12, 3>();
  // Few channels: 8-lane vectors (measured faster here, also for the input
  // transform of 16 channels; a half-filled 16-lane vector would cost a
  // store-forwarding stall per load in the transforms).
  if (nout <= 8) return make<v8, 8, v8, 8, 1, 24, 5>();
  if (cin <= 8) return make<v8, 8, v8, 8, 2, 12, 5>();
  if (nout <= 16) return make<v16, 16, v16, 16, 1, 24, 5>();
  return make<v16, 16, v16, 16, 2, 12, 5>();
}

WinogradWgradKernel winograd_wgrad_kernel_avx512() {
  return {wino_input<v16, 16, 4>,
          wino_dy_input<v16, 16>,
          wino_dw_gemms<v16, 16, 2, 12>,
          wino_dw_output<v16, 16>,
          12,
          32};
}

WinogradDxKernel winograd_dx_kernel_avx512(int64_t cin, int64_t /*cout*/) {
  if (cin <= 8)
    return {winograd_dx_images<v8, 8, v8, 8, 1, 12>, winograd_weights<v8, 8, 1, 5, true>, 12, 8};
  return {winograd_dx_images<v8, 8, v16, 16, 1, 24>, winograd_weights<v16, 16, 1, 5, true>, 24, 16};
}

}  // namespace conv_detail
}  // namespace cnnx
