// Shape checks and the per-shape algorithm choice.
#include <stdexcept>

#include "conv/conv_direct.h"
#include "conv/conv_internal.h"

namespace cnnx {

const char* conv2d_check(const Conv2dShape& s) {
  if (s.N < 0 || s.H < 1 || s.W < 1) return "x: expected N >= 0 and H, W >= 1";
  if (s.C_in < 1) return "x: expected at least one input channel";
  if (s.KH < 1 || s.KW < 1) return "w: expected a filter of at least 1x1";
  if (s.C_out < 1) return "w: expected at least one output channel";
  if (s.stride_h < 1 || s.stride_w < 1) return "stride: expected values >= 1";
  if (s.dilation_h < 1 || s.dilation_w < 1) return "dilation: expected values >= 1";
  if (s.pad_top < 0 || s.pad_bottom < 0 || s.pad_left < 0 || s.pad_right < 0)
    return "padding: expected values >= 0";
  if (s.groups < 1) return "groups: expected an int >= 1";
  if (s.C_in % s.groups || s.C_out % s.groups)
    return "groups: C_in and C_out must both be divisible by groups";
  // Keep every pixel coordinate far from int64 overflow (and below the
  // kernels' out-of-image sentinel of -2^40): each padded axis and each
  // dilated filter must span fewer than 2^40 pixels.
  constexpr int64_t kMaxExtent = int64_t{1} << 40;
  if (s.H >= kMaxExtent || s.W >= kMaxExtent || s.pad_top >= kMaxExtent ||
      s.pad_bottom >= kMaxExtent || s.pad_left >= kMaxExtent || s.pad_right >= kMaxExtent ||
      s.H + s.pad_top + s.pad_bottom >= kMaxExtent || s.W + s.pad_left + s.pad_right >= kMaxExtent)
    return "padding: the padded input must span fewer than 2^40 pixels per axis";
  if (s.KH >= kMaxExtent || s.KW >= kMaxExtent || s.dilation_h >= kMaxExtent ||
      s.dilation_w >= kMaxExtent || s.KH - 1 > (kMaxExtent - 1) / s.dilation_h ||
      s.KW - 1 > (kMaxExtent - 1) / s.dilation_w)
    return "dilation: the dilated filter must span fewer than 2^40 pixels per axis";
  if (s.stride_h >= kMaxExtent || s.stride_w >= kMaxExtent)
    return "stride: expected values below 2^40";
  if (s.H + s.pad_top + s.pad_bottom < (s.KH - 1) * s.dilation_h + 1 ||
      s.W + s.pad_left + s.pad_right < (s.KW - 1) * s.dilation_w + 1)
    return "w: the (dilated) filter is larger than the padded input";
  return "";
}

const char* conv2d_forward_algorithm(const Conv2dShape& s) {
  if (s.is_depthwise()) return "depthwise";
  if (conv_detail::direct_preferred(s)) return "direct";
  const int64_t P = s.N * s.out_h() * s.out_w();
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  const conv_detail::PatchGeom g{nullptr,    s.H,        s.W,          s.C_in,       0,
                                 cig,        s.out_h(),  s.out_w(),    s.KH,         s.KW,
                                 s.stride_h, s.stride_w, s.dilation_h, s.dilation_w, s.pad_top,
                                 s.pad_left, 0};
  if (conv_detail::winograd_preferred(g, P, cog)) return "winograd";
  if (conv_detail::planar_flat_preferred(g, P, cog)) return "planar_flat";
  if (conv_detail::planar_preferred(g, P, cog)) return "planar";
  if (conv_detail::igemm_preferred(g, cog)) return "igemm";
  const bool transposed =
      conv_detail::tile_efficiency(cog, P) > 1.25 * conv_detail::tile_efficiency(P, cog);
  if (transposed) return "implicit_gemm_t";
  return g.is_identity() ? "gemm_1x1" : "implicit_gemm";
}

namespace conv_detail {

void check_or_throw(const Conv2dShape& s) {
  const char* msg = conv2d_check(s);
  if (msg[0]) throw std::invalid_argument(msg);
}

}  // namespace conv_detail
}  // namespace cnnx
