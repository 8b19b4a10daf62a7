// Transposed 2-D convolution ("deconvolution", the U-Net decoder's
// upsampling) in NHWC, forward and backward, on raw pointers.
//
// A transposed convolution is the backward-data pass of an ordinary
// convolution whose input is this op's output: every input pixel j spreads
// w-weighted copies of itself to the output pixels i = j*s - p + k*d. So
// nothing here is a new kernel:
//   forward          = conv2d_backward_data   of the mirrored convolution;
//   backward-data    = conv2d_forward         of it (no bias);
//   backward-weights = conv2d_backward_weights of it, with dy and x in
//                      swapped roles; the bias gradient is a channel sum.
//
// Layouts (float32, dense, row-major):
//   x   [N, H, W, C_in]                      y, dy [N, OH, OW, C_out]
//   w   [KH, KW, C_out / groups, C_in]       bias, db [C_out]
// (Keras's Conv2DTranspose kernel layout; PyTorch's ConvTranspose2d weight
// (C_in, C_out/groups, KH, KW) is this one transposed by (2, 3, 1, 0).)
// Group g reads input channels [g*C_in/groups, ...) and writes output
// channels [g*C_out/groups, ...).
//
// Output size per axis (PyTorch's and the course's formula):
//   OH = (H - 1)*stride - pad_top - pad_bottom + dilation*(KH - 1) + out_pad + 1
// out_pad (output_padding) adds rows at the bottom / columns at the right
// that only the rows above reach; it must be smaller than the stride or the
// dilation (else those rows would be reachable by nothing, and a different
// convolution would give the same shape).
#pragma once
#include <cstdint>

#include "cnnx/conv.h"

namespace cnnx {

struct ConvTranspose2dShape {
  int64_t N = 0, H = 0, W = 0, C_in = 0;  // input
  int64_t KH = 1, KW = 1, C_out = 0;      // filter
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t out_pad_h = 0, out_pad_w = 0;
  int64_t groups = 1;

  int64_t out_h() const {
    return (H - 1) * stride_h - pad_top - pad_bottom + dilation_h * (KH - 1) + out_pad_h + 1;
  }
  int64_t out_w() const {
    return (W - 1) * stride_w - pad_left - pad_right + dilation_w * (KW - 1) + out_pad_w + 1;
  }
  int64_t input_size() const { return N * H * W * C_in; }
  int64_t output_size() const { return N * out_h() * out_w() * C_out; }
  int64_t weight_size() const { return KH * KW * (C_out / groups) * C_in; }
};

// Empty string when the shape is usable, else what is wrong ("output_padding: ...").
const char* conv_transpose2d_check(const ConvTranspose2dShape& s);

// y = act(conv_transpose(x, w) + bias). bias may be null.
void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                              const float* bias, float* y, Activation act = Activation::none);

// dx = dL/dx for dy = dL/dy (a strided convolution of dy).
void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                    float* dx);

// dw = dL/dw (overwritten); db = per-channel sum of dy when db is not null.
void conv_transpose2d_backward_weights(const ConvTranspose2dShape& s, const float* dy,
                                       const float* x, float* dw, float* db);

// db[c] = sum over rows of x[rows, C] (a bias gradient). Overwrites db.
void channel_sum(const float* x, int64_t rows, int64_t C, float* db);

}  // namespace cnnx
