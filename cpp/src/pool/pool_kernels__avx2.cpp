// Pooling kernels for AVX2 + FMA (8 floats per vector; lane masks are
// all-ones float lanes, partial vectors use maskload/maskstore).
#include <immintrin.h>

#include <cstdint>

#include "pool/pool_internal.h"

namespace cnnx {
namespace pool_avx2 {

alignas(32) static const int32_t kPartMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                  0,  0,  0,  0,  0,  0,  0,  0};

struct V {
  static constexpr int W = 8;
  using reg = __m256;
  using ireg = __m256i;
  using msk = __m256;
  static inline __m256i part(int n) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kPartMask + 8 - n));
  }
  static inline reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static inline reg load_part(const float* p, int n) { return _mm256_maskload_ps(p, part(n)); }
  static inline void store_part(float* p, reg v, int n) { _mm256_maskstore_ps(p, part(n), v); }
  static inline reg zero() { return _mm256_setzero_ps(); }
  static inline reg set1(float v) { return _mm256_set1_ps(v); }
  static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static inline reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static inline reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static inline reg max_keep(reg x, reg m) { return _mm256_max_ps(x, m); }
  static inline msk mnone() { return _mm256_setzero_ps(); }
  static inline msk isnan(reg x) { return _mm256_cmp_ps(x, x, _CMP_UNORD_Q); }
  static inline msk mor(msk a, msk b) { return _mm256_or_ps(a, b); }
  // All-ones lanes are a NaN bit pattern.
  static inline reg with_nan(reg m, msk k) { return _mm256_or_ps(m, k); }
  static inline msk take(reg x, reg m) {
    return _mm256_or_ps(_mm256_cmp_ps(x, m, _CMP_GT_OQ), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
  static inline reg blend(msk k, reg a, reg b) { return _mm256_blendv_ps(b, a, k); }
  static inline ireg iset1(int32_t v) { return _mm256_set1_epi32(v); }
  static inline ireg iblend(msk k, ireg a, ireg b) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(a), k));
  }
  static inline msk ieq(ireg a, ireg b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
  static inline reg masked(msk k, reg v) { return _mm256_and_ps(k, v); }
};

#define CNNX_POOL_KERNELS_BODY
#include "pool/pool_kernels.h"
#undef CNNX_POOL_KERNELS_BODY

}  // namespace pool_avx2

namespace pool {
const Kernels kPoolAvx2 = {"avx2",
                           pool_avx2::max_forward_rows<pool_avx2::V>,
                           pool_avx2::avg_forward_rows<pool_avx2::V>,
                           pool_avx2::max_backward_block<pool_avx2::V, false>,
                           pool_avx2::avg_backward_rows<pool_avx2::V>,
                           pool_avx2::avg_forward_rows_stream<pool_avx2::V>,
                           pool_avx2::max_backward_block<pool_avx2::V, true>,
                           pool_avx2::max_forward_rows_window<pool_avx2::V>,
                           pool_avx2::V::W,
                           pool_avx2::max_forward_rows_dilated<pool_avx2::V>,
                           pool_avx2::max_backward_block_dilated<pool_avx2::V>};
}  // namespace pool
}  // namespace cnnx
