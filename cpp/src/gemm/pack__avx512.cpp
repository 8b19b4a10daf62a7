// AVX-512 packing of row-major rows into micro-panels (element (r, k) at
// data[r*ld + k]). The panel wants, for each k, `width` consecutive rows: a
// transpose. Blocks of 16 rows x 16 k move through one in-register 16x16
// transpose instead of 256 scalar stores with stride `width`.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/transpose16__avx512.h"

namespace cnnx {

void pack_rows__avx512(const float* data, int64_t ld, int64_t r0, int64_t rows, int64_t k0,
                       int64_t kc, int width, float* dst) {
  for (int64_t p = 0; p < rows; p += width) {
    const int w = static_cast<int>(std::min<int64_t>(width, rows - p));
    const float* src = data + (r0 + p) * ld + k0;
    // Rows of this panel in blocks of 16 (width is 8..32 in practice).
    for (int rb = 0; rb < width; rb += 16) {
      const int bw = std::min(16, width - rb);             // lanes stored for this block
      const int live = std::max(0, std::min(bw, w - rb));  // rows that exist
      const __mmask16 store_mask = static_cast<__mmask16>((1u << bw) - 1u);
      for (int64_t k = 0; k < kc; k += 16) {
        const int kn = static_cast<int>(std::min<int64_t>(16, kc - k));
        const __mmask16 load_mask = static_cast<__mmask16>((1u << kn) - 1u);
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = i < live ? _mm512_maskz_loadu_ps(load_mask, src + (rb + i) * ld + k)
                          : _mm512_setzero_ps();
        transpose16(r);
        float* d = dst + k * width + rb;
        for (int j = 0; j < kn; ++j) _mm512_mask_storeu_ps(d + j * width, store_mask, r[j]);
      }
    }
    dst += static_cast<int64_t>(width) * kc;
  }
}

}  // namespace cnnx
