// The inner loops of the layout ops (cnnx/layout.h, cnnx/conv_transpose.h),
// one table per ISA (layout_impl.h compiled three times). Every loop runs
// over the contiguous channel axis of NHWC pixels, or over whole rows.
#pragma once
#include <cstdint>

namespace cnnx {

struct LayoutKernels {
  // y[i] = x[i], i < n (no overlap). `stream`: non-temporal stores where the
  // ISA has them, for outputs far larger than the caches (no read of the
  // destination lines: a third less memory traffic).
  void (*copy)(const float* x, float* y, int64_t n, bool stream);
  // Streaming stores without the fence (many short runs): the caller calls
  // fence() once its part of the op is written.
  void (*copy_nt)(const float* x, float* y, int64_t n);
  void (*fence)();
  // y[i] += x[i], i < n
  void (*add)(const float* x, float* y, int64_t n);
  // y[i] += a * x[i]
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // y[i] = a * x0[i] + b * x1[i] (stream: as copy)
  void (*blend)(float a, const float* x0, float b, const float* x1, float* y, int64_t n,
                bool stream);
  // rows of C: y[r, c] = act(y[r, c] + bias[c]) (bias may be null; act: relu or none)
  void (*bias_act)(float* y, int64_t rows, int64_t C, const float* bias, bool relu);
  // Each of the W pixels (C floats) of x written f times in a row: y [W*f, C].
  void (*repeat_pixels)(const float* x, int64_t W, int64_t C, int64_t f, float* y);
  // The reverse sum: y[i] = sum_k x[i*f + k] over pixels (y [W, C], x [W*f, C]).
  void (*sum_pixel_groups)(const float* x, int64_t W, int64_t C, int64_t f, float* y);
  // One row of a two-tap blend of pixels: y[o] = w0[o]*x[i0[o]] + w1[o]*x[i1[o]]
  // for o < n (pixels of C floats).
  void (*blend_pixels)(const float* x, int64_t C, int64_t n, const int64_t* i0, const int64_t* i1,
                       const float* w0, const float* w1, float* y);
  // Its transpose: dx[i0[o]] += w0[o]*v[o], dx[i1[o]] += w1[o]*v[o] (dx not cleared).
  void (*blend_pixels_backward)(const float* v, int64_t C, int64_t n, const int64_t* i0,
                                const int64_t* i1, const float* w0, const float* w1, float* dx);
  // dst[j*ld_dst + r] = src[r*ld_src + j] for r < rows, j < cols.
  void (*transpose_block)(const float* src, int64_t ld_src, int64_t rows, int64_t cols, float* dst,
                          int64_t ld_dst);
  // channel shuffle of `pixels` pixels of g*cpg channels: y[j*g + i] = x[i*cpg + j].
  // stream: streaming stores for the whole call (fenced at its end).
  void (*shuffle)(const float* x, int64_t pixels, int64_t g, int64_t cpg, float* y, bool stream);
  // PixelShuffle by 2 (depth_to_space CRD, b = 2) of one pixel of 4*Co channels:
  // y_i[j*Co + c] = x[c*4 + i*2 + j] for the two output rows i (y0, y1), and
  // its inverse (space_to_depth CRD): x from the two rows.
  void (*d2s_crd2)(const float* x, int64_t Co, float* y0, float* y1);
  void (*s2d_crd2)(const float* x0, const float* x1, int64_t Co, float* y);
};

namespace layout_generic {
extern const LayoutKernels kernels;
}
namespace layout_avx2 {
extern const LayoutKernels kernels;
}
namespace layout_avx512 {
extern const LayoutKernels kernels;
}

// The table for the active ISA level.
const LayoutKernels& layout_kernels();

// Whether an op writing `bytes` should stream its stores past the caches
// (far more than the last-level cache a thread can count on).
// Measured on AMD EPYC (32 MB L3 shared): reflect-padding 32x56x56x64 (a
// 29.5 MB output) on one thread, 2.7-3.0 ms with cached stores, 2.0-2.15 ms
// streamed (PyTorch 2.2 ms). Half the L3: beyond it the output leaves the
// cache before anyone reads it anyway.
inline bool stream_stores(double bytes) { return bytes > 16.0 * 1024 * 1024; }

}  // namespace cnnx
