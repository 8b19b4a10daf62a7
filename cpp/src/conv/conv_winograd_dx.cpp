// Driver of the Winograd backward-data for 5x5 stride-1 layers (the adjoint
// of the forward F(2x2, 5x5), conv_winograd_dx_impl.h): the weight transform
// once per call, then threads take groups of whole images (their dx windows
// overlap only within an image).
#include <algorithm>
#include <atomic>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {

bool winograd_dx_preferred(const Conv2dShape& s) {
  if (s.groups != 1 || s.KH != 5 || s.KW != 5 || s.stride_h != 1 || s.stride_w != 1 ||
      s.dilation_h != 1 || s.dilation_w != 1)
    return false;
  const int64_t OH = s.out_h(), OW = s.out_w();
  // Worth it when dy has fewer tiles than dx ("valid"-like layers); the
  // forward-style path (flipped filter, full padding) covers the others.
  if (OH < 2 || OW < 2 || OH * OW >= s.H * s.W) return false;
  const PatchGeom g{nullptr, s.H, s.W, s.C_in, 0, s.C_in,    OH,         OW, 5,
                    5,       1,   1,   1,      1, s.pad_top, s.pad_left, 0};
  return winograd_preferred(g, s.N * OH * OW, s.C_out);
}

bool winograd_dx(const Conv2dShape& s, const float* dy, const float* wf, float* dx) {
  const WinogradDxKernel k = active_isa() == Isa::avx512
                                 ? winograd_dx_kernel_avx512(s.C_in, s.C_out)
                                 : winograd_dx_kernel_avx2(s.C_in, s.C_out);
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t CW = k.CW, R = k.R;
  const int64_t ncb = ceil_div(s.C_in, CW);
  const int64_t sU = wino_estride(ncb * s.C_out * CW);
  float* U = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(36 * sU));
  // U[e][cb][co][lane = ci] from wf[kh'][kw'][co][ci] with the taps flipped back.
  if (!k.weights(wf, s.C_in, s.C_out, s.C_in, ncb, U, 0, s.C_out, 0, s.C_out, sU)) return false;
  const int64_t TH = ceil_div(OH, 2), TW = ceil_div(OW, 2), tpi = TH * TW;
  const WinogradProblem pb{
      nullptr,          s.H, s.W,   s.C_in,    0,       s.C_in, OH, OW, s.pad_top,
      s.pad_left,       TH,  TW,    s.N * tpi, s.C_out, ncb,    U,  sU, nullptr,
      Activation::none, dx,  s.C_in};
  const int64_t G = std::max<int64_t>(1, 128 / tpi);  // images per unit
  const int64_t units = ceil_div(s.N, G);
  const int64_t Tp = ceil_div(G * tpi, R) * R;
  const size_t per =
      static_cast<size_t>(36 * (wino_estride(Tp * s.C_out) + wino_estride(Tp * ncb * CW)));
  const int nt = threads_for_flops(2.0 * s.N * tpi * 36 * s.C_in * s.C_out);
  std::atomic<bool> finite{true};
  auto run = [&](int64_t u) {
    if (!finite) return;
    const int64_t n0 = u * G, n1 = std::min(s.N, n0 + G);
    if (!k.images(pb, dy, n0, n1, thread_scratch(ScratchSlot::conv_0, per))) finite = false;
  };
  if (nt <= 1 || units == 1) {
    for (int64_t u = 0; u < units; ++u) run(u);
  } else {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
    for (int64_t u = 0; u < units; ++u) run(u);
  }
  return finite;
}

}  // namespace conv_detail
}  // namespace cnnx
