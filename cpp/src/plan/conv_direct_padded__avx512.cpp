// AVX-512 tiles of the padded direct convolution (the template in
// conv_direct_padded_impl.h over common/vec_avx512.h).
#include <algorithm>
#include <cstdint>

#include "common/vec_avx512.h"
#include "plan/conv_direct_padded.h"

namespace cnnx {
namespace plan_detail {
namespace {
#define CNNX_DIRECT_PADDED_V vec_avx512::V
#include "plan/conv_direct_padded_impl.h"
#undef CNNX_DIRECT_PADDED_V
}  // namespace

void conv_direct_padded_rows_avx512(const Conv2dShape& s, const float* xp, int64_t Wp,
                                    const float* w, const DirectEpilogue& ep, float* y,
                                    int64_t row0, int64_t row1) {
  // 16 output channels: one zmm per pixel, 14 pixels per tile; 32 or more:
  // two zmm per pixel, 7 pixels (a whole 7-wide row of a small map).
  const bool wide = s.C_out % 32 == 0;
  const int key = static_cast<int>(s.C_in) * 10 + static_cast<int>(s.stride_h);
  if (s.KH == 1) {  // 1x1 stride 2 (a ResNet's projection shortcut)
    switch (key) {
      case 162:
        return wide ? rows<16, 2, 7, 2, 1>(s, xp, Wp, w, ep, y, row0, row1)
                    : rows<16, 2, 14, 1, 1>(s, xp, Wp, w, ep, y, row0, row1);
      case 322:
        return wide ? rows<32, 2, 7, 2, 1>(s, xp, Wp, w, ep, y, row0, row1)
                    : rows<32, 2, 14, 1, 1>(s, xp, Wp, w, ep, y, row0, row1);
      default: return;
    }
  }
  if (s.KH == 5) {
    if (key == 81) rows<8, 1, 10, 1, 5>(s, xp, Wp, w, ep, y, row0, row1);
    return;
  }
  switch (key) {
    case 161:
      return wide ? rows<16, 1, 7, 2>(s, xp, Wp, w, ep, y, row0, row1)
                  : rows<16, 1, 14, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 162:
      return wide ? rows<16, 2, 7, 2>(s, xp, Wp, w, ep, y, row0, row1)
                  : rows<16, 2, 14, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 321:
      return wide ? rows<32, 1, 7, 2>(s, xp, Wp, w, ep, y, row0, row1)
                  : rows<32, 1, 14, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 322:
      return wide ? rows<32, 2, 7, 2>(s, xp, Wp, w, ep, y, row0, row1)
                  : rows<32, 2, 14, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 11: return rows_c1<14>(s, xp, Wp, w, ep, y, row0, row1);
    default: return;
  }
}

}  // namespace plan_detail
}  // namespace cnnx
