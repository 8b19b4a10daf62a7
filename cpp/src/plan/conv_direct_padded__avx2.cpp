// AVX2+FMA tiles of the padded direct convolution (the template in
// conv_direct_padded_impl.h over common/vec_avx2.h): with 16 ymm registers a
// tile is 6 output pixels x 16 output channels (two ymm each), so 12
// accumulators, two weight vectors and one broadcast.
#include <algorithm>
#include <cstdint>

#include "common/vec_avx2.h"
#include "plan/conv_direct_padded.h"

namespace cnnx {
namespace plan_detail {
namespace {
#define CNNX_DIRECT_PADDED_V vec_avx2::V
#include "plan/conv_direct_padded_impl.h"
#undef CNNX_DIRECT_PADDED_V
}  // namespace

void conv_direct_padded_rows_avx2(const Conv2dShape& s, const float* xp, int64_t Wp, const float* w,
                                  const DirectEpilogue& ep, float* y, int64_t row0, int64_t row1) {
  const int key =
      static_cast<int>(s.KH) * 1000 + static_cast<int>(s.C_in) * 10 + static_cast<int>(s.stride_h);
  switch (key) {
    case 3161: return rows<16, 1, 6, 2, 3>(s, xp, Wp, w, ep, y, row0, row1);
    case 3162: return rows<16, 2, 6, 2, 3>(s, xp, Wp, w, ep, y, row0, row1);
    case 3321: return rows<32, 1, 6, 2, 3>(s, xp, Wp, w, ep, y, row0, row1);
    case 3322: return rows<32, 2, 6, 2, 3>(s, xp, Wp, w, ep, y, row0, row1);
    case 5081: return rows<8, 1, 6, 2, 5>(s, xp, Wp, w, ep, y, row0, row1);
    case 1162: return rows<16, 2, 6, 2, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 1322: return rows<32, 2, 6, 2, 1>(s, xp, Wp, w, ep, y, row0, row1);
    default: return;
  }
}

}  // namespace plan_detail
}  // namespace cnnx
