// AVX2 + FMA micro-kernels: MR rows x NV*8 columns of ymm accumulators.
// 6x16 (12 accumulators, 2 B loads + 6 broadcasts per 12 FMAs) is the
// default; 4x24 (12 accumulators, 3 B loads + 4 broadcasts) and kc = 384 are
// built for measurement (benchmarks/bench_gemm.py --tiles --avx2): on Zen 4,
// 4x24 is 0-15% slower, kc = 384 within noise.
#include <immintrin.h>

#include "gemm/ukernel.h"

namespace cnnx {
namespace {

inline __m256i lane_mask(int count) {  // first `count` lanes on (0..8)
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), idx);
}

// One k step: NV B vectors, MR broadcasts of A (row i at a[i * RS]).
template <int MR, int NV, int64_t RS>
inline void step(const float* a, int64_t rs, const float* b, __m256 (&acc)[MR][NV]) {
  __m256 bv[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) bv[j] = _mm256_loadu_ps(b + 8 * j);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const __m256 ai = _mm256_broadcast_ss(a + i * (RS ? RS : rs));
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_fmadd_ps(ai, bv[j], acc[i][j]);
  }
}

template <int MR, int NV>
void f32_gemm__avx2(int64_t kc, const float* a, int64_t a_stride, const float* b, int64_t b_stride,
                    float* c, int64_t ldc, int m, int n, const UkernelArgs& args) {
  constexpr int NR = 8 * NV;
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();
    // C is touched only after the k loop: start fetching its lines now.
    if (i < m) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
  }
  if (a_stride == 0) {
    // Packed A: row i of step k at a[k*MR + i]. Four steps per iteration at
    // constant offsets (no index arithmetic between the FMAs).
    for (int64_t k = 0; k < kc; ++k) {
      step<MR, NV, 1>(a, 1, b, acc);
      a += MR;
      b += b_stride;
    }
  } else {
    // A read in place: row i of step k at a[i*a_stride + k].
    for (int64_t k = 0; k < kc; ++k) {
      step<MR, NV, 0>(a, a_stride, b, acc);
      a += 1;
      b += b_stride;
    }
  }

  const __m256 alpha = _mm256_set1_ps(args.alpha);
  const __m256 beta = _mm256_set1_ps(args.beta);
  const __m256 zero = _mm256_setzero_ps();
  const bool relu = args.act == Activation::relu;
  const bool read_c = args.beta != 0.0f;
  if (n == NR) {
    // Full width: plain loads and stores (masked ones are slow on some CPUs).
    __m256 bias[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bias[j] = args.bias ? _mm256_loadu_ps(args.bias + 8 * j) : zero;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      if (i >= m) break;
      float* crow = c + i * ldc;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        __m256 v = _mm256_fmadd_ps(alpha, acc[i][j], bias[j]);
        if (read_c) v = _mm256_fmadd_ps(beta, _mm256_loadu_ps(crow + 8 * j), v);
        if (relu) v = _mm256_max_ps(zero, v);  // (zero, v): NaN passes, as std::max(v, 0)
        _mm256_storeu_ps(crow + 8 * j, v);
      }
    }
    return;
  }
  __m256i mask[NV];
  __m256 bias[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    const int live = n - 8 * j;
    mask[j] = lane_mask(live < 0 ? 0 : (live > 8 ? 8 : live));
    bias[j] = args.bias ? _mm256_maskload_ps(args.bias + 8 * j, mask[j]) : zero;
  }
  // Unrolled over MR with a guard: indexing acc by a run-time row would
  // force the accumulators out of registers into memory.
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* crow = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      if (8 * j >= n) break;
      __m256 v = _mm256_fmadd_ps(alpha, acc[i][j], bias[j]);
      if (read_c) v = _mm256_fmadd_ps(beta, _mm256_maskload_ps(crow + 8 * j, mask[j]), v);
      if (relu) v = _mm256_max_ps(zero, v);
      _mm256_maskstore_ps(crow + 8 * j, mask[j], v);
    }
  }
}

}  // namespace

// mc is a multiple of mr; the kc x NR B micro-panel (32 KB at 6x16) sits in L1.
const GemmConfig kGemmAvx2Variants[] = {
    {"f32_gemm_6x16__avx2", 6, 16, 192, 512, 4096, f32_gemm__avx2<6, 2>},
    {"f32_gemm_4x24__avx2", 4, 24, 192, 384, 4104, f32_gemm__avx2<4, 3>},
    {"f32_gemm_6x16k384__avx2", 6, 16, 144, 384, 4096, f32_gemm__avx2<6, 2>},
};
const int kGemmAvx2VariantCount = 3;

const GemmConfig kGemmAvx2 = {"f32_gemm_6x16__avx2", 6, 16, 192, 512, 4096, f32_gemm__avx2<6, 2>};

}  // namespace cnnx
