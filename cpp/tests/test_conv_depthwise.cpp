// The depthwise forward kernel (conv_depthwise_impl.h) with the activation
// clamped in its store, against naive loops on every ISA: every width of a
// last pixel block (OW % 8 and OW % 4 from 0 to 7), strides 1 and 2, 3x3
// and 5x5, pads wider than the filter's middle, a partial channel vector,
// clamps ReLU, ReLU6, a general [lo, hi] and none, and NaN inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cnnx/conv.h"
#include "conv/conv_internal.h"
#include "test_util.h"

namespace {

using cnnx::Conv2dShape;

Conv2dShape dw_shape(int64_t N, int64_t H, int64_t W, int64_t C, int64_t K, int64_t stride,
                     int64_t pad) {
  Conv2dShape s;
  s.N = N;
  s.H = H;
  s.W = W;
  s.C_in = s.C_out = s.groups = C;
  s.KH = s.KW = K;
  s.stride_h = s.stride_w = stride;
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = pad;
  return s;
}

// Naive depthwise forward in double, then clamped to [lo, hi].
std::vector<float> reference(const Conv2dShape& s, const std::vector<float>& x,
                             const std::vector<float>& w, const std::vector<float>& b, float lo,
                             float hi) {
  const int64_t OH = s.out_h(), OW = s.out_w(), C = s.C_in;
  std::vector<float> y(static_cast<size_t>(s.N * OH * OW * C));
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < C; ++c) {
          double acc = b[c];
          for (int64_t kh = 0; kh < s.KH; ++kh)
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const int64_t ih = oh * s.stride_h - s.pad_top + kh;
              const int64_t iw = ow * s.stride_w - s.pad_left + kw;
              if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
              acc += double(x[((n * s.H + ih) * s.W + iw) * C + c]) * w[(kh * s.KW + kw) * C + c];
            }
          float v = static_cast<float>(acc);
          if (!std::isnan(v)) v = std::min(std::max(v, lo), hi);
          y[((n * OH + oh) * OW + ow) * C + c] = v;
        }
  return y;
}

void check(const Conv2dShape& s, float lo, float hi, uint32_t seed, bool with_nan = false) {
  auto x = cnnx_test::random_vector(s.input_size(), seed);
  const auto w = cnnx_test::random_vector(s.weight_size(), seed + 1);
  const auto b = cnnx_test::random_vector(s.C_out, seed + 2);
  for (float& v : x) v *= 4.0f;  // outputs well past 6, so ReLU6's top binds
  if (with_nan) x[x.size() / 2] = NAN;
  const auto ref = reference(s, x, w, b, lo, hi);
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    SCOPED_TRACE(cnnx::isa_name(isa));
    std::vector<float> y(ref.size(), -12345.0f);
    cnnx::conv_detail::depthwise_forward(s, x.data(), w.data(), b.data(), y.data(), lo, hi);
    int64_t nans = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      if (std::isnan(ref[i])) {
        ++nans;
        ASSERT_TRUE(std::isnan(y[i])) << "at " << i;
        continue;
      }
      ASSERT_NEAR(y[i], ref[i], 1e-4f * (1.0f + std::fabs(ref[i]))) << "at " << i;
    }
    if (with_nan) EXPECT_GT(nans, 0);
  }
}

TEST(DepthwiseClamp, EveryLastBlockWidthStride1) {
  for (int64_t W = 5; W <= 13; ++W) {
    SCOPED_TRACE(W);
    check(dw_shape(1, 6, W, 32, 3, 1, 1), 0.0f, 6.0f, static_cast<uint32_t>(10 + W));
  }
}

TEST(DepthwiseClamp, EveryLastBlockWidthStride2) {
  for (int64_t W = 9; W <= 25; W += 2) {
    SCOPED_TRACE(W);
    check(dw_shape(2, 7, W, 16, 3, 2, 1), 0.0f, INFINITY, static_cast<uint32_t>(40 + W));
  }
}

TEST(DepthwiseClamp, FiveByFiveAndBigPads) {
  check(dw_shape(1, 9, 11, 48, 5, 1, 2), -1.0f, 2.5f, 70);
  check(dw_shape(1, 9, 12, 16, 5, 2, 2), 0.0f, 6.0f, 71);
  check(dw_shape(1, 5, 6, 32, 3, 1, 2), 0.0f, 6.0f, 72);  // pads wider than the middle
}

TEST(DepthwiseClamp, PartialChannelVectorAndNoClamp) {
  check(dw_shape(2, 8, 10, 40, 3, 1, 1), -INFINITY, INFINITY, 80);
  check(dw_shape(1, 8, 10, 21, 3, 2, 1), 0.0f, 6.0f, 81);
}

TEST(DepthwiseClamp, MobileNetShapes) {
  check(dw_shape(1, 28, 28, 192, 3, 1, 1), 0.0f, 6.0f, 90);
  check(dw_shape(1, 14, 14, 96, 3, 2, 1), 0.0f, 6.0f, 91);
  check(dw_shape(1, 7, 7, 160, 3, 1, 1), 0.0f, 6.0f, 92);
}

TEST(DepthwiseClamp, NaNStaysNaN) {
  check(dw_shape(1, 6, 12, 16, 3, 1, 1), 0.0f, 6.0f, 100, true);
  check(dw_shape(1, 6, 12, 16, 3, 1, 1), 0.0f, INFINITY, 101, true);
}

}  // namespace
