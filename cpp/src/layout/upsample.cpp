// Upsampling of NHWC images by integer factors (see cnnx/layout.h).
//
// Nearest: an input row is widened once (each pixel repeated fw times) and
// copied to its fh output rows. Bilinear: separable; an output row blends
// two horizontally interpolated input rows, and each thread keeps the last
// two such rows (consecutive output rows share them: fh-fold reuse).
// Backward runs per input row, so threads never write the same pixel: the
// gradient rows that read an input row are summed (weighted), then folded
// horizontally.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cnnx/layout.h"
#include "common/scratch.h"
#include "layout/layout_kernels.h"
#include "ops/ops_common.h"

namespace cnnx {
namespace {

void check(UpsampleMode mode, int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh, int64_t fw) {
  const int m = static_cast<int>(mode);
  if (m < 0 || m > 1) throw std::invalid_argument("mode: expected nearest or bilinear");
  if (N < 0 || H < 1 || W < 1 || C < 1)
    throw std::invalid_argument("x: expected N >= 0 and H, W, C >= 1");
  if (fh < 1 || fw < 1) throw std::invalid_argument("size: upsampling factors must be >= 1");
  constexpr int64_t kMax = int64_t{1} << 40;
  if (fh >= kMax / H || fw >= kMax / W)
    throw std::invalid_argument("size: the output must span fewer than 2^40 pixels per axis");
}

// Per output index of one axis: the two source indices and their weights
// (PyTorch's align_corners=False source index, in float as it computes it).
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<float> w0, w1;
  Taps(int64_t n, int64_t f) : i0(n * f), i1(n * f), w0(n * f), w1(n * f) {
    const float scale = static_cast<float>(1.0 / static_cast<double>(f));
    for (int64_t d = 0; d < n * f; ++d) {
      float src = scale * (static_cast<float>(d) + 0.5f) - 0.5f;
      if (src < 0.0f) src = 0.0f;
      int64_t a = static_cast<int64_t>(src);
      if (a > n - 1) a = n - 1;
      const float l = src - static_cast<float>(a);
      i0[d] = a;
      i1[d] = a < n - 1 ? a + 1 : a;
      w0[d] = 1.0f - l;
      w1[d] = l;
    }
  }
};

void nearest_forward(int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh, int64_t fw,
                     const float* x, float* y) {
  const LayoutKernels& k = layout_kernels();
  const int64_t orow = W * fw * C;
  const int nt = ops_detail::threads_for_bytes(4.0 * static_cast<double>(N * H * fh * orow));
  const bool stream = stream_stores(4.0 * static_cast<double>(N * H * fh * orow));
  ops_detail::parallel_range(
      N * H, nt,
      [&](int64_t b, int64_t e) {
        // streamed: the widened row is built in cache, then streamed to its fh rows
        float* row =
            stream ? thread_scratch(ScratchSlot::op_0, static_cast<size_t>(orow)) : nullptr;
        for (int64_t r = b; r < e; ++r) {  // input row r = (n, iy) -> output rows r*fh ...
          float* y0 = y + r * fh * orow;
          k.repeat_pixels(x + r * W * C, W, C, fw, stream ? row : y0);
          for (int64_t a = stream ? 0 : 1; a < fh; ++a)
            k.copy(stream ? row : y0, y0 + a * orow, orow, stream);
        }
      },
      1);
}

void nearest_backward(int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh, int64_t fw,
                      const float* dy, float* dx) {
  const LayoutKernels& k = layout_kernels();
  const int64_t orow = W * fw * C;
  const int nt = ops_detail::threads_for_bytes(4.0 * static_cast<double>(N * H * fh * orow));
  ops_detail::parallel_range(
      N * H, nt,
      [&](int64_t b, int64_t e) {
        float* v = fh > 1 ? thread_scratch(ScratchSlot::op_0, static_cast<size_t>(orow)) : nullptr;
        for (int64_t r = b; r < e; ++r) {
          const float* g = dy + r * fh * orow;
          if (fh > 1) {
            k.blend(1.0f, g, 1.0f, g + orow, v, orow, false);
            for (int64_t a = 2; a < fh; ++a) k.add(g + a * orow, v, orow);
            g = v;
          }
          k.sum_pixel_groups(g, W, C, fw, dx + r * W * C);
        }
      },
      1);
}

void bilinear_forward(int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh, int64_t fw,
                      const float* x, float* y) {
  const LayoutKernels& k = layout_kernels();
  const Taps th(H, fh), tw(W, fw);
  const int64_t OH = H * fh, OW = W * fw, orow = OW * C;
  const int nt = threads_for_flops(3.0 * static_cast<double>(N * OH * orow));
  const bool stream = stream_stores(4.0 * static_cast<double>(N * OH * orow));
  ops_detail::parallel_range(
      N * OH, nt,
      [&](int64_t b, int64_t e) {
        // The last two horizontally interpolated input rows (tags: n*H + iy).
        float* buf = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(2 * orow));
        int64_t tag[2] = {-1, -1};
        int next = 0;
        auto row = [&](int64_t t) -> const float* {
          for (int s = 0; s < 2; ++s)
            if (tag[s] == t) {
              next = s ^ 1;  // keep the row just used
              return buf + s * orow;
            }
          float* d = buf + next * orow;
          k.blend_pixels(x + t * W * C, C, OW, tw.i0.data(), tw.i1.data(), tw.w0.data(),
                         tw.w1.data(), d);
          tag[next] = t;
          next ^= 1;
          return d;
        };
        for (int64_t r = b; r < e; ++r) {
          const int64_t n = r / OH, oy = r % OH;
          const float* a = row(n * H + th.i0[oy]);
          const float* c = row(n * H + th.i1[oy]);
          k.blend(th.w0[oy], a, th.w1[oy], c, y + r * orow, orow, stream);
        }
      },
      1);
}

void bilinear_backward(int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh, int64_t fw,
                       const float* dy, float* dx) {
  const LayoutKernels& k = layout_kernels();
  const Taps th(H, fh), tw(W, fw);
  const int64_t OH = H * fh, OW = W * fw, orow = OW * C;
  const int nt = threads_for_flops(4.0 * static_cast<double>(N * OH * orow));
  ops_detail::parallel_range(
      N * H, nt,
      [&](int64_t b, int64_t e) {
        float* v = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(orow));
        for (int64_t r = b; r < e; ++r) {
          const int64_t n = r / H, iy = r % H;
          const float* g = dy + n * OH * orow;
          bool any = false;
          // the output rows whose taps can reach input row iy
          const int64_t o0 = std::max<int64_t>(0, (iy - 1) * fh), o1 = std::min(OH, (iy + 2) * fh);
          for (int64_t oy = o0; oy < o1; ++oy) {
            float wgt = 0.0f;
            if (th.i0[oy] == iy) wgt += th.w0[oy];
            if (th.i1[oy] == iy) wgt += th.w1[oy];
            if (th.i0[oy] != iy && th.i1[oy] != iy) continue;
            if (!any) std::fill(v, v + orow, 0.0f);
            any = true;
            k.axpy(wgt, g + oy * orow, v, orow);
          }
          float* d = dx + r * W * C;
          std::fill(d, d + W * C, 0.0f);
          if (any)
            k.blend_pixels_backward(v, C, OW, tw.i0.data(), tw.i1.data(), tw.w0.data(),
                                    tw.w1.data(), d);
        }
      },
      1);
}

}  // namespace

void upsample2d_forward(UpsampleMode mode, int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh,
                        int64_t fw, const float* x, float* y) {
  check(mode, N, H, W, C, fh, fw);
  if (N == 0) return;
  if (mode == UpsampleMode::nearest)
    nearest_forward(N, H, W, C, fh, fw, x, y);
  else
    bilinear_forward(N, H, W, C, fh, fw, x, y);
}

void upsample2d_backward(UpsampleMode mode, int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh,
                         int64_t fw, const float* dy, float* dx) {
  check(mode, N, H, W, C, fh, fw);
  if (N == 0) return;
  if (mode == UpsampleMode::nearest)
    nearest_backward(N, H, W, C, fh, fw, dy, dx);
  else
    bilinear_backward(N, H, W, C, fh, fw, dy, dx);
}

}  // namespace cnnx
