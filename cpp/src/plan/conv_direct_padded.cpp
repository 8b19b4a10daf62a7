// When the padded 3x3 kernel runs, and the padded copy it reads.
#include "plan/conv_direct_padded.h"

#include <algorithm>
#include <cstring>

#include "cnnx/cpu.h"
#include "common/scratch.h"

namespace cnnx {
namespace plan_detail {

bool conv_direct_padded_ok(const Conv2dShape& s, int64_t n) {
  const Isa isa = active_isa();
  if (isa < Isa::avx2 || s.groups != 1 || s.dilation_h != 1 || s.dilation_w != 1 ||
      s.stride_h != s.stride_w || s.C_out % 16 != 0)
    return false;
  if (isa == Isa::avx2 && s.C_in == 1) return false;  // the stem kernel is AVX-512 only
  if (s.KH == 1 && s.KW == 1)                         // stride 2, unpadded, 16 or 32 input channels
    return s.stride_h == 2 && (s.C_in == 16 || s.C_in == 32) && s.pad_top == 0 &&
           s.pad_bottom == 0 && s.pad_left == 0 && s.pad_right == 0;
  if (s.KH == 5 && s.KW == 5)  // 8 input channels, stride 1, at most "same" padding
    return s.C_in == 8 && s.stride_h == 1 && s.pad_top <= 2 && s.pad_bottom <= 2 &&
           s.pad_left <= 2 && s.pad_right <= 2;
  if (s.KH != 3 || s.KW != 3) return false;
  // 32 channels in and out at stride 1, several images: Winograd F(4x4,3x3)
  // in conv2d_forward does fewer multiplies (measured 7.5 vs 8.2 us per 7x7
  // image); for one or two images its transforms cost more (15.6 us).
  if (s.C_in == 32 && s.C_out >= 32 && s.stride_h == 1 && n >= 4) return false;
  return (s.stride_h == 1 || s.stride_h == 2) &&
         (s.C_in == 16 || s.C_in == 32 || (s.C_in == 1 && s.stride_h == 1)) && s.pad_top <= 2 &&
         s.pad_bottom <= 2 && s.pad_left <= 2 && s.pad_right <= 2;
}

void conv_direct_padded(const Conv2dShape& s, const float* x, const float* w,
                        const DirectEpilogue& ep, float* y, int64_t img, int64_t row0,
                        int64_t row1) {
  if (row0 >= row1) return;
  const int64_t C = s.C_in, S = s.stride_h, OW = s.out_w();
  // Padded rows [r0, r1) of the padded image are all the output rows read;
  // columns: the padded width plus the overrun of a partial last tile (the
  // tile computes up to 14 pixels and drops the extra ones).
  const int64_t r0 = row0 * S, r1 = (row1 - 1) * S + s.KH;
  const int64_t Wp = std::max<int64_t>(s.W + s.pad_left + s.pad_right, (OW + 14) * S + s.KW);
  float* xp = thread_scratch(ScratchSlot::plan_pad, static_cast<size_t>((r1 - r0) * Wp * C + 16));
  const float* xi = x + img * s.H * s.W * C;
  // One memset for the whole band, then one copy per image row inside it
  // (small per-row memsets cost more than the zeros they write).
  std::memset(xp, 0, sizeof(float) * static_cast<size_t>((r1 - r0) * Wp * C));
  const int64_t ih0 = std::max<int64_t>(r0 - s.pad_top, 0);
  const int64_t ih1 = std::min<int64_t>(r1 - s.pad_top, s.H);
  for (int64_t ih = ih0; ih < ih1; ++ih)
    std::memcpy(xp + ((ih + s.pad_top - r0) * Wp + s.pad_left) * C, xi + ih * s.W * C,
                sizeof(float) * static_cast<size_t>(s.W * C));
  // The kernel indexes padded rows from row 0: shift the base back by r0.
  const int64_t out_img = img * s.out_h() * OW * s.C_out;
  DirectEpilogue e = ep;
  if (e.res) e.res += out_img;
  if (active_isa() == Isa::avx512)
    conv_direct_padded_rows_avx512(s, xp - r0 * Wp * C, Wp, w, e, y + out_img, row0, row1);
  else
    conv_direct_padded_rows_avx2(s, xp - r0 * Wp * C, Wp, w, e, y + out_img, row0, row1);
}

}  // namespace plan_detail
}  // namespace cnnx
