// Portable pooling kernels: SSE2 (4 floats per vector, part of every
// x86-64 CPU) or plain scalar code elsewhere.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "pool/pool_internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace cnnx {
namespace pool_generic {

#if defined(__SSE2__)
struct V {
  static constexpr int W = 4;
  using reg = __m128;
  using ireg = __m128i;
  using msk = __m128;
  static inline reg load(const float* p) { return _mm_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm_storeu_ps(p, v); }
  static inline reg load_part(const float* p, int n) {
    float t[4] = {0.f, 0.f, 0.f, 0.f};
    std::memcpy(t, p, sizeof(float) * n);
    return _mm_loadu_ps(t);
  }
  static inline void store_part(float* p, reg v, int n) {
    float t[4];
    _mm_storeu_ps(t, v);
    std::memcpy(p, t, sizeof(float) * n);
  }
  static inline reg zero() { return _mm_setzero_ps(); }
  static inline reg set1(float v) { return _mm_set1_ps(v); }
  static inline reg add(reg a, reg b) { return _mm_add_ps(a, b); }
  static inline reg mul(reg a, reg b) { return _mm_mul_ps(a, b); }
  static inline reg fmadd(reg a, reg b, reg c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  static inline reg max_keep(reg x, reg m) { return _mm_max_ps(x, m); }
  static inline msk mnone() { return _mm_setzero_ps(); }
  static inline msk isnan(reg x) { return _mm_cmpunord_ps(x, x); }
  static inline msk mor(msk a, msk b) { return _mm_or_ps(a, b); }
  static inline reg with_nan(reg m, msk k) { return _mm_or_ps(m, k); }
  static inline msk take(reg x, reg m) {
    return _mm_or_ps(_mm_cmpgt_ps(x, m), _mm_cmpunord_ps(x, x));
  }
  static inline reg blend(msk k, reg a, reg b) {
    return _mm_or_ps(_mm_and_ps(k, a), _mm_andnot_ps(k, b));
  }
  static inline ireg iset1(int32_t v) { return _mm_set1_epi32(v); }
  static inline ireg iblend(msk k, ireg a, ireg b) {
    const __m128i ki = _mm_castps_si128(k);
    return _mm_or_si128(_mm_and_si128(ki, a), _mm_andnot_si128(ki, b));
  }
  static inline msk ieq(ireg a, ireg b) { return _mm_castsi128_ps(_mm_cmpeq_epi32(a, b)); }
  static inline reg masked(msk k, reg v) { return _mm_and_ps(k, v); }
};
#else
// Scalar fallback for CPUs without SSE2: one float per "vector".
struct V {
  static constexpr int W = 1;
  using reg = float;
  using ireg = int32_t;
  using msk = bool;
  static inline reg load(const float* p) { return *p; }
  static inline void store(float* p, reg v) { *p = v; }
  static inline reg load_part(const float* p, int) { return *p; }
  static inline void store_part(float* p, reg v, int) { *p = v; }
  static inline reg zero() { return 0.f; }
  static inline reg set1(float v) { return v; }
  static inline reg add(reg a, reg b) { return a + b; }
  static inline reg mul(reg a, reg b) { return a * b; }
  static inline reg fmadd(reg a, reg b, reg c) { return a * b + c; }
  static inline reg max_keep(reg x, reg m) { return x > m ? x : m; }
  static inline msk mnone() { return false; }
  static inline msk isnan(reg x) { return std::isnan(x); }
  static inline msk mor(msk a, msk b) { return a || b; }
  static inline reg with_nan(reg m, msk k) { return k ? NAN : m; }
  static inline msk take(reg x, reg m) { return x > m || std::isnan(x); }
  static inline reg blend(msk k, reg a, reg b) { return k ? a : b; }
  static inline ireg iset1(int32_t v) { return v; }
  static inline ireg iblend(msk k, ireg a, ireg b) { return k ? a : b; }
  static inline msk ieq(ireg a, ireg b) { return a == b; }
  static inline reg masked(msk k, reg v) { return k ? v : 0.f; }
};
#endif

#define CNNX_POOL_KERNELS_BODY
#include "pool/pool_kernels.h"
#undef CNNX_POOL_KERNELS_BODY

}  // namespace pool_generic

namespace pool {
const Kernels kPoolGeneric = {"generic",
                              pool_generic::max_forward_rows<pool_generic::V>,
                              pool_generic::avg_forward_rows<pool_generic::V>,
                              pool_generic::max_backward_block<pool_generic::V, false>,
                              pool_generic::avg_backward_rows<pool_generic::V>,
                              pool_generic::avg_forward_rows_stream<pool_generic::V>,
                              pool_generic::max_backward_block<pool_generic::V, true>,
                              pool_generic::max_forward_rows_window<pool_generic::V>,
                              pool_generic::V::W,
                              pool_generic::max_forward_rows_dilated<pool_generic::V>,
                              pool_generic::max_backward_block_dilated<pool_generic::V>};
}  // namespace pool
}  // namespace cnnx
