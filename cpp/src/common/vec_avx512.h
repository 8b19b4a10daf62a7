// A vector of 16 floats for AVX-512 translation units only (files named
// *__avx512.cpp), for the templated math in common/vec_math.h. Each ISA's
// traits live in their own namespace, so no inline function compiled with
// AVX-512 flags is shared with another ISA's code.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace cnnx {
namespace vec_avx512 {

struct V {
  static constexpr int W = 16;
  static constexpr bool kSaturatingLdexp = true;  // scalef: any n
  using reg = __m512;
  using mask = __mmask16;

  static inline reg load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static inline reg set1(float v) { return _mm512_set1_ps(v); }
  static inline reg zero() { return _mm512_setzero_ps(); }
  static inline reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static inline reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static inline reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static inline reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static inline reg sqrt(reg a) { return _mm512_sqrt_ps(a); }  // IEEE: exact rounding
  static inline reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }    // a*b + c
  static inline reg fnmadd(reg a, reg b, reg c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a*b
  // x86 semantics: when either is NaN the SECOND operand is returned, so
  // min(constant, x) keeps a NaN x.
  static inline reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static inline reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static inline reg abs(reg a) { return _mm512_abs_ps(a); }
  static inline reg neg(reg a) {
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  }
  // |mag| with the sign of sgn
  static inline reg copysign(reg mag, reg sgn) {
    const __m512i s = _mm512_set1_epi32(static_cast<int>(0x80000000u));
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(mag), _mm512_castps_si512(sgn), s, 0xd8));  // s ? sgn : mag, bitwise
  }
  static inline mask lt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static inline mask le(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static inline mask gt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static inline mask eq(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static inline mask isnan(reg a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static inline mask negative(reg a) {  // the sign bit is set
    return _mm512_movepi32_mask(_mm512_castps_si512(a));
  }
  static inline mask mand(mask a, mask b) { return static_cast<mask>(a & b); }
  static inline mask mor(mask a, mask b) { return static_cast<mask>(a | b); }
  static inline reg select(mask m, reg a, reg b) { return _mm512_mask_mov_ps(b, m, a); }
  static inline reg round(reg a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // p * 2^n for integral n (any range: over- and underflow saturate, NaN stays)
  static inline reg ldexp(reg p, reg n) { return _mm512_scalef_ps(p, n); }
  // x = m * 2^e with m in [1, 2), for positive finite x
  static inline void frexp(reg x, reg* m, reg* e) {
    *m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    *e = _mm512_getexp_ps(x);
  }
  // 1 / a: the 14-bit estimate and one Newton step (about 1 ulp)
  static inline reg recip(reg a) {
    const reg r = _mm512_rcp14_ps(a);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(2.0f)));
  }
  static inline float hsum(reg a) { return _mm512_reduce_add_ps(a); }
  static inline float hmax(reg a) { return _mm512_reduce_max_ps(a); }

  // Kernels that keep tiles in registers size them by this.
  static constexpr int kRegs = 32;
  // Tails: the first n lanes (n clipped to 0..W); the others load as 0 and
  // are not stored.
  using tail = __mmask16;
  static inline tail tail_mask(int64_t n) {
    return n >= 16 ? static_cast<tail>(0xFFFF) : n > 0 ? static_cast<tail>((1u << n) - 1u) : 0;
  }
  static inline reg load_tail(const float* p, tail m) { return _mm512_maskz_loadu_ps(m, p); }
  static inline void store_tail(float* p, tail m, reg v) { _mm512_mask_storeu_ps(p, m, v); }
};

}  // namespace vec_avx512
}  // namespace cnnx
