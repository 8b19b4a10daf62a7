// Max pooling with dilation and ceil mode, average pooling with ceil mode
// (cnnx/pool.h), against naive loops with PyTorch's rules, at every ISA level.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cnnx/pool.h"
#include "test_util.h"

using cnnx::Pool2dParams;
using cnnx::PoolShape;
using cnnx_test::all_close;
using cnnx_test::IsaScope;
using cnnx_test::random_vector;
using cnnx_test::supported_isas;

namespace {

struct Case {
  int64_t h, w, c, k, s, p, d;
  bool ceil;
};

Pool2dParams params(const Case& t) {
  Pool2dParams p{t.k, t.k, t.s, t.s, t.p, t.p, t.p, t.p};
  p.dilation_h = p.dilation_w = t.d;
  p.ceil_mode = t.ceil;
  return p;
}

}  // namespace

TEST(PoolOptions, OutputSizeRule) {
  EXPECT_EQ(cnnx::pool_output_size(7, 2, 2, 0, 0, 1, true), 4);
  EXPECT_EQ(cnnx::pool_output_size(7, 2, 2, 0, 0, 1, false), 3);
  EXPECT_EQ(cnnx::pool_output_size(6, 2, 2, 1, 1, 1, true), 4);   // 3.5 -> 4 + 1 = 5, dropped to 4
  EXPECT_EQ(cnnx::pool_output_size(9, 3, 1, 0, 0, 2, false), 5);  // span 5
  EXPECT_EQ(cnnx::pool_output_size(4, 3, 1, 0, 0, 2, false), -1);
  EXPECT_EQ(cnnx::pool_output_size(112, 3, 2, 0, 0, 1, true), 56);  // GoogLeNet
}

TEST(PoolOptions, MaxMatchesNaive) {
  const Case cases[] = {{9, 9, 8, 3, 1, 0, 2, false},   {10, 11, 16, 3, 2, 1, 2, true},
                        {7, 7, 19, 2, 2, 0, 1, true},   {12, 12, 5, 2, 1, 1, 3, false},
                        {15, 15, 32, 3, 2, 1, 1, true}, {5, 5, 3, 3, 2, 1, 2, true}};
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (const Case& t : cases) {
      const PoolShape s{2, t.h, t.w, t.c};
      const Pool2dParams p = params(t);
      int64_t oh, ow;
      cnnx::pool2d_check(s, p, &oh, &ow);
      const int64_t nx = s.n * t.h * t.w * t.c, ny = s.n * oh * ow * t.c;
      auto x = random_vector(nx, 61), dy = random_vector(ny, 62);
      std::vector<float> y(ny), dx(nx), ry(ny), rdx(nx, 0.f);
      cnnx::max_pool2d_forward(s, p, x.data(), y.data());
      cnnx::max_pool2d_backward(s, p, x.data(), dy.data(), dx.data());
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j)
            for (int64_t c = 0; c < t.c; ++c) {
              float m = -INFINITY;
              int64_t at = -1;
              for (int64_t a = 0; a < t.k; ++a)
                for (int64_t b = 0; b < t.k; ++b) {
                  const int64_t r = i * t.s - t.p + a * t.d, q = j * t.s - t.p + b * t.d;
                  if (r < 0 || r >= t.h || q < 0 || q >= t.w) continue;
                  const int64_t idx = ((n * t.h + r) * t.w + q) * t.c + c;
                  if (x[idx] > m) {
                    m = x[idx];
                    at = idx;
                  }
                }
              const int64_t o = ((n * oh + i) * ow + j) * t.c + c;
              ry[o] = m;
              if (at >= 0) rdx[at] += dy[o];
            }
      EXPECT_TRUE(all_close(y.data(), ry.data(), ny, 0.f, 0.f)) << t.h << " " << t.d;
      EXPECT_TRUE(all_close(dx.data(), rdx.data(), nx, 1e-6f, 1e-6f)) << t.h << " " << t.d;
    }
  }
}

TEST(PoolOptions, AvgCeilModeMatchesNaive) {
  const Case cases[] = {{7, 7, 8, 2, 2, 0, 1, true},
                        {14, 13, 7, 3, 2, 1, 1, true},
                        {11, 9, 20, 3, 3, 1, 1, true},
                        {5, 5, 3, 3, 2, 1, 1, true}};
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (const Case& t : cases)
      for (bool cip : {true, false}) {
        const PoolShape s{2, t.h, t.w, t.c};
        const Pool2dParams p = params(t);
        int64_t oh, ow;
        cnnx::pool2d_check(s, p, &oh, &ow);
        const int64_t nx = s.n * t.h * t.w * t.c, ny = s.n * oh * ow * t.c;
        auto x = random_vector(nx, 71), dy = random_vector(ny, 72);
        std::vector<float> y(ny), dx(nx), ry(ny), rdx(nx, 0.f);
        cnnx::avg_pool2d_forward(s, p, cip, x.data(), y.data());
        cnnx::avg_pool2d_backward(s, p, cip, dy.data(), dx.data());
        for (int64_t n = 0; n < s.n; ++n)
          for (int64_t i = 0; i < oh; ++i)
            for (int64_t j = 0; j < ow; ++j) {
              // PyTorch: the divisor counts the window up to the padded edge
              const int64_t r0 = i * t.s - t.p, q0 = j * t.s - t.p;
              const int64_t r1 = std::min(r0 + t.k, t.h + t.p), q1 = std::min(q0 + t.k, t.w + t.p);
              const int64_t a0 = std::max<int64_t>(r0, 0), a1 = std::min(r1, t.h);
              const int64_t b0 = std::max<int64_t>(q0, 0), b1 = std::min(q1, t.w);
              const double div =
                  cip ? double((r1 - r0) * (q1 - q0)) : double((a1 - a0) * (b1 - b0));
              for (int64_t c = 0; c < t.c; ++c) {
                double sum = 0;
                const int64_t o = ((n * oh + i) * ow + j) * t.c + c;
                for (int64_t r = a0; r < a1; ++r)
                  for (int64_t q = b0; q < b1; ++q) {
                    sum += x[((n * t.h + r) * t.w + q) * t.c + c];
                    rdx[((n * t.h + r) * t.w + q) * t.c + c] += float(dy[o] / div);
                  }
                ry[o] = float(sum / div);
              }
            }
        EXPECT_TRUE(all_close(y.data(), ry.data(), ny, 1e-5f, 1e-6f)) << t.h << " " << cip;
        EXPECT_TRUE(all_close(dx.data(), rdx.data(), nx, 1e-5f, 1e-6f)) << t.h << " " << cip;
      }
  }
}

TEST(PoolOptions, BadDilationThrows) {
  const PoolShape s{1, 8, 8, 1};
  Pool2dParams p{2, 2, 1, 1, 0, 0, 0, 0};
  p.dilation_h = 0;
  int64_t oh, ow;
  EXPECT_THROW(cnnx::pool2d_check(s, p, &oh, &ow), std::invalid_argument);
  p.dilation_h = 8;  // a 9-pixel window
  EXPECT_THROW(cnnx::pool2d_check(s, p, &oh, &ow), std::invalid_argument);
}
