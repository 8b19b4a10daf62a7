// Pooling kernels against naive loops, on every ISA level, threaded and not.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "cnnx/pool.h"
#include "cnnx/threading.h"
#include "test_util.h"

namespace {

using cnnx::Pool2dParams;
using cnnx::PoolShape;

struct Win {
  std::vector<int64_t> lo, hi;
};

Win strided_windows(int64_t n, int64_t k, int64_t s, int64_t before, int64_t after) {
  Win w;
  const int64_t out = (n + before + after - k) / s + 1;
  for (int64_t i = 0; i < out; ++i) {
    int64_t a = i * s - before, b = a + k;
    w.lo.push_back(a < 0 ? 0 : a);
    w.hi.push_back(b > n ? n : b);
  }
  return w;
}

Win adaptive_windows(int64_t n, int64_t out) {
  Win w;
  for (int64_t i = 0; i < out; ++i) {
    w.lo.push_back(static_cast<int64_t>(std::floor(double(i) * n / out)));
    w.hi.push_back(static_cast<int64_t>(std::ceil(double(i + 1) * n / out)));
  }
  return w;
}

inline int64_t at(const PoolShape& s, int64_t b, int64_t h, int64_t w, int64_t c) {
  return ((b * s.h + h) * s.w + w) * s.c + c;
}

// Naive reference: loops over every output element and its window.
// mode 0: max, 1: average with divisor div(i, j, count).
template <class Div>
void ref_forward(const PoolShape& s, const Win& wh, const Win& ww, int mode, Div div,
                 const std::vector<float>& x, std::vector<float>& y) {
  const int64_t oh = wh.lo.size(), ow = ww.lo.size();
  y.assign(s.n * oh * ow * s.c, 0.f);
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j)
        for (int64_t c = 0; c < s.c; ++c) {
          double acc = mode == 0 ? -INFINITY : 0.0;
          bool nan = false;
          for (int64_t h = wh.lo[i]; h < wh.hi[i]; ++h)
            for (int64_t w = ww.lo[j]; w < ww.hi[j]; ++w) {
              const float v = x[at(s, b, h, w, c)];
              if (mode == 0) {
                if (std::isnan(v)) nan = true;
                if (v > acc) acc = v;
              } else {
                acc += v;
              }
            }
          if (mode == 1) acc /= div(i, j, (wh.hi[i] - wh.lo[i]) * (ww.hi[j] - ww.lo[j]));
          y[((b * oh + i) * ow + j) * s.c + c] = nan ? NAN : static_cast<float>(acc);
        }
}

void ref_max_backward(const PoolShape& s, const Win& wh, const Win& ww, const std::vector<float>& x,
                      const std::vector<float>& dy, std::vector<float>& dx) {
  const int64_t oh = wh.lo.size(), ow = ww.lo.size();
  dx.assign(x.size(), 0.f);
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j)
        for (int64_t c = 0; c < s.c; ++c) {
          int64_t best = at(s, b, wh.lo[i], ww.lo[j], c);
          float m = -INFINITY;
          for (int64_t h = wh.lo[i]; h < wh.hi[i]; ++h)
            for (int64_t w = ww.lo[j]; w < ww.hi[j]; ++w) {
              const float v = x[at(s, b, h, w, c)];
              if (v > m) {  // strict: ties keep the first
                m = v;
                best = at(s, b, h, w, c);
              }
            }
          dx[best] += dy[((b * oh + i) * ow + j) * s.c + c];
        }
}

template <class Div>
void ref_avg_backward(const PoolShape& s, const Win& wh, const Win& ww, Div div,
                      const std::vector<float>& dy, std::vector<float>& dx) {
  const int64_t oh = wh.lo.size(), ow = ww.lo.size();
  dx.assign(s.n * s.h * s.w * s.c, 0.f);
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j)
        for (int64_t c = 0; c < s.c; ++c) {
          const float g = dy[((b * oh + i) * ow + j) * s.c + c] /
                          float(div(i, j, (wh.hi[i] - wh.lo[i]) * (ww.hi[j] - ww.lo[j])));
          for (int64_t h = wh.lo[i]; h < wh.hi[i]; ++h)
            for (int64_t w = ww.lo[j]; w < ww.hi[j]; ++w) dx[at(s, b, h, w, c)] += g;
        }
}

// Values in a few levels so that windows have ties.
std::vector<float> tied_vector(size_t n, uint32_t seed) {
  auto v = cnnx_test::random_vector(n, seed, 0.f, 4.f);
  for (auto& e : v) e = std::floor(e);
  return v;
}

struct Case {
  PoolShape s;
  Pool2dParams p;
};

const Case kCases[] = {
    {{2, 8, 8, 5}, {2, 2, 2, 2, 0, 0, 0, 0}},    {{1, 7, 9, 85}, {3, 3, 2, 2, 1, 1, 1, 1}},
    {{2, 9, 7, 19}, {3, 2, 1, 1, 1, 1, 1, 0}},   {{1, 10, 10, 33}, {4, 4, 3, 3, 2, 1, 0, 2}},
    {{3, 5, 6, 3}, {5, 6, 1, 1, 0, 0, 0, 0}},    {{1, 6, 7, 64}, {2, 2, 1, 1, 0, 1, 0, 1}},
    {{2, 9, 9, 32}, {3, 3, 2, 2, 1, 1, 1, 1}},  // n_C a multiple of every vector width
    {{1, 16, 16, 48}, {4, 4, 4, 4, 0, 0, 0, 0}},
};

class PoolIsa : public ::testing::TestWithParam<cnnx::Isa> {};

TEST_P(PoolIsa, MaxForwardAndBackwardMatchNaiveLoops) {
  cnnx_test::IsaScope scope(GetParam());
  uint32_t seed = 1;
  for (const Case& k : kCases) {
    for (bool ties : {false, true}) {
      const PoolShape& s = k.s;
      const auto x = ties ? tied_vector(s.n * s.h * s.w * s.c, seed++)
                          : cnnx_test::random_vector(s.n * s.h * s.w * s.c, seed++);
      int64_t oh, ow;
      cnnx::pool2d_check(s, k.p, &oh, &ow);
      const Win wh = strided_windows(s.h, k.p.kernel_h, k.p.stride_h, k.p.pad_top, k.p.pad_bottom);
      const Win ww = strided_windows(s.w, k.p.kernel_w, k.p.stride_w, k.p.pad_left, k.p.pad_right);
      ASSERT_EQ(int64_t(wh.lo.size()), oh);
      ASSERT_EQ(int64_t(ww.lo.size()), ow);
      std::vector<float> y(s.n * oh * ow * s.c), ref;
      cnnx::max_pool2d_forward(s, k.p, x.data(), y.data());
      ref_forward(s, wh, ww, 0, [](int64_t, int64_t, int64_t) { return 1; }, x, ref);
      EXPECT_TRUE(cnnx_test::all_close(y.data(), ref.data(), y.size(), 0.f, 0.f));
      const auto dy = cnnx_test::random_vector(y.size(), seed++);
      std::vector<float> dx(x.size(), 123.f), dref;  // garbage: must be overwritten
      cnnx::max_pool2d_backward(s, k.p, x.data(), dy.data(), dx.data());
      ref_max_backward(s, wh, ww, x, dy, dref);
      EXPECT_TRUE(cnnx_test::all_close(dx.data(), dref.data(), dx.size(), 1e-5f, 1e-6f));
    }
  }
}

TEST_P(PoolIsa, AvgForwardAndBackwardMatchNaiveLoops) {
  cnnx_test::IsaScope scope(GetParam());
  uint32_t seed = 100;
  for (const Case& k : kCases) {
    for (bool include_pad : {true, false}) {
      const PoolShape& s = k.s;
      const auto x = cnnx_test::random_vector(s.n * s.h * s.w * s.c, seed++);
      int64_t oh, ow;
      cnnx::pool2d_check(s, k.p, &oh, &ow);
      const Win wh = strided_windows(s.h, k.p.kernel_h, k.p.stride_h, k.p.pad_top, k.p.pad_bottom);
      const Win ww = strided_windows(s.w, k.p.kernel_w, k.p.stride_w, k.p.pad_left, k.p.pad_right);
      const int64_t full = k.p.kernel_h * k.p.kernel_w;
      auto div = [&](int64_t, int64_t, int64_t count) { return include_pad ? full : count; };
      std::vector<float> y(s.n * oh * ow * s.c), ref;
      cnnx::avg_pool2d_forward(s, k.p, include_pad, x.data(), y.data());
      ref_forward(s, wh, ww, 1, div, x, ref);
      EXPECT_TRUE(cnnx_test::all_close(y.data(), ref.data(), y.size(), 1e-5f, 1e-6f));
      const auto dy = cnnx_test::random_vector(y.size(), seed++);
      std::vector<float> dx(x.size(), 123.f), dref;
      cnnx::avg_pool2d_backward(s, k.p, include_pad, dy.data(), dx.data());
      ref_avg_backward(s, wh, ww, div, dy, dref);
      EXPECT_TRUE(cnnx_test::all_close(dx.data(), dref.data(), dx.size(), 1e-5f, 1e-6f));
    }
  }
}

TEST_P(PoolIsa, AdaptiveAndGlobalMatchNaiveLoops) {
  cnnx_test::IsaScope scope(GetParam());
  uint32_t seed = 200;
  const int64_t sizes[][4] = {
      {10, 9, 3, 4}, {56, 56, 7, 7}, {3, 4, 5, 7}, {7, 5, 7, 1}, {5, 11, 2, 13}};
  for (const auto& z : sizes)
    for (int64_t channels : {21, 64}) {
      const PoolShape s{2, z[0], z[1], channels};
      const int64_t oh = z[2], ow = z[3];
      const auto x = tied_vector(s.n * s.h * s.w * s.c, seed++);
      const Win wh = adaptive_windows(s.h, oh), ww = adaptive_windows(s.w, ow);
      auto div = [](int64_t, int64_t, int64_t count) { return count; };
      std::vector<float> y(s.n * oh * ow * s.c), ref;
      cnnx::adaptive_avg_pool2d_forward(s, oh, ow, x.data(), y.data());
      ref_forward(s, wh, ww, 1, div, x, ref);
      EXPECT_TRUE(cnnx_test::all_close(y.data(), ref.data(), y.size(), 1e-5f, 1e-6f));
      cnnx::adaptive_max_pool2d_forward(s, oh, ow, x.data(), y.data());
      ref_forward(s, wh, ww, 0, div, x, ref);
      EXPECT_TRUE(cnnx_test::all_close(y.data(), ref.data(), y.size(), 0.f, 0.f));
      const auto dy = cnnx_test::random_vector(y.size(), seed++);
      std::vector<float> dx(x.size(), 7.f), dref;
      cnnx::adaptive_avg_pool2d_backward(s, oh, ow, dy.data(), dx.data());
      ref_avg_backward(s, wh, ww, div, dy, dref);
      EXPECT_TRUE(cnnx_test::all_close(dx.data(), dref.data(), dx.size(), 1e-5f, 1e-6f));
      cnnx::adaptive_max_pool2d_backward(s, oh, ow, x.data(), dy.data(), dx.data());
      ref_max_backward(s, wh, ww, x, dy, dref);
      EXPECT_TRUE(cnnx_test::all_close(dx.data(), dref.data(), dx.size(), 1e-5f, 1e-6f));
    }
  const PoolShape s{3, 5, 7, 70};
  const auto x = cnnx_test::random_vector(s.n * s.h * s.w * s.c, 9);
  std::vector<float> y(s.n * s.c), dx(x.size());
  cnnx::global_avg_pool2d_forward(s, x.data(), y.data());
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t c = 0; c < s.c; ++c) {
      double acc = 0;
      for (int64_t h = 0; h < s.h; ++h)
        for (int64_t w = 0; w < s.w; ++w) acc += x[at(s, b, h, w, c)];
      EXPECT_NEAR(y[b * s.c + c], acc / 35, 1e-5);
    }
  cnnx::global_avg_pool2d_backward(s, y.data(), dx.data());
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t q = 0; q < s.h * s.w; ++q)
      for (int64_t c = 0; c < s.c; ++c)
        ASSERT_FLOAT_EQ(dx[(b * s.h * s.w + q) * s.c + c], y[b * s.c + c] / 35.f);
}

TEST_P(PoolIsa, MaxPoolNaNPropagatesAndPaddingNeverWins) {
  cnnx_test::IsaScope scope(GetParam());
  const PoolShape s{1, 4, 4, 37};
  std::vector<float> x(s.h * s.w * s.c, -5.f);
  x[at(s, 0, 1, 0, 36)] = NAN;
  const Pool2dParams p{3, 3, 1, 1, 1, 1, 1, 1};
  std::vector<float> y(s.h * s.w * s.c);
  cnnx::max_pool2d_forward(s, p, x.data(), y.data());
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t w = 0; w < 4; ++w)
      for (int64_t c = 0; c < s.c; ++c) {
        const float v = y[at(s, 0, h, w, c)];
        if (c == 36 && h <= 2 && w <= 1)
          EXPECT_TRUE(std::isnan(v)) << h << "," << w;
        else
          EXPECT_EQ(v, -5.f) << h << "," << w << "," << c;
      }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, PoolIsa, ::testing::ValuesIn(cnnx_test::supported_isas()),
                         [](const ::testing::TestParamInfo<cnnx::Isa>& info) {
                           return std::string(cnnx::isa_name(info.param));
                         });

// Work large enough to use several threads; batch 1 makes the overlapping
// max backward split channels. Results must not depend on the thread count.
TEST(PoolThreads, ResultsDoNotDependOnThreadCount) {
  const int saved = cnnx::get_num_threads();
  const PoolShape s{1, 48, 40, 48};
  const auto x = tied_vector(s.h * s.w * s.c, 5);
  const Pool2dParams overlap{3, 3, 1, 1, 1, 1, 1, 1}, disjoint{2, 2, 2, 2, 0, 0, 0, 0};
  for (const Pool2dParams& p : {overlap, disjoint}) {
    int64_t oh, ow;
    cnnx::pool2d_check(s, p, &oh, &ow);
    const auto dy = cnnx_test::random_vector(oh * ow * s.c, 6);
    std::vector<float> y1(dy.size()), y2(dy.size()), d1(x.size()), d2(x.size()), a1(x.size()),
        a2(x.size());
    cnnx::set_num_threads(1);
    cnnx::max_pool2d_forward(s, p, x.data(), y1.data());
    cnnx::max_pool2d_backward(s, p, x.data(), dy.data(), d1.data());
    cnnx::avg_pool2d_backward(s, p, true, dy.data(), a1.data());
    cnnx::set_num_threads(2);
    cnnx::max_pool2d_forward(s, p, x.data(), y2.data());
    cnnx::max_pool2d_backward(s, p, x.data(), dy.data(), d2.data());
    cnnx::avg_pool2d_backward(s, p, true, dy.data(), a2.data());
    EXPECT_EQ(y1, y2);
    EXPECT_EQ(d1, d2);
    EXPECT_EQ(a1, a2);
  }
  cnnx::set_num_threads(saved);
}

TEST(PoolArgs, BadArgumentsThrowBeforeTouchingMemory) {
  const PoolShape s{1, 4, 4, 2};
  int64_t oh, ow;
  EXPECT_THROW(cnnx::pool2d_check(s, {5, 5, 1, 1, 0, 0, 0, 0}, &oh, &ow), std::invalid_argument);
  EXPECT_THROW(cnnx::pool2d_check(s, {0, 2, 1, 1, 0, 0, 0, 0}, &oh, &ow), std::invalid_argument);
  EXPECT_THROW(cnnx::pool2d_check(s, {2, 2, 0, 1, 0, 0, 0, 0}, &oh, &ow), std::invalid_argument);
  EXPECT_THROW(cnnx::pool2d_check(s, {2, 2, 1, 1, 2, 0, 0, 0}, &oh, &ow), std::invalid_argument);
  EXPECT_THROW(cnnx::pool2d_check(s, {2, 2, 1, 1, 0, 0, -1, 0}, &oh, &ow), std::invalid_argument);
  EXPECT_THROW(cnnx::pool2d_check({1, 0, 4, 2}, {1, 1, 1, 1, 0, 0, 0, 0}, &oh, &ow),
               std::invalid_argument);
  EXPECT_THROW(cnnx::max_pool2d_forward(s, {5, 5, 1, 1, 0, 0, 0, 0}, nullptr, nullptr),
               std::invalid_argument);
  EXPECT_THROW(cnnx::adaptive_avg_pool2d_forward(s, 0, 2, nullptr, nullptr), std::invalid_argument);
  EXPECT_NO_THROW(cnnx::pool2d_check(s, {3, 3, 2, 2, 1, 1, 1, 1}, &oh, &ow));
  EXPECT_EQ(oh, 2);
  EXPECT_EQ(ow, 2);
  EXPECT_EQ(cnnx::pool_output_size(32, 2, 2, 0, 0), 16);
  EXPECT_EQ(cnnx::pool_output_size(7, 3, 2, 1, 1), 4);
  EXPECT_EQ(cnnx::pool_output_size(2, 3, 1, 0, 0), -1);
}

TEST(PoolArgs, AdaptiveWindowsAreTheExactRule) {
  for (int64_t n = 1; n < 70; ++n)
    for (int64_t out = 1; out < 80; ++out)
      for (int64_t i = 0; i < out; ++i) {
        int64_t a, b;
        cnnx::adaptive_window(i, n, out, &a, &b);
        ASSERT_EQ(a, static_cast<int64_t>(std::floor(double(i) * n / out)));
        ASSERT_EQ(b, static_cast<int64_t>(std::ceil(double(i + 1) * n / out)));
        ASSERT_LT(a, b);
        if (n % out == 0) {  // the course's formula
          const int64_t stride = n / out, kernel = n - (out - 1) * stride;
          ASSERT_EQ(a, i * stride);
          ASSERT_EQ(b, i * stride + kernel);
        }
      }
}

}  // namespace
