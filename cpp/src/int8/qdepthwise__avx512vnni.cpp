// AVX512-VNNI int8 depthwise row (channel multiplier 1): vpdpbusd sums 4
// taps per int32 lane. For 64 channels and 4 taps, the taps' bytes are
// interleaved with 8 unpacks (bytes, then words, within 128-bit lanes),
// giving 4 vectors whose lane (L, j) of vector k holds channel 16L + 4k + j's
// 4 taps; the weights are packed in that order (QPackedWeights::Impl::dw4),
// and a 4x4 transpose of 128-bit lanes restores the channel order before the
// store. About 4x fewer instructions than widening to int32 per tap.
// x is read as is (uint8): taps in the padding read a row of x's zero point
// and the store subtracts za * colsum.
#include <immintrin.h>

#include <cstring>

#include "common/scratch.h"
#include "int8/qdepthwise.h"
#include "int8/qgemm_driver.h"
#include "int8/qstore_avx512.h"

namespace cnnx {
namespace qdetail {

void qdepthwise_row__avx512vnni(const DepthwiseArgs& a, int64_t n, int64_t oh) {
  const Conv2dShape& s = *a.s;
  const int64_t OW = s.out_w(), C = s.C_out, T = s.KH * s.KW;
  const int64_t G = (T + 3) / 4, TP = G * 4, blocks = (C + 63) / 64;
  const size_t ob = out_elem_bytes(a.st.out);
  // Each output pixel's tap rows, then a row of padding (x's zero point).
  // (Scratch, not std::vector: library templates instantiated in a file
  // built for AVX-512 could be picked by the linker for portable callers.)
  const int64_t table = OW * TP * static_cast<int64_t>(sizeof(const uint8_t*));
  uint8_t* scratch = reinterpret_cast<uint8_t*>(
      thread_scratch(ScratchSlot::gemm_a, static_cast<size_t>((table + C + 64) / 4 + 1)));
  const uint8_t** taps = reinterpret_cast<const uint8_t**>(scratch);
  uint8_t* za_row = scratch + table;
  std::memset(za_row, a.za, static_cast<size_t>(C));
  for (int64_t ow = 0; ow < OW; ++ow) {
    const uint8_t** tp = taps + ow * TP;
    for (int64_t kh = 0, t = 0; kh < s.KH; ++kh) {
      const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
      for (int64_t kw = 0; kw < s.KW; ++kw, ++t) {
        const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
        tp[t] = (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W)
                    ? za_row
                    : a.x + ((n * s.H + ih) * s.W + iw) * C;
      }
    }
    for (int64_t t = T; t < TP; ++t) tp[t] = za_row;  // zero weights
  }

  for (int64_t cb = 0; cb < blocks; ++cb) {
    const int64_t c0 = cb * 64;
    const __mmask64 m = C - c0 >= 64 ? ~__mmask64{0} : ((__mmask64{1} << (C - c0)) - 1);
    const uint8_t* wb = a.dw4 + cb * G * 256;
    qzmm::Columns col[4];
    for (int L = 0; L < 4; ++L)
      if (c0 + 16 * L < C) col[L].load(a.st, static_cast<int>(c0 + 16 * L), static_cast<int>(C));
    for (int64_t ow = 0; ow < OW; ++ow) {
      const uint8_t* const* tp = taps + ow * TP;
      __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
      for (int64_t g = 0; g < G; ++g) {
        const __m512i x0 = _mm512_maskz_loadu_epi8(m, tp[4 * g] + c0);
        const __m512i x1 = _mm512_maskz_loadu_epi8(m, tp[4 * g + 1] + c0);
        const __m512i x2 = _mm512_maskz_loadu_epi8(m, tp[4 * g + 2] + c0);
        const __m512i x3 = _mm512_maskz_loadu_epi8(m, tp[4 * g + 3] + c0);
        const __m512i lo01 = _mm512_unpacklo_epi8(x0, x1), lo23 = _mm512_unpacklo_epi8(x2, x3);
        const __m512i hi01 = _mm512_unpackhi_epi8(x0, x1), hi23 = _mm512_unpackhi_epi8(x2, x3);
        const uint8_t* wg = wb + g * 256;
        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_unpacklo_epi16(lo01, lo23), _mm512_load_si512(wg));
        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_unpackhi_epi16(lo01, lo23),
                                   _mm512_load_si512(wg + 64));
        acc2 = _mm512_dpbusd_epi32(acc2, _mm512_unpacklo_epi16(hi01, hi23),
                                   _mm512_load_si512(wg + 128));
        acc3 = _mm512_dpbusd_epi32(acc3, _mm512_unpackhi_epi16(hi01, hi23),
                                   _mm512_load_si512(wg + 192));
      }
      // Lane L of acc k holds channels 16L + 4k .. +3: transpose the 4x4
      // grid of 128-bit lanes so that vector L holds channels 16L .. 16L+15.
      const __m512i t0 = _mm512_shuffle_i32x4(acc0, acc1, 0x44);
      const __m512i t1 = _mm512_shuffle_i32x4(acc2, acc3, 0x44);
      const __m512i t2 = _mm512_shuffle_i32x4(acc0, acc1, 0xEE);
      const __m512i t3 = _mm512_shuffle_i32x4(acc2, acc3, 0xEE);
      const __m512i v[4] = {_mm512_shuffle_i32x4(t0, t1, 0x88), _mm512_shuffle_i32x4(t0, t1, 0xDD),
                            _mm512_shuffle_i32x4(t2, t3, 0x88), _mm512_shuffle_i32x4(t2, t3, 0xDD)};
      void* row = static_cast<uint8_t*>(a.y) + ((n * s.out_h() + oh) * OW + ow) * C * ob;
      for (int L = 0; L < 4; ++L)
        if (c0 + 16 * L < C) qzmm::store(v[L], col[L], a.st, row, static_cast<int>(c0 + 16 * L));
    }
  }
}

}  // namespace qdetail
}  // namespace cnnx
