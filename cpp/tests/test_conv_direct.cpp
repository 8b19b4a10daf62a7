// The direct convolution with packed weights (conv_direct*) and its public
// face ConvPacked, against naive loops on every ISA that has a tile: odd
// channel counts (partial blocks), strides, dilations, asymmetric pads,
// groups, the zero-padded row bands, depth chunks for big weights, every
// epilogue part, whole runs on 1-2 threads and forward_part shares.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/threading.h"
#include "conv/conv_direct.h"
#include "test_util.h"

namespace {

using cnnx::Conv2dShape;

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

// act(conv * scale + bias + res), in double.
std::vector<float> reference(const Conv2dShape& s, const std::vector<float>& x,
                             const std::vector<float>& w, const float* bias, const float* scale,
                             const float* res, bool relu, double relu_max = INFINITY) {
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  std::vector<float> y(s.output_size());
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t co = 0; co < s.C_out; ++co) {
          const int64_t g = co / cog;
          double acc = 0.0;
          for (int64_t kh = 0; kh < s.KH; ++kh)
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
              const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
              if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
              for (int64_t ci = 0; ci < cig; ++ci)
                acc += double(x[((n * s.H + ih) * s.W + iw) * s.C_in + g * cig + ci]) *
                       w[((kh * s.KW + kw) * cig + ci) * s.C_out + co];
            }
          const int64_t i = ((n * OH + oh) * OW + ow) * s.C_out + co;
          double v =
              acc * (scale ? scale[co] : 1.0) + (bias ? bias[co] : 0.0) + (res ? res[i] : 0.0);
          if (relu) v = std::min(std::max(v, 0.0), relu_max);
          y[i] = static_cast<float>(v);
        }
  return y;
}

struct Epi {
  bool bias, scale, res, relu;
  float relu_max;  // ReLU6's top; INFINITY: plain ReLU
};

void check_direct(const Conv2dShape& s, uint32_t seed) {
  const auto x = cnnx_test::random_vector(s.input_size(), seed);
  const auto w = cnnx_test::random_vector(s.weight_size(), seed + 1);
  const auto b = cnnx_test::random_vector(s.C_out, seed + 2);
  const auto sc = cnnx_test::random_vector(s.C_out, seed + 3, 0.5f, 1.5f);
  const auto res = cnnx_test::random_vector(s.output_size(), seed + 4);
  const Epi epis[] = {{false, false, false, false, INFINITY},
                      {true, false, false, true, INFINITY},
                      {true, true, true, true, INFINITY},
                      {true, true, true, true, 0.25f}};
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    if (!cnnx::conv_detail::direct_kernel(s.cout_per_group()).fn) continue;
    SCOPED_TRACE(cnnx::isa_name(isa));
    std::vector<cnnx::conv_detail::DirectLayout> layouts;
    std::vector<std::vector<float>> wps;
    for (int64_t g = 0; g < s.groups; ++g) {
      layouts.push_back(cnnx::conv_detail::direct_layout(s, g));
      wps.emplace_back(layouts.back().wsize());
      cnnx::conv_detail::direct_pack_weights(layouts.back(), w.data(), wps.back().data());
    }
    for (const Epi& e : epis) {
      cnnx::conv_detail::DirectEpi ep;
      ep.bias = e.bias ? b.data() : nullptr;
      ep.scale = e.scale ? sc.data() : nullptr;
      ep.res = e.res ? res.data() : nullptr;
      ep.relu = e.relu;
      ep.relu_max = e.relu_max;
      const auto want = reference(s, x, w, ep.bias, ep.scale, ep.res, e.relu, e.relu_max);
      float scale_of = 1.0f;
      for (float v : want) scale_of = std::max(scale_of, std::fabs(v));
      // Whole runs on 1 and 2 threads, then 1..3 parts on the calling thread.
      for (int mode = 0; mode < 5; ++mode) {
        SCOPED_TRACE(mode);
        std::vector<float> y(s.output_size(), NAN);
        for (int64_t g = 0; g < s.groups; ++g) {
          if (mode < 2) {
            cnnx::conv_detail::direct_run(layouts[g], wps[g].data(), x.data(), s.N, y.data(), ep,
                                          mode + 1);
          } else {
            const int parts = mode - 1;
            for (int p = 0; p < parts; ++p)
              cnnx::conv_detail::direct_run_part(layouts[g], wps[g].data(), x.data(), s.N, y.data(),
                                                 ep, p, parts);
          }
        }
        ASSERT_TRUE(cnnx_test::all_close(y.data(), want.data(), y.size(), 1e-4f, 1e-5f * scale_of));
      }
    }
  }
}

// Merged filter rows on a zero-padded band (few input channels).
TEST(ConvDirect, StridedPaddedNarrow) {
  check_direct(make(2, 11, 13, 20, 3, 3, 70, 2, 1, 1, 1), 1);
}
TEST(ConvDirect, StemLike) { check_direct(make(1, 23, 21, 3, 7, 7, 24, 2, 3, 1, 1), 2); }
TEST(ConvDirect, GroupsPadded) { check_direct(make(2, 9, 10, 16, 3, 3, 64, 1, 1, 1, 2), 3); }
// One segment per tap, straight from the image (taps outside read zeros).
TEST(ConvDirect, StridedWide) { check_direct(make(3, 12, 11, 40, 3, 3, 64, 2, 1, 1, 1), 4); }
TEST(ConvDirect, OneByOne) { check_direct(make(2, 7, 9, 33, 1, 1, 50, 1, 0, 1, 1), 5); }
TEST(ConvDirect, OneByOneStride2) { check_direct(make(5, 9, 8, 64, 1, 1, 96, 2, 0, 1, 1), 6); }
TEST(ConvDirect, Dilated) { check_direct(make(2, 13, 12, 8, 3, 3, 16, 1, 2, 2, 1), 7); }
TEST(ConvDirect, NarrowOutputs) { check_direct(make(2, 8, 9, 12, 3, 3, 5, 1, 1, 1, 1), 8); }
TEST(ConvDirect, AsymmetricPads) {
  Conv2dShape s = make(2, 9, 10, 36, 3, 2, 40, 1, 0, 1, 1);
  s.pad_top = 2;
  s.pad_bottom = 0;
  s.pad_left = 0;
  s.pad_right = 1;
  s.stride_w = 2;
  check_direct(s, 9);
  s.C_in = 6;  // the merged, padded form
  check_direct(s, 10);
}
TEST(ConvDirect, RowDilationMerged) {
  Conv2dShape s = make(2, 12, 10, 6, 3, 3, 32, 1, 1, 1, 1);
  s.dilation_h = 2;
  s.pad_top = s.pad_bottom = 2;
  check_direct(s, 11);
}
// Weights beyond the chunk budget: depth chunks over tile groups, whole
// segments grouped (3x3x256) or one segment split (1x1x2048).
TEST(ConvDirect, DepthChunksBySegment) {
  check_direct(make(1, 5, 6, 256, 3, 3, 72, 1, 1, 1, 1), 12);
}
TEST(ConvDirect, DepthChunksInSegment) {
  check_direct(make(2, 3, 5, 2048, 1, 1, 64, 1, 0, 1, 1), 13);
}
TEST(ConvDirect, DepthChunksStrided) { check_direct(make(1, 9, 9, 300, 3, 3, 40, 2, 1, 1, 1), 14); }

TEST(ConvPacked, MatchesConv2dWithEveryEpiloguePart) {
  const Conv2dShape shapes[] = {make(2, 10, 9, 24, 3, 3, 48, 2, 1, 1, 1),
                                make(1, 7, 7, 64, 1, 1, 96, 1, 0, 1, 1),
                                make(3, 12, 12, 3, 5, 5, 8, 1, 2, 1, 1),
                                make(2, 8, 8, 6, 3, 3, 6, 1, 1, 1, 6),      // depthwise
                                make(2, 12, 11, 40, 3, 3, 36, 1, 1, 1, 1),  // Winograd 3x3
                                make(1, 11, 10, 64, 3, 3, 64, 1, 1, 1, 2),  // groups
                                make(2, 14, 14, 8, 5, 5, 16, 1, 0, 1, 1),   // Winograd 5x5
                                make(2, 9, 7, 40, 1, 1, 12, 1, 0, 1, 1)};   // narrow 1x1
  uint32_t seed = 20;
  for (const Conv2dShape& s : shapes) {
    const auto x = cnnx_test::random_vector(s.input_size(), seed++);
    const auto w = cnnx_test::random_vector(s.weight_size(), seed++);
    const auto b = cnnx_test::random_vector(s.C_out, seed++);
    const auto sc = cnnx_test::random_vector(s.C_out, seed++, 0.5f, 1.5f);
    const auto res = cnnx_test::random_vector(s.output_size(), seed++);
    const auto want = reference(s, x, w, b.data(), sc.data(), res.data(), true);
    for (cnnx::Isa isa : cnnx_test::supported_isas()) {
      cnnx_test::IsaScope scope(isa);
      SCOPED_TRACE(cnnx::isa_name(isa));
      cnnx::ConvPacked cp(s, w.data());
      SCOPED_TRACE(cp.algorithm());
      EXPECT_EQ(cp.shape().C_out, s.C_out);
      cnnx::ConvEpilogue ep{b.data(), sc.data(), res.data(), cnnx::Activation::relu};
      std::vector<float> y(s.output_size(), NAN);
      cp.forward(x.data(), s.N, y.data(), ep);
      EXPECT_TRUE(cnnx_test::all_close(y.data(), want.data(), y.size(), 1e-4f, 1e-4f));
      std::fill(y.begin(), y.end(), NAN);
      for (int p = 0; p < 3; ++p) cp.forward_part(x.data(), s.N, y.data(), ep, p, 3);
      EXPECT_TRUE(cnnx_test::all_close(y.data(), want.data(), y.size(), 1e-4f, 1e-4f));
      // repack: new weights, same shape
      std::vector<float> w2(w.size());
      for (size_t i = 0; i < w.size(); ++i) w2[i] = -w[i];
      cp.repack(w2.data());
      const auto want2 = reference(s, x, w2, b.data(), nullptr, nullptr, false);
      cp.forward(x.data(), s.N, y.data(), cnnx::ConvEpilogue{b.data()});
      EXPECT_TRUE(cnnx_test::all_close(y.data(), want2.data(), y.size(), 1e-4f, 1e-4f));
    }
  }
}

TEST(ConvPacked, AlgorithmsAndNonFiniteInputs) {
  // Winograd (3x3, >= 10x10 outputs, AVX-512) keeps NaN/inf local to the
  // pixels that read it, as the direct sum does (its transforms would spread
  // them over whole tiles): such inputs run on the direct kernel.
  const Conv2dShape s = make(1, 12, 12, 32, 3, 3, 32, 1, 1, 1, 1);
  auto x = cnnx_test::random_vector(s.input_size(), 40);
  const auto w = cnnx_test::random_vector(s.weight_size(), 41);
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    cnnx::ConvPacked cp(s, w.data());
    if (isa == cnnx::Isa::avx512) EXPECT_STREQ(cp.algorithm(), "winograd");
    if (isa == cnnx::Isa::avx512) {
      // (its own weights: the 32 -> 32 ones above are a quarter of the size)
      const Conv2dShape s7 = make(1, 7, 7, 64, 3, 3, 64, 1, 1, 1, 1);
      const auto w7 = cnnx_test::random_vector(s7.weight_size(), 42);
      EXPECT_STREQ(cnnx::ConvPacked(s7, w7.data()).algorithm(), "direct");
    }
    for (float bad : {NAN, INFINITY}) {
      x[(5 * 12 + 6) * 32 + 3] = bad;
      std::vector<float> y(s.output_size()), want(s.output_size());
      for (int parts : {0, 2}) {
        std::fill(y.begin(), y.end(), 0.0f);
        if (parts == 0)
          cp.forward(x.data(), 1, y.data());
        else
          for (int p = 0; p < parts; ++p) cp.forward_part(x.data(), 1, y.data(), {}, p, parts);
        want = reference(s, x, w, nullptr, nullptr, nullptr, false);
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_EQ(std::isnan(y[i]), std::isnan(want[i])) << i;
          ASSERT_EQ(std::isinf(y[i]), std::isinf(want[i])) << i;
        }
      }
      x[(5 * 12 + 6) * 32 + 3] = 0.0f;
    }
  }
}

TEST(ConvPacked, ActMaxOnTheDirectAlgorithmOnly) {
  const Conv2dShape s = make(1, 7, 7, 64, 1, 1, 96, 1, 0, 1, 1);  // 1x1: direct
  const auto x = cnnx_test::random_vector(s.input_size(), 50);
  const auto w = cnnx_test::random_vector(s.weight_size(), 51);
  const auto b = cnnx_test::random_vector(s.C_out, 52);
  const auto want = reference(s, x, w, b.data(), nullptr, nullptr, true, 0.5);
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    SCOPED_TRACE(cnnx::isa_name(isa));
    cnnx::ConvPacked cp(s, w.data());
    cnnx::ConvEpilogue ep{b.data(), nullptr, nullptr, cnnx::Activation::relu, 0.5f};
    std::vector<float> y(s.output_size(), NAN);
    EXPECT_EQ(cp.takes_act_max(), std::string(cp.algorithm()) == "direct");
    if (std::string(cp.algorithm()) != "direct") {
      EXPECT_THROW(cp.forward(x.data(), 1, y.data(), ep), std::invalid_argument);
      continue;
    }
    cp.forward(x.data(), 1, y.data(), ep);
    EXPECT_TRUE(cnnx_test::all_close(y.data(), want.data(), y.size(), 1e-4f, 1e-4f));
    ep.act = cnnx::Activation::none;  // a top without the ReLU: refused
    EXPECT_THROW(cp.forward(x.data(), 1, y.data(), ep), std::invalid_argument);
  }
  // 1x1 with <= 16 outputs: narrow_1x1 on AVX-512, which takes the top too
  const Conv2dShape nr = make(1, 5, 6, 40, 1, 1, 12, 1, 0, 1, 1);
  const auto xn = cnnx_test::random_vector(nr.input_size(), 55);
  const auto wn = cnnx_test::random_vector(nr.weight_size(), 56);
  const auto wantn = reference(nr, xn, wn, nullptr, nullptr, nullptr, true, 0.25);
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    cnnx::ConvPacked cp(nr, wn.data());
    if (std::string(cp.algorithm()) != "narrow_1x1") continue;
    EXPECT_TRUE(cp.takes_act_max());
    std::vector<float> y(nr.output_size(), NAN);
    cp.forward(xn.data(), 1, y.data(), {nullptr, nullptr, nullptr, cnnx::Activation::relu, 0.25f});
    EXPECT_TRUE(cnnx_test::all_close(y.data(), wantn.data(), y.size(), 1e-4f, 1e-4f));
  }
  const Conv2dShape d = make(1, 6, 6, 8, 3, 3, 8, 1, 1, 1, 8);  // depthwise: conv2d
  const auto wd = cnnx_test::random_vector(d.weight_size(), 53);
  const auto xd = cnnx_test::random_vector(d.input_size(), 54);
  cnnx::ConvPacked cd(d, wd.data());
  EXPECT_FALSE(cd.takes_act_max());
  std::vector<float> yd(d.output_size());
  EXPECT_THROW(cd.forward(xd.data(), 1, yd.data(),
                          {nullptr, nullptr, nullptr, cnnx::Activation::relu, 6.0f}),
               std::invalid_argument);
}

TEST(ConvPacked, RejectsBadInput) {
  Conv2dShape s = make(1, 4, 4, 3, 5, 5, 4, 1, 0, 1, 1);  // filter larger than the input
  std::vector<float> w(s.weight_size());
  EXPECT_THROW(cnnx::ConvPacked(s, w.data()), std::invalid_argument);
  s = make(1, 8, 8, 3, 3, 3, 4, 1, 0, 1, 1);
  EXPECT_THROW(cnnx::ConvPacked(s, nullptr), std::invalid_argument);
  cnnx::ConvPacked empty;
  EXPECT_THROW(empty.forward(nullptr, 1, nullptr), std::logic_error);
}

}  // namespace
