// Padding and cropping of NHWC images (see cnnx/layout.h): each output row
// is one input row (or a constant) with border pixels around a contiguous
// middle run, so a row costs one memcpy plus its borders.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "cnnx/layout.h"
#include "layout/layout_kernels.h"
#include "ops/ops_common.h"

namespace cnnx {
namespace {

constexpr int64_t kMaxExtent = int64_t{1} << 40;

// The input index an output index i (already shifted by the leading pad)
// reads, or -1 for the constant.
inline int64_t source(PadMode mode, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case PadMode::edge: return i < 0 ? 0 : n - 1;
    default: return -1;
  }
}

void check(PadMode mode, const Pad2dShape& s) {
  const char* msg = pad2d_check(mode, s);
  if (msg[0]) throw std::invalid_argument(msg);
}

// One output row from input row xr (null: the constant everywhere).
void pad_row(PadMode mode, const Pad2dShape& s, float value, const float* xr, float* yr,
             const LayoutKernels& k, bool stream) {
  const int64_t C = s.C, OW = s.out_w();
  if (!xr) {
    std::fill(yr, yr + OW * C, value);
    return;
  }
  const int64_t m0 = std::max<int64_t>(0, s.left), m1 = std::min(OW, s.left + s.W);
  if (m1 > m0) k.copy(xr + (m0 - s.left) * C, yr + m0 * C, (m1 - m0) * C, stream);
  auto border = [&](int64_t o0, int64_t o1) {
    if (mode == PadMode::constant) {
      std::fill(yr + o0 * C, yr + o1 * C, value);
      return;
    }
    for (int64_t o = o0; o < o1; ++o)
      k.copy(xr + source(mode, o - s.left, s.W) * C, yr + o * C, C, false);
  };
  border(0, std::min(m0, OW));
  border(std::max(m1, m0), OW);
}

// dx row += (or =) the gradient one dy row sends to it.
void fold_row(PadMode mode, const Pad2dShape& s, const float* dyr, float* dxr, bool accumulate,
              const LayoutKernels& k) {
  const int64_t C = s.C, OW = s.out_w();
  const int64_t m0 = std::max<int64_t>(0, s.left), m1 = std::min(OW, s.left + s.W);
  if (!accumulate) {
    if (m1 - m0 < s.W) std::fill(dxr, dxr + s.W * C, 0.0f);  // cropped columns
    if (m1 > m0) k.copy(dyr + m0 * C, dxr + (m0 - s.left) * C, (m1 - m0) * C, false);
  } else if (m1 > m0) {
    k.add(dyr + m0 * C, dxr + (m0 - s.left) * C, (m1 - m0) * C);
  }
  if (mode == PadMode::constant) return;
  for (int64_t o = 0; o < OW; ++o) {
    if (o == m0) o = std::max(m1, m0);
    if (o >= OW) break;
    k.add(dyr + o * C, dxr + source(mode, o - s.left, s.W) * C, C);
  }
}

}  // namespace

const char* pad2d_check(PadMode mode, const Pad2dShape& s) {
  if (s.N < 0 || s.H < 1 || s.W < 1 || s.C < 1) return "x: expected N >= 0 and H, W, C >= 1";
  const int m = static_cast<int>(mode);
  if (m < 0 || m > 2) return "mode: expected constant, reflect or edge";
  for (int64_t p : {s.top, s.bottom, s.left, s.right})
    if (p >= kMaxExtent || p <= -kMaxExtent) return "padding: expected pads below 2^40";
  if (s.H >= kMaxExtent || s.W >= kMaxExtent) return "x: expected sides below 2^40";
  if (mode != PadMode::constant && (s.top < 0 || s.bottom < 0 || s.left < 0 || s.right < 0))
    return "padding: reflect and edge padding take pads >= 0 (only constant padding crops)";
  if (mode == PadMode::reflect &&
      (s.top >= s.H || s.bottom >= s.H || s.left >= s.W || s.right >= s.W))
    return "padding: reflection padding must be narrower than the input (each pad <= n - 1)";
  if (s.out_h() < 1 || s.out_w() < 1)
    return "padding: the cropping removes every row or column of the input";
  if (s.out_h() >= kMaxExtent || s.out_w() >= kMaxExtent)
    return "padding: the output must span fewer than 2^40 pixels per axis";
  return "";
}

void pad2d_forward(PadMode mode, const Pad2dShape& s, float value, const float* x, float* y) {
  check(mode, s);
  const int64_t OH = s.out_h(), row = s.out_w() * s.C, img = s.H * s.W * s.C;
  const int64_t rows = s.N * OH;
  const int nt = ops_detail::threads_for_bytes(8.0 * static_cast<double>(rows * row));
  const LayoutKernels& k = layout_kernels();
  const bool stream = stream_stores(4.0 * static_cast<double>(rows * row));
  ops_detail::parallel_range(
      rows, nt,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t n = r / OH, oy = r % OH;
          const int64_t iy = source(mode, oy - s.top, s.H);
          const float* xr = iy < 0 ? nullptr : x + n * img + iy * s.W * s.C;
          pad_row(mode, s, value, xr, y + r * row, k, stream);
        }
      },
      1);
}

void pad2d_backward(PadMode mode, const Pad2dShape& s, const float* dy, float* dx) {
  check(mode, s);
  const LayoutKernels& k = layout_kernels();
  const int64_t OH = s.out_h(), row = s.out_w() * s.C, in_row = s.W * s.C;
  const int64_t rows = s.N * s.H;
  const int nt = ops_detail::threads_for_bytes(8.0 * static_cast<double>(s.N * OH * row));
  ops_detail::parallel_range(
      rows, nt,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t n = r / s.H, iy = r % s.H;
          const float* dyi = dy + n * OH * row;
          float* dxr = dx + r * in_row;
          const int64_t oy = iy + s.top;  // the row that copied this one unchanged
          const bool inside = oy >= 0 && oy < OH;
          if (inside)
            fold_row(mode, s, dyi + oy * row, dxr, false, k);
          else
            std::fill(dxr, dxr + in_row, 0.0f);  // a cropped row
          if (mode == PadMode::constant) continue;
          // border rows that copied this one (top and bottom pads are small)
          for (int64_t o = 0; o < s.top; ++o)
            if (source(mode, o - s.top, s.H) == iy) fold_row(mode, s, dyi + o * row, dxr, true, k);
          for (int64_t o = s.top + s.H; o < OH; ++o)
            if (source(mode, o - s.top, s.H) == iy) fold_row(mode, s, dyi + o * row, dxr, true, k);
        }
      },
      1);
}

}  // namespace cnnx
