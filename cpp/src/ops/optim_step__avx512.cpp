// The fused optimiser step with AVX-512: 16 floats per vector, masked tail
// (see optim_step_impl.h).
#include <immintrin.h>

namespace {

struct V {
  using T = __m512;
  static constexpr int W = 16;
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static __mmask16 tail(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static T load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  static void store_n(float* p, T v, int n) { _mm512_mask_storeu_ps(p, tail(n), v); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T sqrt(T a) { return _mm512_sqrt_ps(a); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T fnma(T a, T b, T c) { return _mm512_fnmadd_ps(a, b, c); }
  static double hsum(T a) {
    alignas(64) float t[16];
    _mm512_store_ps(t, a);
    double s = 0.0;
    for (float x : t) s += x;
    return s;
  }
};

}  // namespace

#define CNNX_OPTSTEP_NS optstep_avx512
#include "ops/optim_step_impl.h"
