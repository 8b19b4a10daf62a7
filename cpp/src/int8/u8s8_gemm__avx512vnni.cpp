// AVX512-VNNI micro-kernels: MR rows x 16*NV columns, vpdpbusd on zmm (16
// int32 lanes, each the dot product of 4 uint8 activations with 4 int8
// weights). 8x32 keeps 16 accumulators: measured on Zen 4 it sustains one
// vpdpbusd per cycle from L1, while GCC's register allocation adds moves to
// tiles of 20+ accumulators (10x32: 57% of peak).
#include <immintrin.h>

#include <cstring>

#include "int8/qstore_avx512.h"

namespace cnnx {
namespace {

inline size_t out_bytes(QOutput o) { return o == QOutput::u8 ? 1 : 4; }

template <int MR, int NV>
void u8s8_gemm__avx512vnni(int64_t seg_steps, int nseg, const uint8_t* const* a, int a_stride,
                           const uint8_t* b, void* c, int64_t ldc, int m, int n,
                           const QStoreArgs& st) {
  __m512i acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();

  for (int s = 0; s < nseg; ++s, a += a_stride) {
    const uint8_t* row[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) row[i] = a[i];
    for (int64_t q = 0; q < seg_steps; ++q) {
      __m512i bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(b + v * 64);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        int32_t word;
        std::memcpy(&word, row[i] + q * 4, 4);
        const __m512i ai = _mm512_set1_epi32(word);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], ai, bv[v]);
      }
      b += NV * 64;
    }
  }

  const size_t row_bytes = static_cast<size_t>(ldc) * out_bytes(st.out);
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    if (v * 16 >= n) break;
    qzmm::Columns col;
    col.load(st, v * 16, n);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      if (i >= m) break;
      qzmm::store(acc[i][v], col, st, static_cast<uint8_t*>(c) + i * row_bytes, v * 16);
    }
  }
}

}  // namespace

// The same kernels with fewer rows, for ragged last tiles.
const QGemmUkernel kRows32[8] = {u8s8_gemm__avx512vnni<1, 2>, u8s8_gemm__avx512vnni<2, 2>,
                                 u8s8_gemm__avx512vnni<3, 2>, u8s8_gemm__avx512vnni<4, 2>,
                                 u8s8_gemm__avx512vnni<5, 2>, u8s8_gemm__avx512vnni<6, 2>,
                                 u8s8_gemm__avx512vnni<7, 2>, u8s8_gemm__avx512vnni<8, 2>};
const QGemmUkernel kRows64[4] = {u8s8_gemm__avx512vnni<1, 4>, u8s8_gemm__avx512vnni<2, 4>,
                                 u8s8_gemm__avx512vnni<3, 4>, u8s8_gemm__avx512vnni<4, 4>};

const QGemmConfig kQGemmAvx512VnniVariants[] = {
    {"u8s8_gemm_8x32__avx512vnni", 8, 32, 1, u8s8_gemm__avx512vnni<8, 2>, kRows32},
    {"u8s8_gemm_6x32__avx512vnni", 6, 32, 1, u8s8_gemm__avx512vnni<6, 2>, kRows32},
    {"u8s8_gemm_4x32__avx512vnni", 4, 32, 1, u8s8_gemm__avx512vnni<4, 2>, kRows32},
    {"u8s8_gemm_4x64__avx512vnni", 4, 64, 1, u8s8_gemm__avx512vnni<4, 4>, kRows64},
};
const int kQGemmAvx512VnniVariantCount = 4;

// The default: the best of the variants (benchmarks/bench_int8.py --tiles).
const QGemmConfig kQGemmAvx512Vnni = {
    "u8s8_gemm_8x32__avx512vnni", 8,       32, 1,
    u8s8_gemm__avx512vnni<8, 2>,  kRows32, 1,  {&kQGemmAvx512VnniN8, &kQGemmAvx512VnniN16}};

}  // namespace cnnx
