// dst[c][r] = src[r][c] for an r x c matrix (row strides lds, ldd) with
// 16x16 register transposes; edges with masked loads and stores. Used to
// transpose the filter taps for backward-data (wide layers).
#include <immintrin.h>

#include <algorithm>

#include "common/transpose16__avx512.h"
#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {

void transpose_avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                      int64_t ldd) {
  for (int64_t r0 = 0; r0 < rows; r0 += 16) {
    const int rn = static_cast<int>(std::min<int64_t>(16, rows - r0));
    const __mmask16 rm = static_cast<__mmask16>((1u << rn) - 1u);
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      const int cn = static_cast<int>(std::min<int64_t>(16, cols - c0));
      const __mmask16 cm = static_cast<__mmask16>((1u << cn) - 1u);
      __m512 v[16];
      for (int i = 0; i < 16; ++i)
        v[i] = i < rn ? _mm512_maskz_loadu_ps(cm, src + (r0 + i) * lds + c0) : _mm512_setzero_ps();
      transpose16(v);
      for (int j = 0; j < cn; ++j) _mm512_mask_storeu_ps(dst + (c0 + j) * ldd + r0, rm, v[j]);
    }
  }
}

}  // namespace conv_detail
}  // namespace cnnx
