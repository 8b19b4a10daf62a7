// Layout loops, written once and compiled per ISA: layout_kernels.cpp
// (portable), layout__avx2.cpp and layout__avx512.cpp include this file with
// CNNX_LAYOUT_NS set to their own namespace, so GCC vectorises the same
// loops for each width. The channel shuffle by two (ShuffleNet v2's, the
// common case) has explicit interleaving bodies where the ISA has them.
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "layout/layout_kernels.h"

namespace cnnx {
namespace CNNX_LAYOUT_NS {
namespace {

void add(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void axpy(float a, const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void blend(float a, const float* __restrict x0, float b, const float* __restrict x1,
           float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a * x0[i] + b * x1[i];
}

void bias_act(float* __restrict y, int64_t rows, int64_t C, const float* __restrict bias,
              bool relu) {
  for (int64_t r = 0; r < rows; ++r) {
    float* __restrict yr = y + r * C;
    if (bias && relu) {
      for (int64_t c = 0; c < C; ++c) {
        const float v = yr[c] + bias[c];
        yr[c] = v > 0.0f ? v : 0.0f;
      }
    } else if (bias) {
      for (int64_t c = 0; c < C; ++c) yr[c] += bias[c];
    } else if (relu) {
      for (int64_t c = 0; c < C; ++c) yr[c] = yr[c] > 0.0f ? yr[c] : 0.0f;
    }
  }
}

void repeat_pixels(const float* __restrict x, int64_t W, int64_t C, int64_t f,
                   float* __restrict y) {
  if (C == 1) {  // a plain image: repeat values
    for (int64_t i = 0; i < W; ++i)
      for (int64_t k = 0; k < f; ++k) y[i * f + k] = x[i];
    return;
  }
  for (int64_t i = 0; i < W; ++i) {
    const float* __restrict px = x + i * C;
    for (int64_t k = 0; k < f; ++k) {
      float* __restrict d = y + (i * f + k) * C;
      for (int64_t c = 0; c < C; ++c) d[c] = px[c];
    }
  }
}

void sum_pixel_groups(const float* __restrict x, int64_t W, int64_t C, int64_t f,
                      float* __restrict y) {
  for (int64_t i = 0; i < W; ++i) {
    float* __restrict d = y + i * C;
    const float* __restrict s = x + i * f * C;
    for (int64_t c = 0; c < C; ++c) d[c] = s[c];
    for (int64_t k = 1; k < f; ++k) {
      const float* __restrict t = s + k * C;
      for (int64_t c = 0; c < C; ++c) d[c] += t[c];
    }
  }
}

void blend_pixels(const float* __restrict x, int64_t C, int64_t n, const int64_t* i0,
                  const int64_t* i1, const float* w0, const float* w1, float* __restrict y) {
  for (int64_t o = 0; o < n; ++o) {
    const float a = w0[o], b = w1[o];
    const float* __restrict p = x + i0[o] * C;
    const float* __restrict q = x + i1[o] * C;
    float* __restrict d = y + o * C;
    for (int64_t c = 0; c < C; ++c) d[c] = a * p[c] + b * q[c];
  }
}

void blend_pixels_backward(const float* __restrict v, int64_t C, int64_t n, const int64_t* i0,
                           const int64_t* i1, const float* w0, const float* w1,
                           float* __restrict dx) {
  for (int64_t o = 0; o < n; ++o) {
    const float a = w0[o], b = w1[o];
    const float* __restrict s = v + o * C;
    float* __restrict p = dx + i0[o] * C;
    for (int64_t c = 0; c < C; ++c) p[c] += a * s[c];
    float* __restrict q = dx + i1[o] * C;
    for (int64_t c = 0; c < C; ++c) q[c] += b * s[c];
  }
}

void transpose_block(const float* __restrict src, int64_t ld_src, int64_t rows, int64_t cols,
                     float* __restrict dst, int64_t ld_dst) {
  // Few columns (block sizes, groups): one pass per column, contiguous writes.
  for (int64_t j = 0; j < cols; ++j) {
    float* __restrict d = dst + j * ld_dst;
    const float* __restrict s = src + j;
    for (int64_t r = 0; r < rows; ++r) d[r] = s[r * ld_src];
  }
}

// y[2j] = a[j], y[2j + 1] = b[j] for j < n.
void interleave2(const float* __restrict a, const float* __restrict b, int64_t n,
                 float* __restrict y) {
  int64_t j = 0;
#if defined(__AVX512F__)
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (; j + 16 <= n; j += 16) {
    const __m512 va = _mm512_loadu_ps(a + j), vb = _mm512_loadu_ps(b + j);
    _mm512_storeu_ps(y + 2 * j, _mm512_permutex2var_ps(va, lo, vb));
    _mm512_storeu_ps(y + 2 * j + 16, _mm512_permutex2var_ps(va, hi, vb));
  }
#elif defined(__AVX2__)
  for (; j + 8 <= n; j += 8) {
    const __m256 va = _mm256_loadu_ps(a + j), vb = _mm256_loadu_ps(b + j);
    const __m256 l = _mm256_unpacklo_ps(va, vb);  // a0 b0 a1 b1 | a4 b4 a5 b5
    const __m256 h = _mm256_unpackhi_ps(va, vb);  // a2 b2 a3 b3 | a6 b6 a7 b7
    _mm256_storeu_ps(y + 2 * j, _mm256_permute2f128_ps(l, h, 0x20));
    _mm256_storeu_ps(y + 2 * j + 8, _mm256_permute2f128_ps(l, h, 0x31));
  }
#endif
  for (; j < n; ++j) {
    y[2 * j] = a[j];
    y[2 * j + 1] = b[j];
  }
}

void shuffle(const float* __restrict x, int64_t pixels, int64_t g, int64_t cpg,
             float* __restrict y) {
  const int64_t C = g * cpg;
  if (g == 2) {
    for (int64_t p = 0; p < pixels; ++p) interleave2(x + p * C, x + p * C + cpg, cpg, y + p * C);
    return;
  }
  for (int64_t p = 0; p < pixels; ++p) {
    const float* __restrict s = x + p * C;
    float* __restrict d = y + p * C;
    for (int64_t i = 0; i < g; ++i)
      for (int64_t j = 0; j < cpg; ++j) d[j * g + i] = s[i * cpg + j];
  }
}

}  // namespace

const LayoutKernels kernels = {add,          axpy,
                               blend,        bias_act,
                               repeat_pixels, sum_pixel_groups,
                               blend_pixels, blend_pixels_backward,
                               transpose_block, shuffle};

}  // namespace CNNX_LAYOUT_NS
}  // namespace cnnx
