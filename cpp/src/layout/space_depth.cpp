// Depth <-> space (DepthToSpace, SpaceToDepth, PixelShuffle) and channel
// shuffle of NHWC images (see cnnx/layout.h). In NHWC the DCR order moves
// runs of b*C' contiguous floats (one memcpy each); CRD interleaves the
// channels of a pixel with the block offsets (a small transpose per pixel).
#include <cstring>
#include <stdexcept>

#include "cnnx/layout.h"
#include "layout/layout_kernels.h"
#include "ops/ops_common.h"

namespace cnnx {
namespace {

void check(DepthOrder order, int64_t N, int64_t H, int64_t W, int64_t C, int64_t b) {
  const int o = static_cast<int>(order);
  if (o < 0 || o > 1) throw std::invalid_argument("mode: expected DCR or CRD");
  if (N < 0 || H < 1 || W < 1 || C < 1)
    throw std::invalid_argument("x: expected N >= 0 and H, W, C >= 1");
  if (b < 1 || b >= (int64_t{1} << 20)) throw std::invalid_argument("block_size: expected >= 1");
}

}  // namespace

void depth_to_space(DepthOrder order, int64_t N, int64_t H, int64_t W, int64_t C, int64_t b,
                    const float* x, float* y) {
  check(order, N, H, W, C, b);
  if (C % (b * b)) throw std::invalid_argument("block_size: its square must divide the channels");
  const LayoutKernels& k = layout_kernels();
  const int64_t Co = C / (b * b), orow = W * b * Co;
  const int nt = ops_detail::threads_for_bytes(8.0 * static_cast<double>(N * H * W * C));
  const bool stream = stream_stores(4.0 * static_cast<double>(N * H * W * C));
  ops_detail::parallel_range(
      N * H, nt,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {  // input row (n, h) -> output rows (n, h*b + i)
          const float* xr = x + r * W * C;
          if (order == DepthOrder::crd && b == 2) {  // PixelShuffle(2): both rows at once
            float* y0 = y + r * 2 * orow;
            for (int64_t w = 0; w < W; ++w)
              k.d2s_crd2(xr + w * C, Co, y0 + w * 2 * Co, y0 + orow + w * 2 * Co);
            continue;
          }
          for (int64_t i = 0; i < b; ++i) {
            float* yr = y + (r * b + i) * orow;
            for (int64_t w = 0; w < W; ++w) {
              const float* px = xr + w * C;
              if (order == DepthOrder::dcr)
                k.copy(px + i * b * Co, yr + w * b * Co, b * Co, stream);
              else  // y[w*b + j][c] = px[c*b*b + i*b + j]
                k.transpose_block(px + i * b, b * b, Co, b, yr + w * b * Co, Co);
            }
          }
        }
      },
      1);
}

void space_to_depth(DepthOrder order, int64_t N, int64_t H, int64_t W, int64_t C, int64_t b,
                    const float* x, float* y) {
  check(order, N, H, W, C, b);
  if (H % b || W % b)
    throw std::invalid_argument("block_size: must divide the height and the width");
  const LayoutKernels& k = layout_kernels();
  const int64_t OH = H / b, OW = W / b, Co = C * b * b;
  const int nt = ops_detail::threads_for_bytes(8.0 * static_cast<double>(N * H * W * C));
  const bool stream = stream_stores(4.0 * static_cast<double>(N * H * W * C));
  ops_detail::parallel_range(
      N * OH, nt,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {  // output row (n, oh) <- input rows (n, oh*b + i)
          float* yr = y + r * OW * Co;
          if (order == DepthOrder::crd && b == 2) {  // PixelUnshuffle(2)
            const float* x0 = x + r * 2 * W * C;
            for (int64_t w = 0; w < OW; ++w)
              k.s2d_crd2(x0 + w * 2 * C, x0 + W * C + w * 2 * C, C, yr + w * Co);
            continue;
          }
          for (int64_t i = 0; i < b; ++i) {
            const float* xr = x + (r * b + i) * W * C;
            for (int64_t w = 0; w < OW; ++w) {
              float* py = yr + w * Co;
              const float* src = xr + w * b * C;  // b pixels of C
              if (order == DepthOrder::dcr)
                k.copy(src, py + i * b * C, b * C, stream);
              else  // py[c*b*b + i*b + j] = src[j*C + c]
                k.transpose_block(src, C, b, C, py + i * b, b * b);
            }
          }
        }
      },
      1);
}

void channel_shuffle(int64_t pixels, int64_t C, int64_t groups, const float* x, float* y) {
  if (pixels < 0 || C < 1) throw std::invalid_argument("x: expected at least one channel");
  if (groups < 1 || C % groups)
    throw std::invalid_argument("groups: must be >= 1 and divide the channels");
  const LayoutKernels& k = layout_kernels();
  const int nt = ops_detail::threads_for_bytes(8.0 * static_cast<double>(pixels * C));
  const bool stream = stream_stores(4.0 * static_cast<double>(pixels * C));
  ops_detail::parallel_range(
      pixels, nt,
      [&](int64_t b, int64_t e) {
        k.shuffle(x + b * C, e - b, groups, C / groups, y + b * C, stream);
      },
      1);
}

}  // namespace cnnx
