// Batch-norm loops, written once and compiled per ISA: batchnorm.cpp
// (portable), batchnorm__avx2.cpp and batchnorm__avx512.cpp include this file
// with CNNX_BN_NS set to their own namespace, so each gets its own
// auto-vectorised copy (no symbol is shared between ISA builds).
//
// x is [rows, C]; the loops walk channel blocks of CB floats (one register
// tile of accumulators), rows outermost, channels innermost (NHWC order).
#include <cstdint>

#include "ops/batchnorm_kernels.h"

namespace cnnx {
namespace CNNX_BN_NS {
namespace {

constexpr int64_t CB = 64;  // channels per accumulator block
constexpr int64_t RB = 32;  // rows summed in float before a double add

// s1[c] += sum (a - shift[c]), s2[c] += sum (a - shift[c]) * (b - shift2[c])
// over rows [r0, r1). With b == a and shift2 == shift this is the shifted
// sum of squares; with a = dy, shift = 0 it is the dy sums.
template <int64_t W>
inline void block_sums(const float* a, const float* b, int64_t r0, int64_t r1, int64_t C,
                       int64_t c0, const float* sa, const float* sb, double* s1, double* s2) {
  float A1[W], A2[W], SA[W], SB[W];
  for (int64_t c = 0; c < W; ++c) {
    SA[c] = sa ? sa[c0 + c] : 0.0f;
    SB[c] = sb[c0 + c];
  }
  for (int64_t rb = r0; rb < r1; rb += RB) {
    const int64_t re = rb + RB < r1 ? rb + RB : r1;
    for (int64_t c = 0; c < W; ++c) A1[c] = A2[c] = 0.0f;
    for (int64_t r = rb; r < re; ++r) {
      const float* pa = a + r * C + c0;
      const float* pb = b + r * C + c0;
      for (int64_t c = 0; c < W; ++c) {
        const float u = pa[c] - SA[c];
        A1[c] += u;
        A2[c] += u * (pb[c] - SB[c]);
      }
    }
    for (int64_t c = 0; c < W; ++c) {
      s1[c0 + c] += A1[c];
      s2[c0 + c] += A2[c];
    }
  }
}

inline void sums_rows(const float* a, const float* b, int64_t r0, int64_t r1, int64_t C,
                      const float* sa, const float* sb, double* s1, double* s2) {
  int64_t c0 = 0;
  for (; c0 + CB <= C; c0 += CB) block_sums<CB>(a, b, r0, r1, C, c0, sa, sb, s1, s2);
  for (; c0 + 16 <= C; c0 += 16) block_sums<16>(a, b, r0, r1, C, c0, sa, sb, s1, s2);
  for (; c0 < C; ++c0) block_sums<1>(a, b, r0, r1, C, c0, sa, sb, s1, s2);
}

}  // namespace

void stats_sums(const float* x, int64_t r0, int64_t r1, int64_t C, const float* shift, double* s1,
                double* s2) {
  sums_rows(x, x, r0, r1, C, shift, shift, s1, s2);
}

void grad_sums(const float* dy, const float* x, int64_t r0, int64_t r1, int64_t C,
               const float* mean, double* sdy, double* sdyx) {
  sums_rows(dy, x, r0, r1, C, nullptr, mean, sdy, sdyx);
}

// y = x * a[c] + k[c]
void affine(const float* x, float* y, int64_t r0, int64_t r1, int64_t C, const float* a,
            const float* k) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* px = x + r * C;
    float* py = y + r * C;
    for (int64_t c = 0; c < C; ++c) py[c] = px[c] * a[c] + k[c];
  }
}

// dx = dy * a[c] + x * b[c] + k[c]
void affine2(const float* dy, const float* x, float* dx, int64_t r0, int64_t r1, int64_t C,
             const float* a, const float* b, const float* k) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* pd = dy + r * C;
    const float* px = x + r * C;
    float* po = dx + r * C;
    for (int64_t c = 0; c < C; ++c) po[c] = pd[c] * a[c] + px[c] * b[c] + k[c];
  }
}

void affine_centred(const float* x, float* y, int64_t r0, int64_t r1, int64_t C, const float* m,
                    const float* a, const float* k) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* px = x + r * C;
    float* py = y + r * C;
    for (int64_t c = 0; c < C; ++c) py[c] = (px[c] - m[c]) * a[c] + k[c];
  }
}

const BnKernels kernels = {stats_sums, grad_sums, affine, affine2, affine_centred};

}  // namespace CNNX_BN_NS
}  // namespace cnnx
