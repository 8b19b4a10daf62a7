// Forward convolution: one implicit GEMM per group (a plain GEMM on the NHWC
// memory for 1x1 stride-1 unpadded filters), or the depthwise kernel.
#include <cmath>

#include "conv/conv_direct.h"
#include "conv/conv_internal.h"

namespace cnnx {

using conv_detail::PatchGeom;

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                    float* y, Activation act) {
  conv_detail::check_or_throw(s);
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t P = s.N * OH * OW;
  if (P == 0) return;
  if (s.is_depthwise()) {
    conv_detail::depthwise_forward(s, x, w, bias, y, act == Activation::relu ? 0.0f : -INFINITY,
                                   INFINITY);
    return;
  }
  if (conv_detail::direct_preferred(s)) {
    conv_detail::DirectEpi ep;
    ep.bias = bias;
    ep.relu = act == Activation::relu;
    for (int64_t g = 0; g < s.groups; ++g)
      conv_detail::direct_conv(conv_detail::direct_layout(s, g), w, x, s.N, y, ep);
    return;
  }
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  for (int64_t g = 0; g < s.groups; ++g) {
    PatchGeom geom{x,         s.H,        s.W,  s.C_in,     g * cig,    cig,          OH,
                   OW,        s.KH,       s.KW, s.stride_h, s.stride_w, s.dilation_h, s.dilation_w,
                   s.pad_top, s.pad_left, 0};
    conv_detail::implicit_gemm(geom, P, cog, w + g * cog, s.C_out, bias ? bias + g * cog : nullptr,
                               act, y + g * cog, s.C_out);
  }
}

}  // namespace cnnx
