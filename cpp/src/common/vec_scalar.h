// One float as a "vector" (W = 1) for the portable translation units, so
// that the templated math in common/vec_math.h has a baseline form (see
// vec_avx512.h for the interface). Plain C++; nothing here needs a flag.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace cnnx {
namespace vec_scalar {

struct V {
  static constexpr int W = 1;
  static constexpr bool kSaturatingLdexp = false;  // ldexp needs n in [-126, 127]
  using reg = float;
  using mask = bool;

  static inline reg load(const float* p) { return *p; }
  static inline void store(float* p, reg v) { *p = v; }
  static inline reg set1(float v) { return v; }
  static inline reg zero() { return 0.0f; }
  static inline reg add(reg a, reg b) { return a + b; }
  static inline reg sub(reg a, reg b) { return a - b; }
  static inline reg mul(reg a, reg b) { return a * b; }
  static inline reg div(reg a, reg b) { return a / b; }
  static inline reg fmadd(reg a, reg b, reg c) { return a * b + c; }
  static inline reg fnmadd(reg a, reg b, reg c) { return c - a * b; }
  // as x86: the second operand when either is NaN
  static inline reg min(reg a, reg b) { return a < b ? a : b; }
  static inline reg max(reg a, reg b) { return a > b ? a : b; }
  static inline reg abs(reg a) { return std::fabs(a); }
  static inline reg neg(reg a) { return -a; }
  static inline reg copysign(reg mag, reg sgn) { return std::copysign(mag, sgn); }
  static inline mask lt(reg a, reg b) { return a < b; }
  static inline mask le(reg a, reg b) { return a <= b; }
  static inline mask gt(reg a, reg b) { return a > b; }
  static inline mask eq(reg a, reg b) { return a == b; }
  static inline mask isnan(reg a) { return a != a; }
  static inline mask negative(reg a) { return std::signbit(a); }
  static inline mask mand(mask a, mask b) { return a && b; }
  static inline mask mor(mask a, mask b) { return a || b; }
  static inline reg select(mask m, reg a, reg b) { return m ? a : b; }
  static inline reg round(reg a) { return std::nearbyint(a); }
  static inline reg ldexp(reg p, reg n) {
    if (n != n) return n;  // NaN (casting it would be undefined)
    return std::ldexp(p, static_cast<int>(n));
  }
  static inline void frexp(reg x, reg* m, reg* e) {
    int k;
    const float f = std::frexp(x, &k);  // [0.5, 1)
    *m = 2.0f * f;
    *e = static_cast<float>(k - 1);
  }
  static inline reg recip(reg a) { return 1.0f / a; }
  static inline float hsum(reg a) { return a; }
  static inline float hmax(reg a) { return a; }
};

}  // namespace vec_scalar
}  // namespace cnnx
