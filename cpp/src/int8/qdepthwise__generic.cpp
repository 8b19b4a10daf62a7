// Portable int8 depthwise row (any channel multiplier).
#include "int8/qdepthwise.h"
#include "int8/qgemm_driver.h"
#include "int8/qstore_scalar.h"

namespace cnnx {
namespace qdetail {

void qdepthwise_row_generic(const DepthwiseArgs& a, int64_t n, int64_t oh) {
  const Conv2dShape& s = *a.s;
  const int64_t OW = s.out_w(), C = s.C_out, mult = s.C_out / s.C_in;
  int64_t kh0, kh1;
  tap_range(oh, s.stride_h, s.pad_top, s.dilation_h, s.KH, s.H, &kh0, &kh1);
  const size_t ob = out_elem_bytes(a.st.out);
  for (int64_t ow = 0; ow < OW; ++ow) {
    int64_t kw0, kw1;
    tap_range(ow, s.stride_w, s.pad_left, s.dilation_w, s.KW, s.W, &kw0, &kw1);
    void* row = static_cast<uint8_t*>(a.y) + ((n * s.out_h() + oh) * OW + ow) * C * ob;
    for (int64_t c = 0; c < C; ++c) {
      int32_t acc = 0;
      for (int64_t kh = kh0; kh < kh1; ++kh) {
        const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
        for (int64_t kw = kw0; kw < kw1; ++kw) {
          const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
          const int32_t xv = a.x[((n * s.H + ih) * s.W + iw) * s.C_in + c / mult];
          const int32_t lane = a.taps[(kh * s.KW + kw) * C + c];
          acc += (xv - a.za) * static_cast<int16_t>(lane & 0xFFFF);
        }
      }
      qscalar::store(acc, static_cast<int>(c), a.st, row);
    }
  }
}

}  // namespace qdetail
}  // namespace cnnx
