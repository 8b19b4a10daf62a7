// conv2d forward / backward-data / backward-weights against naive loops, on
// every ISA level, for the algorithm paths (1x1 GEMM, implicit GEMM, its
// transposed form, col2im, depthwise, groups).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/threading.h"
#include "test_util.h"

namespace {

using cnnx::Conv2dShape;

// Calls f(n, oh, ow, g, kh, kw, ci_in_group, co, x_index, w_index, y_index)
// for every multiply-add of the convolution.
template <class F>
void for_each_tap(const Conv2dShape& s, F f) {
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t cig = s.C_in / s.groups, cog = s.C_out / s.groups;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t co = 0; co < s.C_out; ++co) {
          const int64_t g = co / cog;
          for (int64_t kh = 0; kh < s.KH; ++kh)
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
              const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
              if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
              for (int64_t ci = 0; ci < cig; ++ci)
                f(((n * s.H + ih) * s.W + iw) * s.C_in + g * cig + ci,
                  ((kh * s.KW + kw) * cig + ci) * s.C_out + co,
                  ((n * OH + oh) * OW + ow) * s.C_out + co);
            }
        }
}

Conv2dShape make(int64_t N, int64_t H, int64_t W, int64_t Ci, int64_t KH, int64_t KW, int64_t Co,
                 int64_t s, int64_t p, int64_t d, int64_t g) {
  Conv2dShape c;
  c.N = N;
  c.H = H;
  c.W = W;
  c.C_in = Ci;
  c.KH = KH;
  c.KW = KW;
  c.C_out = Co;
  c.stride_h = c.stride_w = s;
  c.pad_top = c.pad_bottom = c.pad_left = c.pad_right = p;
  c.dilation_h = c.dilation_w = d;
  c.groups = g;
  return c;
}

void check_shape(const Conv2dShape& s, uint32_t seed) {
  const auto x = cnnx_test::random_vector(s.input_size(), seed);
  const auto w = cnnx_test::random_vector(s.weight_size(), seed + 1);
  const auto b = cnnx_test::random_vector(s.C_out, seed + 2);
  const auto dy = cnnx_test::random_vector(s.output_size(), seed + 3);
  std::vector<double> ry(s.output_size()), rdx(s.input_size(), 0.0), rdw(s.weight_size(), 0.0);
  for (int64_t i = 0; i < s.output_size(); ++i) ry[i] = b[i % s.C_out];
  for_each_tap(s, [&](int64_t xi, int64_t wi, int64_t yi) {
    ry[yi] += double(x[xi]) * w[wi];
    rdx[xi] += double(dy[yi]) * w[wi];
    rdw[wi] += double(dy[yi]) * x[xi];
  });
  std::vector<double> rdb(s.C_out, 0.0);
  for (int64_t i = 0; i < s.output_size(); ++i) rdb[i % s.C_out] += dy[i];
  auto to_f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const auto fy = to_f(ry), fdx = to_f(rdx), fdw = to_f(rdw), fdb = to_f(rdb);
  auto scale_of = [](const std::vector<float>& v) {
    float m = 1.0f;
    for (float a : v) m = std::max(m, std::fabs(a));
    return m;
  };
  const float yscale = scale_of(fy), dxscale = scale_of(fdx);

  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    SCOPED_TRACE(cnnx::isa_name(isa));
    SCOPED_TRACE(cnnx::conv2d_forward_algorithm(s));
    std::vector<float> y(s.output_size(), NAN), dx(s.input_size(), NAN), dw(s.weight_size(), NAN),
        db(s.C_out, NAN);
    cnnx::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    // Absolute tolerance relative to the output's scale, as in tests/test_conv.py
    // (Winograd F(4x4,3x3) errs by about 1e-5 of the largest output).
    EXPECT_TRUE(cnnx_test::all_close(y.data(), fy.data(), y.size(), 1e-4f, 1e-4f * yscale));
    cnnx::conv2d_forward(s, x.data(), w.data(), b.data(), y.data(), cnnx::Activation::relu);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], std::max(fy[i], 0.0f), 1e-3f);
    cnnx::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
    EXPECT_TRUE(cnnx_test::all_close(dx.data(), fdx.data(), dx.size(), 1e-4f, 1e-4f * dxscale));
    cnnx::conv2d_backward_weights(s, dy.data(), x.data(), dw.data(), db.data());
    EXPECT_TRUE(cnnx_test::all_close(dw.data(), fdw.data(), dw.size(), 1e-4f, 2e-3f));
    EXPECT_TRUE(cnnx_test::all_close(db.data(), fdb.data(), db.size(), 1e-4f, 2e-3f));
  }
}

TEST(Conv2d, OneByOneGemm) { check_shape(make(2, 5, 6, 7, 1, 1, 40, 1, 0, 1, 1), 1); }
TEST(Conv2d, OneByOneStride2) { check_shape(make(2, 7, 6, 5, 1, 1, 9, 2, 0, 1, 1), 2); }
TEST(Conv2d, Padded3x3) { check_shape(make(2, 9, 8, 16, 3, 3, 40, 1, 1, 1, 1), 3); }
TEST(Conv2d, FewOutputChannels) { check_shape(make(3, 12, 12, 3, 5, 5, 8, 1, 0, 1, 1), 4); }
TEST(Conv2d, Strided) { check_shape(make(2, 11, 11, 6, 3, 3, 20, 2, 1, 1, 1), 5); }
TEST(Conv2d, Dilated) { check_shape(make(2, 10, 9, 4, 3, 3, 12, 1, 2, 2, 1), 6); }
TEST(Conv2d, StemLike) { check_shape(make(2, 20, 20, 3, 7, 7, 16, 2, 3, 1, 1), 7); }
TEST(Conv2d, Groups) { check_shape(make(2, 8, 8, 6, 3, 3, 9, 1, 1, 1, 3), 8); }
TEST(Conv2d, GroupsStrided) { check_shape(make(2, 9, 9, 8, 3, 3, 8, 2, 1, 1, 2), 9); }
TEST(Conv2d, Depthwise) { check_shape(make(2, 8, 7, 5, 3, 3, 5, 1, 1, 1, 5), 10); }
// The register-blocked forward (multiplier 1, 3x3/5x5): channels past a
// whole vector, stride 2, pads reaching past the filter's middle, images
// narrower than a pixel block, asymmetric pads.
TEST(Conv2d, DepthwiseWide) { check_shape(make(2, 13, 17, 37, 3, 3, 37, 1, 1, 1, 37), 33); }
TEST(Conv2d, DepthwiseStride2) { check_shape(make(2, 15, 14, 40, 3, 3, 40, 2, 1, 1, 40), 34); }
TEST(Conv2d, Depthwise5x5) { check_shape(make(1, 12, 11, 24, 5, 5, 24, 1, 2, 1, 24), 35); }
TEST(Conv2d, DepthwiseBigPads) { check_shape(make(1, 5, 6, 19, 3, 3, 19, 2, 2, 1, 19), 36); }
TEST(Conv2d, DepthwiseAsymmetric) {
  Conv2dShape s = make(2, 9, 21, 16, 3, 3, 16, 1, 0, 1, 16);
  s.pad_top = 0;
  s.pad_bottom = 2;
  s.pad_left = 2;
  s.pad_right = 0;
  s.stride_w = 2;
  check_shape(s, 37);
}
TEST(Conv2d, DepthwiseMultiplier) { check_shape(make(2, 8, 7, 4, 3, 3, 12, 2, 1, 1, 4), 11); }
TEST(Conv2d, Threaded) { check_shape(make(4, 16, 16, 32, 3, 3, 48, 1, 1, 1, 1), 12); }
TEST(Conv2d, ThreadedStrided) { check_shape(make(4, 16, 16, 32, 3, 3, 48, 2, 1, 1, 1), 13); }
TEST(Conv2d, DeepLongDepth) { check_shape(make(4, 20, 20, 32, 3, 3, 48, 1, 1, 1, 1), 16); }
TEST(Conv2d, FewPixelsManyChannels) { check_shape(make(1, 4, 4, 64, 3, 3, 160, 1, 1, 1, 1), 17); }
// Pixel-vectorised direct kernel (AVX-512, <= 4 input channels, rows >= 12).
TEST(Conv2d, PlanarLeNet) { check_shape(make(2, 32, 30, 3, 5, 5, 8, 1, 0, 1, 1), 18); }
TEST(Conv2d, PlanarStem) { check_shape(make(2, 40, 60, 3, 7, 7, 20, 2, 3, 1, 1), 19); }
TEST(Conv2d, PlanarShortRows) { check_shape(make(2, 12, 12, 16, 3, 3, 8, 1, 2, 1, 1), 23); }
// Pixel-vectorised kernel over flat padded rows (AVX2/AVX-512, <= 4 outputs,
// stride 1): each output count, dilation, asymmetric pads; the dx of RGB
// layers (3 outputs) runs on it with "full" padding.
TEST(Conv2d, FlatOneOutput) { check_shape(make(2, 14, 25, 5, 3, 3, 1, 1, 2, 2, 1), 29); }
TEST(Conv2d, FlatTwoOutputs) { check_shape(make(1, 9, 24, 3, 3, 3, 2, 1, 0, 1, 1), 30); }
TEST(Conv2d, FlatThreeOutputs) { check_shape(make(3, 13, 21, 8, 3, 3, 3, 1, 1, 1, 1), 31); }
TEST(Conv2d, FlatFourOutputsGroups) { check_shape(make(2, 11, 30, 8, 3, 3, 8, 1, 1, 1, 2), 32); }
// Winograd F(2x2,5x5): LeNet conv2 (dx with "full" padding), odd sizes.
TEST(Conv2d, Winograd5x5) { check_shape(make(2, 14, 14, 8, 5, 5, 16, 1, 0, 1, 1), 24); }
TEST(Conv2d, Winograd5x5Odd) { check_shape(make(2, 11, 9, 12, 5, 5, 20, 1, 2, 1, 1), 25); }
TEST(Conv2d, Winograd5x5DxOdd) { check_shape(make(2, 13, 12, 20, 5, 5, 12, 1, 1, 1, 1), 28); }
// Winograd F(4x4,3x3): odd sizes, channels not multiples of 16, big pads.
TEST(Conv2d, WinogradOdd) { check_shape(make(2, 11, 13, 40, 3, 3, 36, 1, 1, 1, 1), 20); }
TEST(Conv2d, WinogradBigPads) { check_shape(make(1, 6, 7, 32, 3, 3, 40, 1, 3, 1, 1), 21); }
TEST(Conv2d, WinogradGroups) { check_shape(make(2, 8, 8, 64, 3, 3, 64, 1, 1, 1, 2), 22); }
// Winograd backward-weights: few tiles (shared transforms) and many tiles.
TEST(Conv2d, WinogradWgradFewTiles) { check_shape(make(1, 5, 6, 96, 3, 3, 80, 1, 1, 1, 1), 26); }
TEST(Conv2d, WinogradWgradManyTiles) { check_shape(make(3, 21, 19, 33, 3, 3, 35, 1, 1, 1, 1), 27); }
// Backward-data of strided layers by stride phases on the direct tiles
// (>= 32 input channels per group at AVX-512, 16 at AVX2; not 1x1 unless
// CNNX_CONV_DIRECT=1, where phases without taps write zeros): partial
// channel blocks, 7x7, stride 3 with groups, a stride in one axis only with
// asymmetric pads.
TEST(Conv2d, StridedDxPhases) { check_shape(make(2, 13, 11, 40, 3, 3, 24, 2, 1, 1, 1), 38); }
TEST(Conv2d, StridedDx1x1) { check_shape(make(1, 15, 17, 64, 1, 1, 32, 2, 0, 1, 1), 39); }
TEST(Conv2d, StridedDx7x7) { check_shape(make(2, 19, 16, 36, 7, 7, 20, 2, 3, 1, 1), 40); }
TEST(Conv2d, StridedDxStride3Groups) { check_shape(make(2, 12, 13, 64, 3, 3, 32, 3, 2, 1, 2), 41); }
TEST(Conv2d, StridedDxOneAxis) {
  Conv2dShape s = make(2, 10, 15, 48, 3, 4, 16, 1, 0, 1, 1);
  s.stride_w = 2;
  s.pad_top = 1;
  s.pad_bottom = 0;
  s.pad_left = 2;
  s.pad_right = 1;
  check_shape(s, 42);
}
TEST(Conv2d, FilterAsLargeAsPaddedInput) { check_shape(make(2, 3, 3, 2, 5, 5, 3, 1, 1, 1, 1), 14); }

TEST(Conv2d, AsymmetricPadding) {
  Conv2dShape s = make(2, 6, 7, 3, 3, 2, 5, 1, 0, 1, 1);
  s.pad_top = 2;
  s.pad_bottom = 0;
  s.pad_left = 0;
  s.pad_right = 3;
  s.stride_w = 2;
  check_shape(s, 15);
}

TEST(Conv2d, EmptyBatch) {
  Conv2dShape s = make(0, 8, 8, 3, 3, 3, 4, 1, 1, 1, 1);
  std::vector<float> w(s.weight_size(), 1.0f), dw(s.weight_size(), NAN), db(4, NAN);
  cnnx::conv2d_forward(s, nullptr, w.data(), nullptr, nullptr);
  cnnx::conv2d_backward_data(s, nullptr, w.data(), nullptr);
  cnnx::conv2d_backward_weights(s, nullptr, nullptr, dw.data(), db.data());
  for (float v : dw) EXPECT_EQ(v, 0.0f);
  for (float v : db) EXPECT_EQ(v, 0.0f);
}

TEST(Conv2d, RejectsBadShapes) {
  std::vector<float> buf(4096);
  Conv2dShape s = make(1, 4, 4, 3, 5, 5, 4, 1, 0, 1, 1);  // filter larger than input
  EXPECT_STRNE(cnnx::conv2d_check(s), "");
  EXPECT_THROW(cnnx::conv2d_forward(s, buf.data(), buf.data(), nullptr, buf.data()),
               std::invalid_argument);
  s = make(1, 4, 4, 3, 3, 3, 4, 0, 0, 1, 1);
  EXPECT_THROW(cnnx::conv2d_backward_data(s, buf.data(), buf.data(), buf.data()),
               std::invalid_argument);
  s = make(1, 4, 4, 3, 3, 3, 4, 1, 0, 1, 2);  // groups does not divide C_in
  EXPECT_THROW(cnnx::conv2d_backward_weights(s, buf.data(), buf.data(), buf.data(), nullptr),
               std::invalid_argument);
}

}  // namespace
