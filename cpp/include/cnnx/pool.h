// Pooling in NHWC, forward and backward: max, average, adaptive (average
// and max) and global average. Pooling has no parameters and never changes
// the channel count n_C; it works on each channel separately, so every
// kernel is vectorised over the contiguous channel axis.
//
// All tensors are float32, C-contiguous NHWC: x is (N, H, W, C), y and dy
// are (N, OH, OW, C), dx has x's shape. Indexing is 64-bit throughout.
//
// Windows. Output row i of a strided pool covers padded rows
// [i*s_h, i*s_h + k_h), i.e. input rows [i*s_h - pad_top, ... + k_h)
// clipped to [0, H); columns likewise. Padding counts as -inf for max
// pooling and as 0 for average pooling (and, with count_include_pad, in
// the divisor, which is then always k_h*k_w). Adaptive pooling uses the
// exact rule start = floor(i*n/out), end = ceil((i+1)*n/out) on each axis,
// for any out >= 1 (smaller or larger than n).
//
// Gradients. Max pooling sends each dy to the FIRST maximum of its window
// in row-major window order (PyTorch's rule); a window that contains NaN
// outputs NaN and sends its gradient to its last NaN (again as PyTorch).
// Overlapping windows accumulate. Backward kernels overwrite dx.
//
// Bad arguments throw std::invalid_argument (the Python bindings turn that
// into ValueError); nothing is read or written in that case.
#pragma once
#include <cstdint>

namespace cnnx {

struct PoolShape {
  int64_t n, h, w, c;  // input x: (n, h, w, c)
};

struct Pool2dParams {
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_bottom, pad_left, pad_right;
  // Max pooling only: a window's taps are dilation pixels apart (it spans
  // (kernel - 1) * dilation + 1 pixels).
  int64_t dilation_h = 1, dilation_w = 1;
  // Output sizes rounded up instead of down (PyTorch's and ONNX's ceil_mode);
  // a last window that would start beyond the input and its left/top
  // padding is dropped, so every window starts inside them (PyTorch's rule).
  // Windows that run past the padded input are clipped; an average pool's
  // divisor with count_include_pad then counts only up to the padded edge.
  bool ceil_mode = false;
};

// floor((n + pad_before + pad_after - k) / s) + 1, or -1 when the window
// does not fit in the padded input.
int64_t pool_output_size(int64_t n, int64_t k, int64_t s, int64_t pad_before, int64_t pad_after);
// The same with a dilated window ((k - 1) * d + 1 pixels) and, with
// ceil_mode, rounded up (then minus one if the last window would start at or
// beyond n + pad_before).
int64_t pool_output_size(int64_t n, int64_t k, int64_t s, int64_t pad_before, int64_t pad_after,
                         int64_t dilation, bool ceil_mode);

// Checks what the kernels rely on; throws std::invalid_argument otherwise:
// shape sizes >= 0, kernel >= 1, stride >= 1, padding >= 0 and at most
// kernel/2 on every side (PyTorch's rule: every window then holds at least
// one real pixel), window no larger than the padded input, and
// kernel_h*kernel_w < 2^31, dilation >= 1. Writes the output size.
void pool2d_check(const PoolShape& s, const Pool2dParams& p, int64_t* out_h, int64_t* out_w);

// y: (n, out_h, out_w, c) with out_* from pool2d_check.
void max_pool2d_forward(const PoolShape& s, const Pool2dParams& p, const float* x, float* y);
void max_pool2d_backward(const PoolShape& s, const Pool2dParams& p, const float* x, const float* dy,
                         float* dx);

void avg_pool2d_forward(const PoolShape& s, const Pool2dParams& p, bool count_include_pad,
                        const float* x, float* y);
void avg_pool2d_backward(const PoolShape& s, const Pool2dParams& p, bool count_include_pad,
                         const float* dy, float* dx);

// Adaptive pooling to (out_h, out_w), both >= 1; windows from adaptive_window.
void adaptive_window(int64_t i, int64_t n, int64_t out, int64_t* start, int64_t* end);
void adaptive_avg_pool2d_forward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* x,
                                 float* y);
void adaptive_avg_pool2d_backward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* dy,
                                  float* dx);
void adaptive_max_pool2d_forward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* x,
                                 float* y);
void adaptive_max_pool2d_backward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* x,
                                  const float* dy, float* dx);

// Global average pooling: (n, h, w, c) -> (n, c); h*w >= 1.
void global_avg_pool2d_forward(const PoolShape& s, const float* x, float* y);
void global_avg_pool2d_backward(const PoolShape& s, const float* dy, float* dx);

}  // namespace cnnx
