// AVX2 + FMA micro-kernel: 6 rows x 16 columns = 12 ymm accumulators,
// 2 ymm for the B row and 1 for the broadcast A value.
#include <immintrin.h>

#include "gemm/ukernel.h"

namespace cnnx {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;

inline __m256i lane_mask(int count) {  // first `count` lanes on (0..8)
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), idx);
}

void f32_gemm_6x16__avx2(int64_t kc, const float* a, int64_t a_stride, const float* b,
                         int64_t b_stride, float* c, int64_t ldc, int m, int n,
                         const UkernelArgs& args) {
  __m256 acc0[MR], acc1[MR];  // two named arrays (not [MR][2]) stay in registers
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
  // Packed A: row i of step k at a[k*MR + i]; in place: a[i*a_stride + k].
  const int64_t row_step = a_stride == 0 ? 1 : a_stride;
  const int64_t k_step = a_stride == 0 ? MR : 1;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i * row_step);
      acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
    }
    a += k_step;
    b += b_stride;
  }
  const __m256i mask0 = lane_mask(n < 8 ? n : 8);
  const __m256i mask1 = lane_mask(n > 8 ? n - 8 : 0);
  const __m256 alpha = _mm256_set1_ps(args.alpha);
  const __m256 beta = _mm256_set1_ps(args.beta);
  const __m256 zero = _mm256_setzero_ps();
  __m256 bias0 = zero, bias1 = zero;
  if (args.bias) {
    bias0 = _mm256_maskload_ps(args.bias, mask0);
    bias1 = _mm256_maskload_ps(args.bias + 8, mask1);
  }
  // Unrolled over MR with a guard: indexing acc by a run-time row would
  // force the accumulators out of registers into memory.
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* crow = c + i * ldc;
    __m256 v0 = _mm256_mul_ps(alpha, acc0[i]);
    __m256 v1 = _mm256_mul_ps(alpha, acc1[i]);
    if (args.beta != 0.0f) {
      v0 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(crow, mask0), v0);
      v1 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(crow + 8, mask1), v1);
    }
    v0 = _mm256_add_ps(v0, bias0);
    v1 = _mm256_add_ps(v1, bias1);
    if (args.act == Activation::relu) {
      v0 = _mm256_max_ps(zero, v0);  // (zero, v): NaN passes through, as in std::max(v, 0)
      v1 = _mm256_max_ps(zero, v1);
    }
    _mm256_maskstore_ps(crow, mask0, v0);
    _mm256_maskstore_ps(crow + 8, mask1, v1);
  }
}

}  // namespace

const GemmConfig kGemmAvx2 = {"f32_gemm_6x16__avx2", MR, NR, 192, 512, 4096,
                              f32_gemm_6x16__avx2};

}  // namespace cnnx
