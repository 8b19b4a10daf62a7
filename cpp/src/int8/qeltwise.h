// Internal: per-ISA bodies of the memory-bound uint8 kernels (quantize,
// dequantize, add) and of the pooling rows. Each SIMD body computes exactly
// the scalar formulas of int8.h, so results are bit-identical on every ISA.
#pragma once
#include <cstdint>

#include "cnnx/pool.h"

namespace cnnx {
namespace qdetail {

// quantize: v = min(max(x / scale, lo), hi), y = nearbyint(v) + zp with
// lo = -zp, hi = 255 - zp. Returns false if any x is NaN or infinite.
struct QuantizeArgs {
  float scale, lo, hi;
  int32_t zp;
};
// add: v = fma(float(a - za), ma, float(b - zb) * mb), clamped to [lo, hi]
// (in units of y - zy), y = nearbyint(v) + zy.
struct AddArgs {
  int32_t za, zb, zy;
  float ma, mb, lo, hi;
};
// Pooling over output row (n, oh). avg: v = float(S - nvalid*zx) *
// (ratio / float(divisor)), clamped to [-zy, 255 - zy], y = nearbyint(v) + zy.
struct PoolArgs {
  const PoolShape* s;
  const Pool2dParams* p;
  int64_t oh_count, ow_count;
  const uint8_t* x;
  uint8_t* y;
  bool include_pad;
  int32_t zx, zy;
  float ratio;  // x.scale / y.scale
};

struct EltwiseKernels {
  bool (*quantize)(int64_t n, const float* x, const QuantizeArgs& a, uint8_t* y);
  void (*dequantize)(int64_t n, const uint8_t* q, int32_t zp, float scale, float* y);
  void (*add)(int64_t n, const uint8_t* a, const uint8_t* b, const AddArgs& args, uint8_t* y);
  void (*max_pool_row)(const PoolArgs& a, int64_t n, int64_t oh);
  void (*avg_pool_row)(const PoolArgs& a, int64_t n, int64_t oh);
};

extern const EltwiseKernels kQEltwiseGeneric;
extern const EltwiseKernels kQEltwiseAvx2;
extern const EltwiseKernels kQEltwiseAvx512;

namespace {  // see qgemm_ukernel.h

// Window of output index o along an axis: input [*b, *e) clipped to [0, n).
inline void pool_window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t n, int64_t* b,
                        int64_t* e) {
  const int64_t s = o * stride - pad;
  *b = s < 0 ? 0 : s;
  *e = s + k > n ? n : s + k;
}

}  // namespace

}  // namespace qdetail
}  // namespace cnnx
