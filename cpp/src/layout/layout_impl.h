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

// Streaming stores end with a fence (so that other threads see them): only
// worth it for runs of a few KB at least.
constexpr int64_t kStreamMin = 1024;

// Our own loop rather than memcpy: glibc's large-copy path (rep movsb) was
// measured slower for the 10-20 KB rows these ops move on AMD EPYC.
void copy(const float* __restrict x, float* __restrict y, int64_t n, bool stream) {
  int64_t i = 0;
  stream = stream && n >= kStreamMin;
#if defined(__AVX512F__)
  if (stream) {
    for (; i < n && (reinterpret_cast<uintptr_t>(y + i) & 63); ++i) y[i] = x[i];
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(y + i, _mm512_loadu_ps(x + i));
    _mm_sfence();
  } else {
    for (; i + 64 <= n; i += 64) {
      const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
      const __m512 c = _mm512_loadu_ps(x + i + 32), d = _mm512_loadu_ps(x + i + 48);
      _mm512_storeu_ps(y + i, a);
      _mm512_storeu_ps(y + i + 16, b);
      _mm512_storeu_ps(y + i + 32, c);
      _mm512_storeu_ps(y + i + 48, d);
    }
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_loadu_ps(x + i));
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
      _mm512_mask_storeu_ps(y + i, m, _mm512_maskz_loadu_ps(m, x + i));
      return;
    }
  }
#elif defined(__AVX2__)
  if (stream) {
    for (; i < n && (reinterpret_cast<uintptr_t>(y + i) & 31); ++i) y[i] = x[i];
    for (; i + 8 <= n; i += 8) _mm256_stream_ps(y + i, _mm256_loadu_ps(x + i));
    _mm_sfence();
  } else {
    for (; i + 32 <= n; i += 32) {
      const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
      const __m256 c = _mm256_loadu_ps(x + i + 16), d = _mm256_loadu_ps(x + i + 24);
      _mm256_storeu_ps(y + i, a);
      _mm256_storeu_ps(y + i + 8, b);
      _mm256_storeu_ps(y + i + 16, c);
      _mm256_storeu_ps(y + i + 24, d);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_loadu_ps(x + i));
  }
#else
  (void)stream;
  if (n > 0) {
    std::memcpy(y, x, sizeof(float) * static_cast<size_t>(n));
    return;
  }
#endif
  for (; i < n; ++i) y[i] = x[i];
}

void copy_nt(const float* __restrict x, float* __restrict y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i < n && (reinterpret_cast<uintptr_t>(y + i) & 63); ++i) y[i] = x[i];
  for (; i + 16 <= n; i += 16) _mm512_stream_ps(y + i, _mm512_loadu_ps(x + i));
#elif defined(__AVX2__)
  for (; i < n && (reinterpret_cast<uintptr_t>(y + i) & 31); ++i) y[i] = x[i];
  for (; i + 8 <= n; i += 8) _mm256_stream_ps(y + i, _mm256_loadu_ps(x + i));
#endif
  for (; i < n; ++i) y[i] = x[i];
}

void fence() {
#if defined(__AVX512F__) || defined(__AVX2__)
  _mm_sfence();
#endif
}

void add(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void axpy(float a, const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void blend(float a, const float* __restrict x0, float b, const float* __restrict x1,
           float* __restrict y, int64_t n, bool stream) {
  int64_t i = 0;
  stream = stream && n >= kStreamMin;
#if defined(__AVX512F__)
  if (stream) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (; i < n && (reinterpret_cast<uintptr_t>(y + i) & 63); ++i) y[i] = a * x0[i] + b * x1[i];
    for (; i + 16 <= n; i += 16)
      _mm512_stream_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x0 + i),
                                              _mm512_mul_ps(vb, _mm512_loadu_ps(x1 + i))));
    _mm_sfence();
  }
#elif defined(__AVX2__)
  if (stream) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (; i < n && (reinterpret_cast<uintptr_t>(y + i) & 31); ++i) y[i] = a * x0[i] + b * x1[i];
    for (; i + 8 <= n; i += 8)
      _mm256_stream_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x0 + i),
                                              _mm256_mul_ps(vb, _mm256_loadu_ps(x1 + i))));
    _mm_sfence();
  }
#else
  (void)stream;
#endif
  for (; i < n; ++i) y[i] = a * x0[i] + b * x1[i];
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

#if defined(__AVX512F__)
// A store to 64-byte-aligned memory, streamed past the caches or not.
inline void store16(float* p, __m512 v, bool stream) {
  if (stream)
    _mm512_stream_ps(p, v);
  else
    _mm512_storeu_ps(p, v);
}
#endif

// y[2j] = a[j], y[2j + 1] = b[j] for j < n.
void interleave2(const float* __restrict a, const float* __restrict b, int64_t n,
                 float* __restrict y, bool stream) {
  int64_t j = 0;
#if defined(__AVX512F__)
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  stream = stream && (reinterpret_cast<uintptr_t>(y) & 63) == 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 va = _mm512_loadu_ps(a + j), vb = _mm512_loadu_ps(b + j);
    store16(y + 2 * j, _mm512_permutex2var_ps(va, lo, vb), stream);
    store16(y + 2 * j + 16, _mm512_permutex2var_ps(va, hi, vb), stream);
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

// a[j] = x[2j], b[j] = x[2j + 1] for j < n (the inverse of interleave2).
void deinterleave2(const float* __restrict x, int64_t n, float* __restrict a, float* __restrict b) {
  int64_t j = 0;
#if defined(__AVX512F__)
  const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (; j + 16 <= n; j += 16) {
    const __m512 r0 = _mm512_loadu_ps(x + 2 * j), r1 = _mm512_loadu_ps(x + 2 * j + 16);
    _mm512_storeu_ps(a + j, _mm512_permutex2var_ps(r0, ev, r1));
    _mm512_storeu_ps(b + j, _mm512_permutex2var_ps(r0, od, r1));
  }
#endif
  for (; j < n; ++j) {
    a[j] = x[2 * j];
    b[j] = x[2 * j + 1];
  }
}

void shuffle(const float* __restrict x, int64_t pixels, int64_t g, int64_t cpg, float* __restrict y,
             bool stream) {
  const int64_t C = g * cpg;
  if (g == 2) {
    // streamed only when every pixel starts on a cache line
    const bool s = stream && (C % 16) == 0;
    for (int64_t p = 0; p < pixels; ++p) interleave2(x + p * C, x + p * C + cpg, cpg, y + p * C, s);
    if (s) fence();
    return;
  }
  if (cpg == 2) {  // the shuffle by two undone (its backward)
    for (int64_t p = 0; p < pixels; ++p) deinterleave2(x + p * C, g, y + p * C, y + p * C + g);
    return;
  }
  for (int64_t p = 0; p < pixels; ++p) {
    const float* __restrict s = x + p * C;
    float* __restrict d = y + p * C;
    for (int64_t i = 0; i < g; ++i)
      for (int64_t j = 0; j < cpg; ++j) d[j * g + i] = s[i * cpg + j];
  }
}

// b = 2, CRD: the 4 values of channel c sit at x[c*4 + q], q = i*2 + j.
void d2s_crd2(const float* __restrict x, int64_t Co, float* __restrict y0, float* __restrict y1) {
  int64_t c = 0;
#if defined(__AVX512F__)
  // 16 channels at a time: de-interleave 64 floats by 4 with two rounds of
  // two-register permutes (even / odd positions).
  const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (; c + 16 <= Co; c += 16) {
    const float* p = x + c * 4;
    const __m512 r0 = _mm512_loadu_ps(p), r1 = _mm512_loadu_ps(p + 16);
    const __m512 r2 = _mm512_loadu_ps(p + 32), r3 = _mm512_loadu_ps(p + 48);
    const __m512 e = _mm512_permutex2var_ps(r0, ev, r1), o = _mm512_permutex2var_ps(r0, od, r1);
    const __m512 e2 = _mm512_permutex2var_ps(r2, ev, r3), o2 = _mm512_permutex2var_ps(r2, od, r3);
    _mm512_storeu_ps(y0 + c, _mm512_permutex2var_ps(e, ev, e2));       // q = 0
    _mm512_storeu_ps(y0 + Co + c, _mm512_permutex2var_ps(o, ev, o2));  // q = 1
    _mm512_storeu_ps(y1 + c, _mm512_permutex2var_ps(e, od, e2));       // q = 2
    _mm512_storeu_ps(y1 + Co + c, _mm512_permutex2var_ps(o, od, o2));  // q = 3
  }
#endif
  for (; c < Co; ++c) {
    y0[c] = x[c * 4];
    y0[Co + c] = x[c * 4 + 1];
    y1[c] = x[c * 4 + 2];
    y1[Co + c] = x[c * 4 + 3];
  }
}

void s2d_crd2(const float* __restrict x0, const float* __restrict x1, int64_t Co,
              float* __restrict y) {
  int64_t c = 0;
#if defined(__AVX512F__)
  // interleave by 4: the inverse permutes of d2s_crd2
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (; c + 16 <= Co; c += 16) {
    const __m512 q0 = _mm512_loadu_ps(x0 + c), q1 = _mm512_loadu_ps(x0 + Co + c);
    const __m512 q2 = _mm512_loadu_ps(x1 + c), q3 = _mm512_loadu_ps(x1 + Co + c);
    // (q0, q2) and (q1, q3) interleaved, then those two interleaved
    const __m512 a0 = _mm512_permutex2var_ps(q0, lo, q2), a1 = _mm512_permutex2var_ps(q0, hi, q2);
    const __m512 b0 = _mm512_permutex2var_ps(q1, lo, q3), b1 = _mm512_permutex2var_ps(q1, hi, q3);
    float* p = y + c * 4;
    _mm512_storeu_ps(p, _mm512_permutex2var_ps(a0, lo, b0));
    _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(a0, hi, b0));
    _mm512_storeu_ps(p + 32, _mm512_permutex2var_ps(a1, lo, b1));
    _mm512_storeu_ps(p + 48, _mm512_permutex2var_ps(a1, hi, b1));
  }
#endif
  for (; c < Co; ++c) {
    y[c * 4] = x0[c];
    y[c * 4 + 1] = x0[Co + c];
    y[c * 4 + 2] = x1[c];
    y[c * 4 + 3] = x1[Co + c];
  }
}

}  // namespace

const LayoutKernels kernels = {copy,
                               copy_nt,
                               fence,
                               add,
                               axpy,
                               blend,
                               bias_act,
                               repeat_pixels,
                               sum_pixel_groups,
                               blend_pixels,
                               blend_pixels_backward,
                               transpose_block,
                               shuffle,
                               d2s_crd2,
                               s2d_crd2};

}  // namespace CNNX_LAYOUT_NS
}  // namespace cnnx
