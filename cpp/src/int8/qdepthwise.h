// Internal: the int8 depthwise convolution's per-ISA row kernels. Each
// computes one output row (image n, output row oh), every column and channel:
//   acc[c] = sum over the taps inside the image of (x - za) * w[tap][c]
// (taps in the padding contribute (za - za) * w = 0, so they are skipped),
// then the store of int8.h with zcomp = 0 (the VNNI row: see below).
#pragma once
#include <cstdint>

#include "cnnx/conv.h"
#include "int8/qgemm_ukernel.h"

namespace cnnx {
namespace qdetail {

struct DepthwiseArgs {
  const Conv2dShape* s;
  const uint8_t* x;
  const int32_t* taps;  // (KH*KW, C_out) lanes, see QPackedWeights::Impl
  const uint8_t* dw4;   // the vpdpbusd layout, see QPackedWeights::Impl
  int32_t za;
  QStoreArgs st;  // columns from 0 (all channels)
  void* y;
};

using DepthwiseRow = void (*)(const DepthwiseArgs& a, int64_t n, int64_t oh);

// Channel multiplier 1 only (C_out == C_in) for the SIMD rows; the portable
// one handles any multiplier.
void qdepthwise_row_generic(const DepthwiseArgs& a, int64_t n, int64_t oh);
void qdepthwise_row__avx2(const DepthwiseArgs& a, int64_t n, int64_t oh);
void qdepthwise_row__avx512(const DepthwiseArgs& a, int64_t n, int64_t oh);
// AVX512-VNNI: x is not shifted by its zero point (vpdpbusd needs uint8), so
// padding taps read x's zero point and the store subtracts za * colsum
// (StorePrep with zcomp).
void qdepthwise_row__avx512vnni(const DepthwiseArgs& a, int64_t n, int64_t oh);

namespace {  // see qgemm_ukernel.h

// The valid tap range [*k0, *k1) of an output coordinate o along one axis.
inline void tap_range(int64_t o, int64_t stride, int64_t pad, int64_t dil, int64_t k, int64_t n,
                      int64_t* k0, int64_t* k1) {
  const int64_t base = o * stride - pad;  // input coordinate of tap 0
  int64_t lo = 0, hi = k;
  if (base < 0) lo = (-base + dil - 1) / dil;
  if (base + (k - 1) * dil >= n) hi = (n - 1 - base) / dil + 1;
  if (hi < lo) hi = lo;
  *k0 = lo;
  *k1 = hi;
}

}  // namespace

}  // namespace qdetail
}  // namespace cnnx
