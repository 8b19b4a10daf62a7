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

// Output rows [row0, row1) of image `img` of s (N images, x unpadded NHWC):
// y = act(conv(x) + bias + res), res (y's layout) optional (a residual sum);
// act none or relu. Uses the calling thread's scratch for the padded copy.
void conv_direct_padded(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                    const float* res, float* y, Activation act, int64_t img, int64_t row0,
                    int64_t row1);

// The AVX-512 body (conv_direct_padded__avx512.cpp): rows [row0, row1) from the
// padded image xp (Hp x Wp x C_in).
void conv_direct_padded_rows_avx512(const Conv2dShape& s, const float* xp, int64_t Wp,
                                const float* w, const float* bias, float* y, const float* res,
                                bool relu, int64_t row0, int64_t row1);

}  // namespace plan_detail
}  // namespace cnnx
