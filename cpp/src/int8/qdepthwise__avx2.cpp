// AVX2 int8 depthwise row (channel multiplier 1): 8 channels per ymm, the
// same exact vpmaddwd scheme as the AVX-512 row; the channel tail goes
// through a small zero-padded copy.
#include <immintrin.h>

#include <cstring>

#include "int8/qdepthwise.h"
#include "int8/qgemm_driver.h"
#include "int8/qstore_avx2.h"

namespace cnnx {
namespace qdetail {

void qdepthwise_row__avx2(const DepthwiseArgs& a, int64_t n, int64_t oh) {
  const Conv2dShape& s = *a.s;
  const int64_t OW = s.out_w(), C = s.C_out;
  int64_t kh0, kh1;
  tap_range(oh, s.stride_h, s.pad_top, s.dilation_h, s.KH, s.H, &kh0, &kh1);
  const size_t ob = out_elem_bytes(a.st.out);
  const __m256i za = _mm256_set1_epi32(a.za);
  for (int64_t ow = 0; ow < OW; ++ow) {
    int64_t kw0, kw1;
    tap_range(ow, s.stride_w, s.pad_left, s.dilation_w, s.KW, s.W, &kw0, &kw1);
    void* row = static_cast<uint8_t*>(a.y) + ((n * s.out_h() + oh) * OW + ow) * C * ob;
    const int64_t iw0 = ow * s.stride_w - s.pad_left;
    for (int64_t c0 = 0; c0 < C; c0 += 8) {
      const int nc = static_cast<int>(C - c0 < 8 ? C - c0 : 8);
      const __m256i mask = qymm::mask_of(nc);
      __m256i acc = _mm256_setzero_si256();
      for (int64_t kh = kh0; kh < kh1; ++kh) {
        const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
        const uint8_t* xrow = a.x + ((n * s.H + ih) * s.W) * C + c0;
        const int32_t* wrow = a.taps + kh * s.KW * C + c0;
        for (int64_t kw = kw0; kw < kw1; ++kw) {
          const uint8_t* xp = xrow + (iw0 + kw * s.dilation_w) * C;
          __m128i xb;
          if (nc == 8) {
            xb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(xp));
          } else {
            int64_t bytes8 = 0;
            std::memcpy(&bytes8, xp, static_cast<size_t>(nc));
            xb = _mm_cvtsi64_si128(bytes8);
          }
          const __m256i xv = _mm256_sub_epi32(_mm256_cvtepu8_epi32(xb), za);
          const __m256i wv = _mm256_maskload_epi32(wrow + kw * C, mask);
          acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv, wv));
        }
      }
      qymm::Columns col;
      col.load(a.st, static_cast<int>(c0), static_cast<int>(C));
      qymm::store(acc, col, a.st, row, static_cast<int>(c0));
    }
  }
}

}  // namespace qdetail
}  // namespace cnnx
