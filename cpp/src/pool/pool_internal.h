// Internal contract between the pooling front ends (pool_max.cpp,
// pool_avg.cpp, pool_adaptive.cpp, pool_global.cpp), the threaded drivers
// (pool_driver.cpp) and the per-ISA kernels (pool_kernels_*.cpp).
//
// Every pool is described by per-axis window tables: output row i reads
// input rows [h_lo[i], h_hi[i]) (already clipped to the input), output
// column j reads input columns [w_lo[j], w_hi[j]). Strided, padded and
// adaptive pools differ only in how the tables are filled. Both bounds are
// nondecreasing in i (true for every rule used here), which lets the
// average backward gather and the max backward pick a race-free split.
#pragma once
#include <cstdint>
#include <vector>

#include "cnnx/cpu.h"
#include "cnnx/pool.h"

namespace cnnx {
namespace pool {

// Window bounds along one axis, plus the averaging factor per output index
// (avg pooling divides by div_h[i] * div_w[j]; inv holds 1/div).
struct Axis {
  int64_t in = 0, out = 0;
  std::vector<int64_t> lo, hi;
  std::vector<float> inv;
  // Average backward gather: input index t is read by outputs [first[t], last[t]).
  std::vector<int64_t> first, last;
  // True when no two windows share an input index (lo[i] >= hi[i-1]).
  bool disjoint = true;
  // True when the windows tile [0, in) exactly: every input index is read
  // by exactly one window.
  bool tiles = false;
  // Dilated max pooling: taps are dil apart; lo is the first tap inside the
  // input and hi one past the last (lo == hi: a window with no real tap).
  int64_t dil = 1;

  void finish(bool want_gather);
};

// Strided window k, stride s, padding before/after, on an axis of n pixels.
// count_pad: the divisor counts padded pixels (k, or fewer for a ceil-mode
// window past the padded end) or only real ones. dilation > 1: max pooling
// only (see Axis::dil).
Axis strided_axis(int64_t n, int64_t k, int64_t s, int64_t pad_before, int64_t pad_after,
                  bool count_pad, bool want_gather, int64_t dilation = 1, bool ceil_mode = false);
// Adaptive windows floor(i*n/out) .. ceil((i+1)*n/out).
Axis adaptive_axis(int64_t n, int64_t out, bool want_gather);

// A view of two axes for the kernels (raw pointers, no ownership).
struct Plan {
  int64_t n, h, w, c, oh, ow;
  const int64_t *h_lo, *h_hi, *w_lo, *w_hi;
  const float *h_inv, *w_inv;
  const int64_t *h_first, *h_last, *w_first, *w_last;  // null unless gathered
  int64_t dil_h = 1, dil_w = 1;                        // dilated max pooling (see Axis::dil)
};
Plan make_plan(const PoolShape& s, const Axis& ah, const Axis& aw);

// Forward: output rows r in [r0, r1) of the flattened (n, oh) row index.
// max_forward walks the input rows of each output row in order, keeping the
// running maxima in y (one sequential stream: 0.8 vs 1.15 ms for 2x2 on
// 32x56x56x64); avg_forward sums whole windows per output pixel.
using ForwardRowsFn = void (*)(const Plan& p, const float* x, float* y, int64_t r0, int64_t r1);
// Max backward: for image img, output rows [i0, i1) and channels [c0, c1),
// ADD each dy to dx at its window's first maximum (dx already zeroed).
using MaxBackwardFn = void (*)(const Plan& p, const float* x, const float* dy, float* dx,
                               int64_t img, int64_t i0, int64_t i1, int64_t c0, int64_t c1);
// Average backward by gathering: dx input rows r in [r0, r1) of the
// flattened (n, h) index, each written exactly once.
using AvgBackwardRowsFn = void (*)(const Plan& p, const float* dy, float* dx, int64_t r0,
                                   int64_t r1);

struct Kernels {
  const char* name;
  ForwardRowsFn max_forward;
  ForwardRowsFn avg_forward;
  MaxBackwardFn max_backward;
  AvgBackwardRowsFn avg_backward;
  // Sums walking each output row's input rows in order (large windows).
  ForwardRowsFn avg_forward_stream;
  // max_backward for windows that tile the input exactly: stores dy or 0
  // into every dx element once (dx need not be zeroed).
  MaxBackwardFn max_backward_tiled;
  // max over whole windows per output pixel, for n_C % width != 0: the
  // streaming forms would store partial vectors with masks and read them
  // back, and masked stores do not forward to loads (measured 2x slower).
  ForwardRowsFn max_forward_window;
  int width;  // floats per vector
  // Dilated max pooling (Plan::dil_h / dil_w > 1): whole windows per output
  // pixel with the taps dilation apart; the backward adds into dx.
  ForwardRowsFn max_forward_dilated;
  MaxBackwardFn max_backward_dilated;
};

// Constant tables, defined in each ISA's own file.
extern const Kernels kPoolGeneric;
extern const Kernels kPoolAvx2;
extern const Kernels kPoolAvx512;
const Kernels& kernels_for(Isa isa);

// Threaded drivers (pool_driver.cpp).
void run_max_forward(const Plan& p, const float* x, float* y);
void run_avg_forward(const Plan& p, const float* x, float* y);
void run_max_backward(const Plan& p, const Axis& ah, const Axis& aw, const float* x,
                      const float* dy, float* dx);
void run_avg_backward(const Plan& p, const float* dy, float* dx);

void check_shape(const PoolShape& s);

}  // namespace pool
}  // namespace cnnx
