// AVX-512 micro-kernels: MR rows x 32 columns (two zmm per row), so MR=14
// uses 28 of the 32 zmm registers as accumulators. Several MR are built so
// that the tile can be chosen by measurement (benchmarks/bench_gemm.py
// --tiles); kGemmAvx512 names the one in use.
#include <immintrin.h>

#include "gemm/ukernel.h"

namespace cnnx {
namespace {

constexpr int NR = 32;

template <int MR>
void f32_gemm_Nx32__avx512(int64_t kc, const float* a, int64_t a_stride, const float* b,
                           int64_t b_stride, float* c, int64_t ldc, int m, int n,
                           const UkernelArgs& args) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    acc0[i] = acc1[i] = _mm512_setzero_ps();
    // C is touched only after the k loop: start fetching its lines now so
    // that the stores do not wait on memory.
    if (i < m) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    }
  }

  if (a_stride == 0) {
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 b0 = _mm512_loadu_ps(b);
      const __m512 b1 = _mm512_loadu_ps(b + 16);
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * b_stride), _MM_HINT_T0);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
        acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
      }
      a += MR;
      b += b_stride;
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 b0 = _mm512_loadu_ps(b);
      const __m512 b1 = _mm512_loadu_ps(b + 16);
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * b_stride), _MM_HINT_T0);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i * a_stride]);
        acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
        acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
      }
      a += 1;
      b += b_stride;
    }
  }

  const __mmask16 mask0 = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1u);
  const __mmask16 mask1 =
      n >= 32 ? 0xFFFF : (n > 16 ? static_cast<__mmask16>((1u << (n - 16)) - 1u) : 0);
  const __m512 alpha = _mm512_set1_ps(args.alpha);
  const __m512 beta = _mm512_set1_ps(args.beta);
  const __m512 zero = _mm512_setzero_ps();
  __m512 bias0 = zero, bias1 = zero;
  if (args.bias) {
    bias0 = _mm512_maskz_loadu_ps(mask0, args.bias);
    bias1 = _mm512_maskz_loadu_ps(mask1, args.bias + 16);
  }
  const bool relu = args.act == Activation::relu;
  const bool read_c = args.beta != 0.0f;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* crow = c + i * ldc;
    __m512 v0 = _mm512_fmadd_ps(alpha, acc0[i], bias0);
    __m512 v1 = _mm512_fmadd_ps(alpha, acc1[i], bias1);
    if (read_c) {
      v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask0, crow), v0);
      v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask1, crow + 16), v1);
    }
    if (relu) {
      v0 = _mm512_max_ps(zero, v0);  // (zero, v): NaN passes through, as in std::max(v, 0)
      v1 = _mm512_max_ps(zero, v1);
    }
    _mm512_mask_storeu_ps(crow, mask0, v0);
    _mm512_mask_storeu_ps(crow + 16, mask1, v1);
  }
}

}  // namespace

// mc is a multiple of mr; kc x nr x 4 bytes of B micro-panel stays in L1.
const GemmConfig kGemmAvx512Variants[] = {
    {"f32_gemm_6x32__avx512", 6, NR, 96, 512, 4096, f32_gemm_Nx32__avx512<6>},
    {"f32_gemm_8x32__avx512", 8, NR, 192, 512, 4096, f32_gemm_Nx32__avx512<8>},
    {"f32_gemm_10x32__avx512", 10, NR, 100, 512, 4096, f32_gemm_Nx32__avx512<10>},
    {"f32_gemm_12x32__avx512", 12, NR, 96, 512, 4096, f32_gemm_Nx32__avx512<12>},
    {"f32_gemm_8x32m48__avx512", 8, NR, 48, 512, 4096, f32_gemm_Nx32__avx512<8>},
    {"f32_gemm_8x32k384__avx512", 8, NR, 96, 384, 4096, f32_gemm_Nx32__avx512<8>},
    {"f32_gemm_8x32k768__avx512", 8, NR, 64, 768, 4096, f32_gemm_Nx32__avx512<8>},
};
const int kGemmAvx512VariantCount = 7;

// Chosen by measurement on a Zen 4 EPYC (benchmarks/bench_gemm.py --tiles):
// 6x32 to 12x32 are within noise of each other at 1024^3 and 2048^3; 8x32
// wastes least on the ragged M of small batches. kc = 512 halves the passes
// over C compared with 256.
const GemmConfig kGemmAvx512 = {"f32_gemm_8x32__avx512", 8, NR, 192, 512, 4096,
                                f32_gemm_Nx32__avx512<8>};

}  // namespace cnnx
