// The fused optimiser step with AVX2 + FMA: 8 floats per vector, masked
// loads and stores for the tail (see optim_step_impl.h).
#include <immintrin.h>

namespace {

struct V {
  using T = __m256;
  static constexpr int W = 8;
  static T set1(float x) { return _mm256_set1_ps(x); }
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
  static T sqrt(T a) { return _mm256_sqrt_ps(a); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T fnma(T a, T b, T c) { return _mm256_fnmadd_ps(a, b, c); }
  static double hsum(T a) {
    alignas(32) float t[8];
    _mm256_store_ps(t, a);
    double s = 0.0;
    for (float x : t) s += x;
    return s;
  }
};

}  // namespace

#define CNNX_OPTSTEP_NS optstep_avx2
#include "ops/optim_step_impl.h"
