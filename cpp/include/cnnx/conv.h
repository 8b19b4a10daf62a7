// 2-D convolution (cross-correlation) in NHWC with HWIO weights, forward and
// backward, on raw pointers. Usable as a plain C++ library:
//
//   cnnx::Conv2dShape s;                    // N,H,W,C_in, KH,KW,C_out, ...
//   s.N = 8; s.H = s.W = 32; s.C_in = 3; s.KH = s.KW = 3; s.C_out = 16;
//   s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = 1;
//   std::vector<float> y(s.output_size());
//   cnnx::conv2d_forward(s, x, w, bias, y.data(), cnnx::Activation::relu);
//
// Layouts (float32, dense, row-major):
//   x  [N, H, W, C_in]                 dy, y [N, OH, OW, C_out]
//   w  [KH, KW, C_in / groups, C_out]  bias, db [C_out]
// Group g reads input channels [g*C_in/groups, (g+1)*C_in/groups) and writes
// output channels [g*C_out/groups, (g+1)*C_out/groups) (depthwise with a
// channel multiplier m: groups == C_in, C_out == m*C_in).
//
// Algorithms (chosen per shape, see cpp/src/conv/):
//   1x1 stride 1 unpadded  -> one GEMM straight on the NHWC memory;
//   otherwise              -> implicit GEMM, image patches packed tile by tile
//                             into the GEMM's own micro-panels; for narrow
//                             layers (few channels) an indirect GEMM that
//                             reads the image through per-pixel pointers;
//   depthwise              -> a direct SIMD loop over channels;
//   backward-weights       -> patches^T x dY, the batch*pixels depth split
//                             across threads and reduced;
//   backward-data          -> stride 1: implicit GEMM over dY with the flipped
//                             filter; stride > 1: GEMM + col2im per image.
// Working memory is bounded by threads x tile (never a whole-batch im2col).
// Every index is 64-bit.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>

#include "cnnx/gemm.h"

namespace cnnx {

struct Conv2dShape {
  int64_t N = 0, H = 0, W = 0, C_in = 0;  // input
  int64_t KH = 1, KW = 1, C_out = 0;      // filter
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t groups = 1;

  // floor((n + pads - ((k - 1)*d + 1)) / s) + 1
  int64_t out_h() const {
    return (H + pad_top + pad_bottom - (KH - 1) * dilation_h - 1) / stride_h + 1;
  }
  int64_t out_w() const {
    return (W + pad_left + pad_right - (KW - 1) * dilation_w - 1) / stride_w + 1;
  }
  int64_t cin_per_group() const { return C_in / groups; }
  int64_t cout_per_group() const { return C_out / groups; }
  int64_t input_size() const { return N * H * W * C_in; }
  int64_t output_size() const { return N * out_h() * out_w() * C_out; }
  int64_t weight_size() const { return KH * KW * cin_per_group() * C_out; }
  bool is_depthwise() const { return groups > 1 && groups == C_in && C_out % C_in == 0; }
};

// Empty string when the shape is usable, else what is wrong ("stride: ...").
// Every entry point checks it and throws std::invalid_argument otherwise.
const char* conv2d_check(const Conv2dShape& s);

// y = act(conv(x, w) + bias). bias may be null.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                    float* y, Activation act = Activation::none);

// dx = dL/dx for dy = dL/dy (dy already includes any activation's derivative).
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx);

// dw = dL/dw, and db = sum of dy over N, OH, OW when db is not null.
void conv2d_backward_weights(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                             float* db);

// The algorithm conv2d_forward picks for a shape (for tests and benchmarks):
// "gemm_1x1", "implicit_gemm" (patches packed into the GEMM panels),
// "implicit_gemm_t" (output-transposed, few output channels, portable
// build), "igemm" (indirect kernel for narrow layers on AVX2/AVX-512),
// "depthwise".
const char* conv2d_forward_algorithm(const Conv2dShape& s);

// What a forward pass does to each output before storing it:
// y = act(conv * scale + bias + res). Each part is optional (null): scale is
// per output channel (a batch norm kept out of the weights), res has y's
// layout (a residual sum added before the activation). act_max: with
// act == relu, the outputs are clamped to at most act_max as well (ReLU6:
// 6); only the "direct" algorithm takes a finite one (ConvPacked::forward
// refuses it otherwise).
struct ConvEpilogue {
  const float* bias = nullptr;
  const float* scale = nullptr;
  const float* res = nullptr;
  Activation act = Activation::none;
  float act_max = INFINITY;
};

// A layer's weights packed once, in the layout its fastest forward kernel
// reads, for callers that run the same weights many times (an inference
// plan packs at build time and after each weight update). Immutable after
// construction and safe to share between threads.
//
//   cnnx::ConvPacked cp(shape, w);           // shape.N is ignored
//   cp.forward(x, n, y, {bias, nullptr, res, Activation::relu});
//   cp.repack(w);                            // after the weights changed
//
// forward_part(..., part, parts) computes share `part` of `parts` of the
// same output on the calling thread (no threads of its own, no barriers):
// a caller whose threads already run in parallel calls it once per thread
// with the same arguments. Every part must run before y is read.
class ConvPacked {
 public:
  ConvPacked() = default;
  ConvPacked(const Conv2dShape& s, const float* w);
  void repack(const float* w);
  // "winograd" (3x3/5x5, transformed weights), "direct" (a packed-weight
  // kernel), "narrow_1x1" (1x1 layers with <= 16 outputs, AVX-512), or
  // "conv2d" (conv2d_forward on the caller's weights, which must then
  // outlive this object unchanged, with scale and res applied after it).
  const char* algorithm() const;
  // Whether forward takes a finite ConvEpilogue.act_max (ReLU6 in the store).
  bool takes_act_max() const;
  const Conv2dShape& shape() const;
  // threads as in sgemm (0: decide from the size and get_num_threads()).
  void forward(const float* x, int64_t n, float* y, const ConvEpilogue& ep = {},
               int threads = 0) const;
  void forward_part(const float* x, int64_t n, float* y, const ConvEpilogue& ep, int part,
                    int parts) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace cnnx
