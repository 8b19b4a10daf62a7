// Direct convolutions on a zero-padded copy of the image, for the narrow
// layers of small networks: 3x3 with 16 or 32 input channels (the residual
// blocks of small ResNets) or one (a grey-image stem), 5x5 with 8 (LeNet's
// second convolution), 1x1 stride 2 with 16 or 32 (projection shortcuts).
// With the padding made
// real, the patch of output pixel r for filter row kh is the contiguous run
// row + r*stride*C_in .. + k*C_in of one padded input row, so the micro-kernel
// broadcasts straight from one base pointer at constant offsets (no per-pixel
// pointers, no edge cases) against the HWIO weights, which are already laid
// out as [kh][kw*C_in + ci][C_out]. The copy also means a tile may run past
// the row end (extra pixels computed on zeros, never stored).
#pragma once
#include <cstdint>

#include "cnnx/conv.h"

namespace cnnx {
namespace plan_detail {

// Whether the padded kernel takes this shape (for n images) on this CPU.
bool conv_direct_padded_ok(const Conv2dShape& s, int64_t n);

// What the kernel does to each output before storing it:
// y = act(acc * scale + bias + res). Each part is optional (null): scale is
// per output channel (a batch norm applied here instead of folded into the
// weights), res has y's layout (a residual sum); act is none or relu.
struct DirectEpilogue {
  const float* bias = nullptr;
  const float* scale = nullptr;
  const float* res = nullptr;
  bool relu = false;
};

// Output rows [row0, row1) of image `img` of s (N images, x unpadded NHWC),
// with the epilogue (bias, scale: per channel; res: the whole output, as y).
// Uses the calling thread's scratch for the padded copy.
void conv_direct_padded(const Conv2dShape& s, const float* x, const float* w,
                        const DirectEpilogue& ep, float* y, int64_t img, int64_t row0,
                        int64_t row1);

// The AVX-512 body (conv_direct_padded__avx512.cpp): rows [row0, row1) of
// one image from its padded copy xp (Hp x Wp x C_in); ep.res, y: that image.
void conv_direct_padded_rows_avx512(const Conv2dShape& s, const float* xp, int64_t Wp,
                                    const float* w, const DirectEpilogue& ep, float* y,
                                    int64_t row0, int64_t row1);

// The AVX2 body (conv_direct_padded__avx2.cpp): the same shapes except the
// one-channel stem.
void conv_direct_padded_rows_avx2(const Conv2dShape& s, const float* xp, int64_t Wp, const float* w,
                                  const DirectEpilogue& ep, float* y, int64_t row0, int64_t row1);

}  // namespace plan_detail
}  // namespace cnnx
