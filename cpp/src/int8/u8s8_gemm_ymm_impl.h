// The ymm micro-kernel shared by the AVX2 (vpmaddwd on int16 pairs) and
// AVX-VNNI (vpdpbusd on 4 bytes) kernels: MR rows x 8*NV columns. Each file
// instantiates it with its dot-product step (a `Dot` with
// `static __m256i step(__m256i acc, __m256i a_word, __m256i b)`), so the
// AVX-VNNI kernel's loop, layout and store are the very code that the AVX2
// and EVEX builds test on CPUs without AVX-VNNI.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "int8/qstore_avx2.h"

namespace cnnx {
namespace {  // see qgemm_ukernel.h
namespace qymm {

template <int MR, int NV, class Dot>
void gemm_kernel(int64_t seg_steps, int nseg, const uint8_t* const* a, int a_stride,
                 const uint8_t* b, void* c, int64_t ldc, int m, int n, const QStoreArgs& st) {
  __m256i acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_si256();

  for (int s = 0; s < nseg; ++s, a += a_stride) {
    const uint8_t* row[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) row[i] = a[i];
    for (int64_t q = 0; q < seg_steps; ++q) {
      __m256i bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        bv[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + v * 32));
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        int32_t word;
        std::memcpy(&word, row[i] + q * 4, 4);
        const __m256i ai = _mm256_set1_epi32(word);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = Dot::step(acc[i][v], ai, bv[v]);
      }
      b += NV * 32;
    }
  }

  const size_t row_bytes = static_cast<size_t>(ldc) * (st.out == QOutput::u8 ? 1 : 4);
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    if (v * 8 >= n) break;
    Columns col;
    col.load(st, v * 8, n);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      if (i >= m) break;
      store(acc[i][v], col, st, static_cast<uint8_t*>(c) + i * row_bytes, v * 8);
    }
  }
}

}  // namespace qymm
}  // namespace
}  // namespace cnnx
