// Scalar forms of the uint8 element and pooling formulas (qeltwise.h): the
// portable kernels, and the tails of the SIMD ones.
#pragma once
#include <cmath>
#include <cstdint>

#include "int8/qeltwise.h"
#include "int8/qstore_scalar.h"

namespace cnnx {
namespace {  // see qgemm_ukernel.h
namespace qscalar {

inline bool finite(float x) { return x - x == 0.0f; }

inline uint8_t quantize_one(float x, const qdetail::QuantizeArgs& a) {
  const float v = min_ps(max_ps(x / a.scale, a.lo), a.hi);
  return static_cast<uint8_t>(round_even(v) + a.zp);
}

inline float dequantize_one(uint8_t q, int32_t zp, float scale) {
  return static_cast<float>(static_cast<int32_t>(q) - zp) * scale;
}

inline uint8_t add_one(uint8_t a, uint8_t b, const qdetail::AddArgs& g) {
  const float t = static_cast<float>(static_cast<int32_t>(b) - g.zb) * g.mb;
  float v = std::fma(static_cast<float>(static_cast<int32_t>(a) - g.za), g.ma, t);
  v = min_ps(max_ps(v, g.lo), g.hi);
  return static_cast<uint8_t>(round_even(v) + g.zy);
}

// One average: S is the window's sum, nvalid its pixel count.
inline uint8_t average_one(int32_t S, int32_t nvalid, float mul, int32_t zx, int32_t zy) {
  float v = static_cast<float>(S - nvalid * zx) * mul;
  v = min_ps(max_ps(v, static_cast<float>(-zy)), static_cast<float>(255 - zy));
  return static_cast<uint8_t>(round_even(v) + zy);
}

// The multiplier of a window: ratio / divisor.
inline float average_mul(const qdetail::PoolArgs& a, int64_t rows, int64_t cols) {
  const int64_t div = a.include_pad ? a.p->kernel_h * a.p->kernel_w : rows * cols;
  return a.ratio / static_cast<float>(div);
}

}  // namespace qscalar
}  // namespace
}  // namespace cnnx
