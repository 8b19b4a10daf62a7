// A vector of 8 floats for AVX2 + FMA translation units only (files named
// *__avx2.cpp), for the templated math in common/vec_math.h (see
// vec_avx512.h for the interface).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace cnnx {
namespace vec_avx2 {

struct V {
  static constexpr int W = 8;
  static constexpr bool kSaturatingLdexp = false;  // ldexp needs n in [-126, 127]
  using reg = __m256;
  using mask = __m256;  // all-ones / all-zeros lanes

  static inline reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static inline reg set1(float v) { return _mm256_set1_ps(v); }
  static inline reg zero() { return _mm256_setzero_ps(); }
  static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static inline reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static inline reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static inline reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static inline reg sqrt(reg a) { return _mm256_sqrt_ps(a); }  // IEEE: exact rounding
  static inline reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static inline reg fnmadd(reg a, reg b, reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static inline reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static inline reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static inline reg abs(reg a) {
    return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
  }
  static inline reg neg(reg a) {
    return _mm256_xor_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u))));
  }
  static inline reg copysign(reg mag, reg sgn) {
    const reg s = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
  }
  static inline mask lt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static inline mask le(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static inline mask gt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static inline mask eq(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static inline mask isnan(reg a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static inline mask negative(reg a) {
    return _mm256_castsi256_ps(_mm256_srai_epi32(_mm256_castps_si256(a), 31));
  }
  static inline mask mand(mask a, mask b) { return _mm256_and_ps(a, b); }
  static inline mask mor(mask a, mask b) { return _mm256_or_ps(a, b); }
  static inline reg select(mask m, reg a, reg b) { return _mm256_blendv_ps(b, a, m); }
  static inline reg round(reg a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // p * 2^n for integral n in [-126, 127] (callers clamp)
  static inline reg ldexp(reg p, reg n) {
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
  static inline void frexp(reg x, reg* m, reg* e) {
    const __m256i u = _mm256_castps_si256(x);
    *e = _mm256_cvtepi32_ps(
        _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(u, 23), _mm256_set1_epi32(0xff)),
                         _mm256_set1_epi32(127)));
    *m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(u, _mm256_set1_epi32(0x007fffff)),
                                             _mm256_set1_epi32(0x3f800000)));
  }
  // 1 / a: the 12-bit estimate and one Newton step (about 2 ulp)
  static inline reg recip(reg a) {
    const reg r = _mm256_rcp_ps(a);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(a, r, _mm256_set1_ps(2.0f)));
  }
  static inline float hsum(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static inline float hmax(reg a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // Kernels that keep tiles in registers size them by this.
  static constexpr int kRegs = 16;
  // Tails: the first n lanes (n clipped to 0..W) as maskload/maskstore take
  // them; the others load as 0 and are not stored.
  using tail = __m256i;
  static inline tail tail_mask(int64_t n) {
    const int k = n <= 0 ? 0 : (n >= 8 ? 8 : static_cast<int>(n));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static inline reg load_tail(const float* p, tail m) { return _mm256_maskload_ps(p, m); }
  static inline void store_tail(float* p, tail m, reg v) { _mm256_maskstore_ps(p, m, v); }
};

}  // namespace vec_avx2
}  // namespace cnnx
