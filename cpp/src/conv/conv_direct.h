// Direct NHWC convolution with pre-packed weights ("brgemm" style), for the
// strided, 1x1 and stem layers of real networks (internal header).
//
// A register tile is R output pixels x NV vectors of output channels. The
// product is a batch-reduce over segments: a segment is one filter tap (its
// Cg channels), or, on a zero-padded copy of the image, one filter row (its
// KW taps are adjacent in memory: KW*Cg values). For each segment every
// pixel of the tile has a pointer to its run of input values; the kernel
// broadcasts them against the packed weights [cb][segment][value][CB], so
// that nothing is packed per call but the weights (once per weight update
// for a caller that keeps them, see ConvPacked in cnnx/conv.h).
#pragma once
#include <cmath>
#include <cstdint>

#include "cnnx/conv.h"

namespace cnnx {
namespace conv_detail {

// One register tile: acc = sum over segments s, values l of
// a[s*R + r][l] * ws[s][l*CB + c], plus y[r*ldy + c] when `accumulate`;
// then, when `final`, y[r*ldy + c] = act(acc * scale[c] + bias[c] +
// res[r*ldy + c]) for r < m, c < nch (scale, bias, res optional), else
// y = acc (a partial sum over part of the depth).
struct DirectTile {
  const float* const* a;   // nseg x R pixel pointers (segment-major)
  const float* const* ws;  // per segment: its weights in this channel block, [len][CB]
  int64_t nseg, len;
  float* y;
  int64_t ldy;
  int m, nch;
  const float* bias;   // already offset to the block's first channel
  const float* scale;  // idem
  const float* res;    // idem, and to the tile's first pixel
  bool relu;
  float relu_max;  // with relu: the clamp's top (ReLU6: 6; ReLU: inf)
  bool accumulate, final;
};
using DirectTileFn = void (*)(const DirectTile&);

struct DirectKernel {
  DirectTileFn fn = nullptr;  // null: no direct kernel on this ISA
  int R = 0, CB = 0;          // pixels x channels per tile
};
// The tile for a layer with `nout` output channels (per group).
DirectKernel direct_kernel_avx512(int64_t nout);
DirectKernel direct_kernel_avx2(int64_t nout);
DirectKernel direct_kernel(int64_t nout);

// A convolution (one group) laid out for the direct kernel.
struct DirectLayout {
  Conv2dShape s;  // the layer; N is ignored
  int64_t g = 0;  // group
  DirectKernel k;
  bool padded = false;  // reads a zero-padded copy of each image (merged kw runs)
  int64_t nseg = 0, len = 0, ncb = 0;
  int64_t wsize() const { return ncb * nseg * len * k.CB; }
};
DirectLayout direct_layout(const Conv2dShape& s, int64_t group);
// Packs HWIO weights (the whole layer's w) for group l.g into wp (l.wsize()).
void direct_pack_weights(const DirectLayout& l, const float* w, float* wp);

// The epilogue beyond bias and activation that a plan may fuse.
struct DirectEpi {
  const float* bias = nullptr;   // [C_out]
  const float* scale = nullptr;  // [C_out], a batch norm kept outside the weights
  const float* res = nullptr;    // like y: a residual sum added before the activation
  bool relu = false;
  float relu_max = INFINITY;  // with relu: outputs clamped to at most this (ReLU6: 6)
};

// y for n images of x (NHWC) with packed weights wp, group l.g. threads as
// in sgemm (0: decide). With part/parts (parts > 1), only that share of the
// work, on the calling thread (the caller's threads split the op; the
// padded layout then needs a caller-provided shared copy: not supported,
// such layouts run whole on part 0).
void direct_run(const DirectLayout& l, const float* wp, const float* x, int64_t n, float* y,
                const DirectEpi& ep, int threads);
// wp may be null: each part then packs the blocks it uses from w (HWIO).
void direct_run_part(const DirectLayout& l, const float* wp, const float* x, int64_t n, float* y,
                     const DirectEpi& ep, int part, int parts, const float* w = nullptr);

// The same with weights packed during the call (conv2d_forward): once,
// shared, for batches; per thread and channel block, right before use, for
// one or a few images.
void direct_conv(const DirectLayout& l, const float* w, const float* x, int64_t n, float* y,
                 const DirectEpi& ep);

// CNNX_CONV_DIRECT: 0 off, 1 forced wherever a tile exists (tests), else
// by measurement (returns 0, 2, 1).
int direct_mode();

// Backward-data of strided layers by stride phases (conv_direct_dx.cpp):
// each phase a stride-1 product of dy with its taps, on the direct tiles.
bool direct_dx_preferred(const Conv2dShape& s);
void direct_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx);

// Whether conv2d_forward (packed = false: weights packed per call) or
// ConvPacked (packed = true, s.N = 1) uses the direct kernel for this layer.
bool direct_preferred(const Conv2dShape& s, bool packed = false);

}  // namespace conv_detail
}  // namespace cnnx
