// AVX-512 patch packer for the forward implicit GEMM (rows = output pixels,
// depth = k). The panel layout is the transpose of NHWC (for each k, `width`
// pixels), so a scalar copy writes with stride `width`. Here each tap's
// channel run is moved 16 channels x 16 pixels at a time: 16 (masked) row
// loads, a 16x16 in-register transpose, `width`-lane masked stores.
#include <immintrin.h>

#include <algorithm>

#include "common/transpose16__avx512.h"
#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {

void pack_rows_avx512(const PatchGeom& g, int64_t r0, int64_t rows, int64_t k0, int64_t kc,
                      int width, float* dst) {
  const int64_t ohw = g.OH * g.OW;
  const int64_t img = g.H * g.W * g.C;
  const __mmask16 store_mask = static_cast<__mmask16>((1u << width) - 1u);
  const int64_t tap0 = k0 / g.Cg, ci0 = k0 % g.Cg;
  for (int64_t p = 0; p < rows; p += width) {
    const int w = static_cast<int>(std::min<int64_t>(width, rows - p));
    int64_t ih0[16], iw0[16];
    const float* base[16];
    int64_t m = g.p0 + r0 + p;
    int64_t n = m / ohw, rem = m % ohw;
    int64_t oh = rem / g.OW, ow = rem % g.OW;
    for (int i = 0; i < w; ++i) {
      ih0[i] = oh * g.sh - g.pt;
      iw0[i] = ow * g.sw - g.pl;
      base[i] = g.x + n * img + g.c0;
      if (++ow == g.OW) {
        ow = 0;
        if (++oh == g.OH) {
          oh = 0;
          ++n;
        }
      }
    }
    int64_t tap = tap0, ci = ci0, kk = 0;
    int64_t kh = tap / g.KW, kw = tap % g.KW;
    while (kk < kc) {
      const int64_t len = std::min(g.Cg - ci, kc - kk);
      const float* src[16];
      for (int i = 0; i < 16; ++i) {
        src[i] = nullptr;
        if (i >= w) continue;
        const int64_t ih = ih0[i] + kh * g.dh, iw = iw0[i] + kw * g.dw;
        if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
          src[i] = base[i] + (ih * g.W + iw) * g.C + ci;
      }
      for (int64_t j0 = 0; j0 < len; j0 += 16) {
        const int c = static_cast<int>(std::min<int64_t>(16, len - j0));
        const __mmask16 lm = static_cast<__mmask16>((1u << c) - 1u);
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = src[i] ? _mm512_maskz_loadu_ps(lm, src[i] + j0) : _mm512_setzero_ps();
        transpose16(r);
        float* d = dst + (kk + j0) * width;
        for (int j = 0; j < c; ++j) _mm512_mask_storeu_ps(d + j * width, store_mask, r[j]);
      }
      kk += len;
      ci = 0;
      if (++kw == g.KW) {
        kw = 0;
        ++kh;
      }
    }
    dst += static_cast<int64_t>(width) * kc;
  }
}

}  // namespace conv_detail
}  // namespace cnnx
