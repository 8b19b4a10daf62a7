// Augmentation loops with AVX2 + FMA: 8 lanes, hardware gathers (see augment_impl.h).
#include <immintrin.h>

#include <cstdint>

namespace {

struct V {
  using T = __m256;
  using TI = __m256i;
  using M = __m256;  // all-ones / all-zeros lanes
  using IdxLane = int32_t;
  static constexpr int W = 8;
  static T set1(float x) { return _mm256_set1_ps(x); }
  static T iota() { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static __m256i tail(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static T load_n(const float* p, int n) { return _mm256_maskload_ps(p, tail(n)); }
  static void store_n(float* p, T v, int n) { _mm256_maskstore_ps(p, tail(n), v); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T floor(T a) { return _mm256_floor_ps(a); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static M lt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M ge(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M mand(M a, M b) { return _mm256_and_ps(a, b); }
  static M all_true() { return _mm256_castsi256_ps(_mm256_set1_epi32(-1)); }
  static T blend(M m, T a, T b) { return _mm256_blendv_ps(b, a, m); }
  static TI cvt(T a) { return _mm256_cvttps_epi32(a); }
  static TI madd(TI a, int k, TI b) {
    return _mm256_add_epi32(_mm256_mullo_epi32(a, _mm256_set1_epi32(k)), b);
  }
  static T gather(const float* base, TI idx, M m, T src) {
    return _mm256_mask_i32gather_ps(src, base, idx, m, 4);
  }
  static void store_i(int32_t* p, TI v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static void store_f(float* p, T v) { _mm256_storeu_ps(p, v); }
};

}  // namespace

#define CNNX_AUGMENT_NS augment_avx2
#include "augment/augment_impl.h"
