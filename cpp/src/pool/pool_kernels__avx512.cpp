// Pooling kernels for AVX-512 (16 floats per vector, mask registers for
// partial vectors and lane selects).
#include <immintrin.h>

#include <cstdint>

#include "pool/pool_internal.h"

namespace cnnx {
namespace pool_avx512 {

struct V {
  static constexpr int W = 16;
  using reg = __m512;
  using ireg = __m512i;
  using msk = __mmask16;
  static inline __mmask16 part(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static inline reg load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static inline reg load_part(const float* p, int n) { return _mm512_maskz_loadu_ps(part(n), p); }
  static inline void store_part(float* p, reg v, int n) { _mm512_mask_storeu_ps(p, part(n), v); }
  static inline reg zero() { return _mm512_setzero_ps(); }
  static inline reg set1(float v) { return _mm512_set1_ps(v); }
  static inline reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static inline reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static inline reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static inline reg max_keep(reg x, reg m) { return _mm512_max_ps(x, m); }
  static inline msk mnone() { return 0; }
  static inline msk isnan(reg x) { return _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q); }
  static inline msk mor(msk a, msk b) { return static_cast<msk>(a | b); }
  static inline reg with_nan(reg m, msk k) {
    return _mm512_mask_mov_ps(m, k, _mm512_set1_ps(__builtin_nanf("")));
  }
  static inline msk take(reg x, reg m) {
    return static_cast<msk>(_mm512_cmp_ps_mask(x, m, _CMP_GT_OQ) |
                            _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q));
  }
  static inline reg blend(msk k, reg a, reg b) { return _mm512_mask_mov_ps(b, k, a); }
  static inline ireg iset1(int32_t v) { return _mm512_set1_epi32(v); }
  static inline ireg iblend(msk k, ireg a, ireg b) { return _mm512_mask_mov_epi32(b, k, a); }
  static inline msk ieq(ireg a, ireg b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static inline reg masked(msk k, reg v) { return _mm512_maskz_mov_ps(k, v); }
};

#define CNNX_POOL_KERNELS_BODY
#include "pool/pool_kernels.h"
#undef CNNX_POOL_KERNELS_BODY

}  // namespace pool_avx512

namespace pool {
const Kernels kPoolAvx512 = {"avx512",
                             pool_avx512::max_forward_rows<pool_avx512::V>,
                             pool_avx512::avg_forward_rows<pool_avx512::V>,
                             pool_avx512::max_backward_block<pool_avx512::V, false>,
                             pool_avx512::avg_backward_rows<pool_avx512::V>,
                             pool_avx512::avg_forward_rows_stream<pool_avx512::V>,
                             pool_avx512::max_backward_block<pool_avx512::V, true>,
                             pool_avx512::max_forward_rows_window<pool_avx512::V>,
                             pool_avx512::V::W,
                             pool_avx512::max_forward_rows_dilated<pool_avx512::V>,
                             pool_avx512::max_backward_block_dilated<pool_avx512::V>};
}  // namespace pool
}  // namespace cnnx
