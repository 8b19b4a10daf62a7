// Transposed convolution on the convolution kernels (see
// cnnx/conv_transpose.h): the mirrored convolution has this op's output
// grid as its input and this op's input grid as its output, the same
// kernel, stride, dilation, groups and leading pads.
//
// Its trailing pad is chosen so that its output size is exactly this op's
// input size: max(0, pad - out_pad). Output padding beyond the stride
// (possible when the dilation is larger) leaves rows that no input pixel
// reaches; those are trimmed from the mirrored convolution (backward).
//
// The forward pass is not conv2d_backward_data itself but the same GEMM
// with a cache-friendlier scatter (scatter_forward_image): measured on a
// U-Net decoder layer (8x32x32x128 -> 64x64x64, 3x3 stride 2, one thread),
// 14.5 ms through backward-data plus a bias pass, 12.8 ms here (GEMM alone
// 11.6 ms). A sub-pixel form (each output phase a stride-1 convolution on
// the implicit GEMM) measured 13.8 ms: its GEMMs have only C_out columns,
// so patch packing is paid per phase.
#include "cnnx/conv_transpose.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cnnx/layout.h"
#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"
#include "layout/layout_kernels.h"
#include "ops/ops_common.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace {

struct Mirror {
  Conv2dShape c;
  int64_t trim_h = 0, trim_w = 0;  // unreachable output rows / columns at the end
};

Mirror mirror(const ConvTranspose2dShape& s) {
  Mirror m;
  Conv2dShape& c = m.c;
  c.N = s.N;
  c.C_in = s.C_out;
  c.C_out = s.C_in;
  c.KH = s.KH;
  c.KW = s.KW;
  c.stride_h = s.stride_h;
  c.stride_w = s.stride_w;
  c.dilation_h = s.dilation_h;
  c.dilation_w = s.dilation_w;
  c.groups = s.groups;
  c.pad_top = s.pad_top;
  c.pad_left = s.pad_left;
  // rows past the last one the input reaches (negative: the trailing pad cuts)
  const int64_t eh = s.out_pad_h - s.pad_bottom, ew = s.out_pad_w - s.pad_right;
  c.pad_bottom = std::max<int64_t>(0, -eh);
  c.pad_right = std::max<int64_t>(0, -ew);
  m.trim_h = std::max<int64_t>(0, eh - (s.stride_h - 1));
  m.trim_w = std::max<int64_t>(0, ew - (s.stride_w - 1));
  c.H = s.out_h() - m.trim_h;
  c.W = s.out_w() - m.trim_w;
  return m;
}

void check(const ConvTranspose2dShape& s) {
  const char* msg = conv_transpose2d_check(s);
  if (msg[0]) throw std::invalid_argument(msg);
}

Pad2dShape trim_shape(const Mirror& m) {
  Pad2dShape p;
  p.N = m.c.N;
  p.H = m.c.H;
  p.W = m.c.W;
  p.C = m.c.C_in;
  p.bottom = m.trim_h;
  p.right = m.trim_w;
  return p;
}

// The scatter form of the forward pass, per image: a band of input pixels
// times every filter tap at once (one GEMM: pixels x (KH*KW*C_out)), whose
// columns are then added to the output pixels they reach. Output rows get
// their bias when a band first reaches them and their ReLU once no later
// band can, so each row is touched while it is in cache (no zeroing pass,
// no bias pass). Bands are large so the filter is packed few times.
void scatter_forward_image(const ConvTranspose2dShape& s, const float* xn, const float* w,
                           const float* bias, float* yn, Activation act, int gemm_threads,
                           const float* tiles) {
  const LayoutKernels& k = layout_kernels();
  const int64_t OH = s.out_h(), OW = s.out_w(), C = s.C_out;
  const int64_t cig = s.C_in / s.groups, cog = s.C_out / s.groups;
  const int64_t Kg = s.KH * s.KW * cog;
  int64_t band = std::max<int64_t>(1, std::min(s.H, ((int64_t{1} << 19) / Kg + s.W - 1) / s.W));
  band = (s.H + (s.H + band - 1) / band - 1) / ((s.H + band - 1) / band);  // balanced
  float* z = thread_scratch(ScratchSlot::op_1, static_cast<size_t>(band * s.W * Kg));
  if (tiles) {
    // Each output pixel is reached by exactly one tap (kernel == stride, no
    // padding): the GEMM's epilogue adds the bias and the ReLU, and its rows
    // are copied into place (a depth-to-space), with no zeroing and no adds.
    for (int64_t r0 = 0; r0 < s.H; r0 += band) {
      const int64_t r1 = std::min(s.H, r0 + band), P = (r1 - r0) * s.W;
      sgemm(Trans::N, Trans::T, P, Kg, s.C_in, 1.0f, xn + r0 * s.W * s.C_in, s.C_in, w, s.C_in,
            0.0f, z, Kg, GemmEpilogue{tiles, act}, gemm_threads);
      const int64_t run = s.KW * C;  // one filter row: KW output pixels of all channels
      for (int64_t p = 0; p < P; ++p) {
        const int64_t iy = r0 + p / s.W, ix = p % s.W;
        for (int64_t kh = 0; kh < s.KH; ++kh)
          k.copy(z + p * Kg + kh * run, yn + ((iy * s.KH + kh) * OW + ix * s.KW) * C, run, false);
      }
    }
    return;
  }
  int64_t ready = 0, done = 0;  // rows [0, ready) hold their bias; [0, done) are final
  auto init_to = [&](int64_t r) {
    for (; ready < r; ++ready) {
      float* row = yn + ready * OW * C;
      if (bias)
        for (int64_t q = 0; q < OW; ++q)
          std::memcpy(row + q * C, bias, sizeof(float) * static_cast<size_t>(C));
      else
        std::fill(row, row + OW * C, 0.0f);
    }
  };
  auto finish_to = [&](int64_t r) {
    init_to(r);
    if (act == Activation::relu && r > done)
      k.bias_act(yn + done * OW * C, (r - done) * OW, C, nullptr, true);
    done = std::max(done, r);
  };
  for (int64_t r0 = 0; r0 < s.H; r0 += band) {
    const int64_t r1 = std::min(s.H, r0 + band), P = (r1 - r0) * s.W;
    init_to(std::min(OH, (r1 - 1) * s.stride_h - s.pad_top + (s.KH - 1) * s.dilation_h + 1));
    for (int64_t g = 0; g < s.groups; ++g) {
      sgemm(Trans::N, Trans::T, P, Kg, cig, 1.0f, xn + r0 * s.W * s.C_in + g * cig, s.C_in,
            w + g * cig, s.C_in, 0.0f, z, Kg, {}, gemm_threads);
      for (int64_t p = 0; p < P; ++p) {
        const int64_t iy = r0 + p / s.W, ix = p % s.W;
        const float* zp = z + p * Kg;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t oy = iy * s.stride_h - s.pad_top + kh * s.dilation_h;
          if (oy < 0 || oy >= OH) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t ox = ix * s.stride_w - s.pad_left + kw * s.dilation_w;
            if (ox < 0 || ox >= OW) continue;
            k.add(zp + (kh * s.KW + kw) * cog, yn + (oy * OW + ox) * C + g * cog, cog);
          }
        }
      }
    }
    // rows no later band reaches
    finish_to(std::max<int64_t>(0, std::min(OH, r1 * s.stride_h - s.pad_top)));
  }
  finish_to(OH);
}

}  // namespace

const char* conv_transpose2d_check(const ConvTranspose2dShape& s) {
  if (s.N < 0 || s.H < 1 || s.W < 1) return "x: expected N >= 0 and H, W >= 1";
  if (s.C_in < 1) return "x: expected at least one input channel";
  if (s.KH < 1 || s.KW < 1) return "w: expected a filter of at least 1x1";
  if (s.C_out < 1) return "w: expected at least one output channel";
  if (s.stride_h < 1 || s.stride_w < 1) return "stride: expected values >= 1";
  if (s.dilation_h < 1 || s.dilation_w < 1) return "dilation: expected values >= 1";
  if (s.pad_top < 0 || s.pad_bottom < 0 || s.pad_left < 0 || s.pad_right < 0)
    return "padding: expected values >= 0";
  if (s.out_pad_h < 0 || s.out_pad_w < 0) return "output_padding: expected values >= 0";
  if ((s.out_pad_h >= s.stride_h && s.out_pad_h >= s.dilation_h) ||
      (s.out_pad_w >= s.stride_w && s.out_pad_w >= s.dilation_w))
    return "output_padding: must be smaller than the stride or the dilation";
  if (s.groups < 1) return "groups: expected an int >= 1";
  if (s.C_in % s.groups || s.C_out % s.groups)
    return "groups: C_in and C_out must both be divisible by groups";
  constexpr int64_t kMax = int64_t{1} << 40;
  for (int64_t v : {s.H, s.W, s.KH, s.KW, s.stride_h, s.stride_w, s.dilation_h, s.dilation_w,
                    s.pad_top, s.pad_bottom, s.pad_left, s.pad_right})
    if (v >= kMax) return "stride: sizes, strides, pads and dilations must be below 2^40";
  if ((s.H - 1) >= kMax / s.stride_h || (s.W - 1) >= kMax / s.stride_w ||
      (s.KH - 1) >= kMax / s.dilation_h || (s.KW - 1) >= kMax / s.dilation_w)
    return "stride: the output must span fewer than 2^40 pixels per axis";
  if (s.out_h() < 1 || s.out_w() < 1)
    return "padding: the pads remove the whole output ((n-1)*s - pads + d*(f-1) + output_padding "
           "+ 1 < 1)";
  const Mirror m = mirror(s);
  if (m.c.H < 1 || m.c.W < 1) return "output_padding: no output pixel is reached by the input";
  return conv2d_check(m.c);
}

void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                              const float* bias, float* y, Activation act) {
  check(s);
  if (s.N == 0) return;
  const int64_t in_img = s.H * s.W * s.C_in, out_img = s.out_h() * s.out_w() * s.C_out;
  const double flops = 2.0 * s.N * s.H * s.W * s.KH * s.KW * (s.C_in / s.groups) * s.C_out;
  const int nt = threads_for_flops(flops);
  // kernel == stride without padding or dilation (the U-Net's 2x2 stride 2):
  // the output is tiled by the taps; their bias, repeated per tap
  std::vector<float> tiles;
  if (s.KH == s.stride_h && s.KW == s.stride_w && s.dilation_h == 1 && s.dilation_w == 1 &&
      s.pad_top == 0 && s.pad_bottom == 0 && s.pad_left == 0 && s.pad_right == 0 &&
      s.out_pad_h == 0 && s.out_pad_w == 0 && s.groups == 1) {
    tiles.resize(static_cast<size_t>(s.KH * s.KW * s.C_out));
    for (size_t i = 0; i < tiles.size(); ++i) tiles[i] = bias ? bias[i % s.C_out] : 0.0f;
  }
  const float* tp = tiles.empty() ? nullptr : tiles.data();
  if (nt > 1 && s.N >= nt) {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
    for (int64_t n = 0; n < s.N; ++n)
      scatter_forward_image(s, x + n * in_img, w, bias, y + n * out_img, act, 1, tp);
  } else {
    for (int64_t n = 0; n < s.N; ++n)
      scatter_forward_image(s, x + n * in_img, w, bias, y + n * out_img, act, 0, tp);
  }
}

void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                    float* dx) {
  check(s);
  if (s.N == 0) return;
  const Mirror m = mirror(s);
  if (m.trim_h || m.trim_w) {
    std::vector<float> t(static_cast<size_t>(m.c.input_size()));
    Pad2dShape crop = trim_shape(m);  // dy without the unreachable rows
    crop.H = s.out_h();
    crop.W = s.out_w();
    crop.bottom = -m.trim_h;
    crop.right = -m.trim_w;
    pad2d_forward(PadMode::constant, crop, 0.0f, dy, t.data());
    conv2d_forward(m.c, t.data(), w, nullptr, dx);
    return;
  }
  conv2d_forward(m.c, dy, w, nullptr, dx);
}

void conv_transpose2d_backward_weights(const ConvTranspose2dShape& s, const float* dy,
                                       const float* x, float* dw, float* db) {
  check(s);
  const Mirror m = mirror(s);
  if (db) channel_sum(dy, s.N * s.out_h() * s.out_w(), s.C_out, db);
  if (!dw) return;
  if (s.N == 0) {
    std::fill(dw, dw + s.weight_size(), 0.0f);
    return;
  }
  // The mirrored convolution's weight gradient: its input is dy, its output gradient x.
  if (m.trim_h || m.trim_w) {
    std::vector<float> t(static_cast<size_t>(m.c.input_size()));
    Pad2dShape crop = trim_shape(m);
    crop.H = s.out_h();
    crop.W = s.out_w();
    crop.bottom = -m.trim_h;
    crop.right = -m.trim_w;
    pad2d_forward(PadMode::constant, crop, 0.0f, dy, t.data());
    conv2d_backward_weights(m.c, x, t.data(), dw, nullptr);
    return;
  }
  conv2d_backward_weights(m.c, x, dy, dw, nullptr);
}

void channel_sum(const float* x, int64_t rows, int64_t C, float* db) {
  std::fill(db, db + C, 0.0f);
  if (rows <= 0) return;
  const LayoutKernels& k = layout_kernels();
  const int nt = ops_detail::threads_for_bytes(4.0 * static_cast<double>(rows * C));
  if (nt <= 1) {
    for (int64_t r = 0; r < rows; ++r) k.add(x + r * C, db, C);
    return;
  }
  std::vector<float> parts(static_cast<size_t>(nt * C), 0.0f);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    float* acc = parts.data() + t * C;
    for (int64_t r = rows * t / T; r < rows * (t + 1) / T; ++r) k.add(x + r * C, acc, C);
  }
#else
  for (int64_t r = 0; r < rows; ++r) k.add(x + r * C, parts.data(), C);
#endif
  for (int t = 0; t < nt; ++t) k.add(parts.data() + t * C, db, C);
}

}  // namespace cnnx
