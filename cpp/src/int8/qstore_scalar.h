// The requantising store for one element, in portable C++. The SIMD stores
// (qstore_avx2.h, qstore_avx512.h) compute exactly these float32 operations,
// so every ISA gives bit-identical results.
#pragma once
#include <cmath>
#include <cstdint>

#include "int8/qgemm_ukernel.h"

namespace cnnx {
namespace {  // see qgemm_ukernel.h
namespace qscalar {

// maxps/minps semantics: the second operand unless the first is strictly
// larger/smaller (std::max/min differ on signed zeros).
inline float max_ps(float a, float b) { return a > b ? a : b; }
inline float min_ps(float a, float b) { return a < b ? a : b; }

// Round half to even, as cvtps2dq under the default rounding mode. Callers
// clamp first, so the value fits in int32.
inline int32_t round_even(float v) { return static_cast<int32_t>(std::nearbyint(v)); }

inline float requant(int32_t acc, float mult, float offs, float lo, float hi) {
  float v = std::fma(static_cast<float>(acc), mult, offs);
  return min_ps(max_ps(v, lo), hi);
}

// Writes element j of a row: acc is the raw dot product (before zcomp).
inline void store(int32_t acc, int j, const QStoreArgs& st, void* row) {
  const int32_t a = acc - st.zcomp[j];
  switch (st.out) {
    case QOutput::s32: static_cast<int32_t*>(row)[j] = a; break;
    case QOutput::f32:
      static_cast<float*>(row)[j] = requant(a, st.mult[j], st.offs[j], st.lo, st.hi);
      break;
    case QOutput::u8:
      static_cast<uint8_t*>(row)[j] = static_cast<uint8_t>(
          round_even(requant(a, st.mult[j], st.offs[j], st.lo, st.hi)) + st.zy);
      break;
  }
}

}  // namespace qscalar
}  // namespace
}  // namespace cnnx
