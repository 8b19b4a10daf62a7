// AVX-512 int8 depthwise row (channel multiplier 1): 16 channels per zmm,
// uint8 widened to int32 lanes, the zero point subtracted, and vpmaddwd
// against the weight lanes (int16 weight, zero high half) gives the exact
// product in each lane.
#include <immintrin.h>

#include "int8/qdepthwise.h"
#include "int8/qgemm_driver.h"
#include "int8/qstore_avx512.h"

namespace cnnx {
namespace qdetail {

void qdepthwise_row__avx512(const DepthwiseArgs& a, int64_t n, int64_t oh) {
  const Conv2dShape& s = *a.s;
  const int64_t OW = s.out_w(), C = s.C_out;
  int64_t kh0, kh1;
  tap_range(oh, s.stride_h, s.pad_top, s.dilation_h, s.KH, s.H, &kh0, &kh1);
  const size_t ob = out_elem_bytes(a.st.out);
  const __m512i za = _mm512_set1_epi32(a.za);
  for (int64_t ow = 0; ow < OW; ++ow) {
    int64_t kw0, kw1;
    tap_range(ow, s.stride_w, s.pad_left, s.dilation_w, s.KW, s.W, &kw0, &kw1);
    void* row = static_cast<uint8_t*>(a.y) + ((n * s.out_h() + oh) * OW + ow) * C * ob;
    const int64_t iw0 = ow * s.stride_w - s.pad_left;
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const __mmask16 mask = qzmm::mask_of(static_cast<int>(C - c0));
      __m512i acc = _mm512_setzero_si512();
      for (int64_t kh = kh0; kh < kh1; ++kh) {
        const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
        const uint8_t* xrow = a.x + ((n * s.H + ih) * s.W) * C + c0;
        const int32_t* wrow = a.taps + kh * s.KW * C + c0;
        for (int64_t kw = kw0; kw < kw1; ++kw) {
          const __m128i xb = _mm_maskz_loadu_epi8(mask, xrow + (iw0 + kw * s.dilation_w) * C);
          const __m512i xv = _mm512_sub_epi32(_mm512_cvtepu8_epi32(xb), za);
          const __m512i wv = _mm512_maskz_loadu_epi32(mask, wrow + kw * C);
          acc = _mm512_add_epi32(acc, _mm512_madd_epi16(xv, wv));
        }
      }
      qzmm::Columns col;
      col.load(a.st, static_cast<int>(c0), static_cast<int>(C));
      qzmm::store(acc, col, a.st, row, static_cast<int>(c0));
    }
  }
}

}  // namespace qdetail
}  // namespace cnnx
