// AVX2+FMA instance of the Winograd F(4x4, 3x3) and F(2x2, 5x5) tiles (16 ymm registers).
#include "conv/conv_winograd_wgrad_impl.h"
#include "conv/conv_winograd_dx_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v8 __attribute__((vector_size(32)));
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

WinogradKernel winograd_kernel_avx2(int ks, int64_t /*cin*/, int64_t nout) {
  if (ks == 3) return make<v8, 8, v8, 8, 2, 6, 3>();
  if (nout <= 8) return make<v8, 8, v8, 8, 1, 12, 5>();
  return make<v8, 8, v8, 8, 2, 6, 5>();
}

WinogradWgradKernel winograd_wgrad_kernel_avx2() {
  return {wino_input<v8, 8, 4>,
          wino_dy_input<v8, 8>,
          wino_dw_gemms<v8, 8, 2, 6>,
          wino_dw_output<v8, 8>,
          6,
          16};
}

WinogradDxKernel winograd_dx_kernel_avx2(int64_t /*cin*/, int64_t /*cout*/) {
  return {winograd_dx_images<v8, 8, v8, 8, 1, 12>, winograd_weights<v8, 8, 1, 5, true>, 12, 8};
}

}  // namespace conv_detail
}  // namespace cnnx
