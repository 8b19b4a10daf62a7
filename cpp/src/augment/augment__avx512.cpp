// Augmentation loops with AVX-512: 16 lanes, masked gathers and tails (see augment_impl.h).
#include <immintrin.h>

#include <cstdint>

namespace {

struct V {
  using T = __m512;
  using TI = __m512i;
  using M = __mmask16;
  using IdxLane = int32_t;
  static constexpr int W = 16;
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T iota() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static __mmask16 tail(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static T load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  static void store_n(float* p, T v, int n) { _mm512_mask_storeu_ps(p, tail(n), v); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T floor(T a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static M lt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M ge(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static M all_true() { return static_cast<M>(0xFFFF); }
  static T blend(M m, T a, T b) { return _mm512_mask_blend_ps(m, b, a); }
  static TI cvt(T a) { return _mm512_cvttps_epi32(a); }
  static TI madd(TI a, int k, TI b) {
    return _mm512_add_epi32(_mm512_mullo_epi32(a, _mm512_set1_epi32(k)), b);
  }
  static T gather(const float* base, TI idx, M m, T src) {
    return _mm512_mask_i32gather_ps(src, m, idx, base, 4);
  }
  static void store_i(int32_t* p, TI v) { _mm512_storeu_si512(p, v); }
  static void store_f(float* p, T v) { _mm512_storeu_ps(p, v); }
};

}  // namespace

#define CNNX_AUGMENT_NS augment_avx512
#include "augment/augment_impl.h"
