// Elementwise joins and concatenation (cnnx/eltwise.h) against naive loops.
#include <gtest/gtest.h>

#include <vector>

#include "cnnx/eltwise.h"
#include "test_util.h"

namespace {

TEST(Eltwise, ForwardAndBackwardMatchNaive) {
  const int64_t n = 1000;
  const auto a = cnnx_test::random_vector(n, 1), b = cnnx_test::random_vector(n, 2),
             c = cnnx_test::random_vector(n, 3), dy = cnnx_test::random_vector(n, 4);
  const float* xs[] = {a.data(), b.data(), c.data()};
  for (cnnx::EltwiseKind k : {cnnx::EltwiseKind::add, cnnx::EltwiseKind::sub,
                              cnnx::EltwiseKind::mul, cnnx::EltwiseKind::avg}) {
    const int m = k == cnnx::EltwiseKind::sub ? 2 : 3;
    std::vector<float> y(n), d0(n, 1.0f), d1(n), d2(n);
    cnnx::eltwise_forward(k, xs, m, y.data(), n);
    float* dxs[] = {d0.data(), d1.data(), d2.data()};
    const bool acc[] = {true, false, false};  // d0 starts at 1 and accumulates
    cnnx::eltwise_backward(k, xs, m, dy.data(), dxs, acc, n);
    for (int64_t i = 0; i < n; ++i) {
      float want, g[3];
      switch (k) {
        case cnnx::EltwiseKind::add:
          want = a[i] + b[i] + c[i];
          g[0] = g[1] = g[2] = dy[i];
          break;
        case cnnx::EltwiseKind::sub:
          want = a[i] - b[i];
          g[0] = dy[i];
          g[1] = -dy[i];
          break;
        case cnnx::EltwiseKind::mul:
          want = a[i] * b[i] * c[i];
          g[0] = dy[i] * b[i] * c[i];
          g[1] = dy[i] * a[i] * c[i];
          g[2] = dy[i] * a[i] * b[i];
          break;
        default: want = (a[i] + b[i] + c[i]) / 3.0f; g[0] = g[1] = g[2] = dy[i] / 3.0f;
      }
      ASSERT_NEAR(y[i], want, 1e-5f);
      ASSERT_NEAR(d0[i], 1.0f + g[0], 1e-5f);
      ASSERT_NEAR(d1[i], g[1], 1e-5f);
      if (m == 3) ASSERT_NEAR(d2[i], g[2], 1e-5f);
    }
  }
}

TEST(Concat, ForwardIsASplitOfBackward) {
  const int64_t outer = 7;
  const int64_t inner[] = {3, 1, 5};
  const auto a = cnnx_test::random_vector(outer * 3, 5), b = cnnx_test::random_vector(outer, 6),
             c = cnnx_test::random_vector(outer * 5, 7);
  const float* xs[] = {a.data(), b.data(), c.data()};
  std::vector<float> y(outer * 9);
  cnnx::concat_forward(xs, 3, inner, outer, y.data());
  for (int64_t o = 0; o < outer; ++o) {
    for (int j = 0; j < 3; ++j) EXPECT_EQ(y[o * 9 + j], a[o * 3 + j]);
    EXPECT_EQ(y[o * 9 + 3], b[o]);
    for (int j = 0; j < 5; ++j) EXPECT_EQ(y[o * 9 + 4 + j], c[o * 5 + j]);
  }
  std::vector<float> da(outer * 3), db(outer, 2.0f), dc(outer * 5);
  float* dxs[] = {da.data(), db.data(), dc.data()};
  const bool acc[] = {false, true, false};
  cnnx::concat_backward(y.data(), 3, inner, outer, dxs, acc);
  EXPECT_EQ(da, a);
  for (int64_t o = 0; o < outer; ++o) EXPECT_FLOAT_EQ(db[o], 2.0f + b[o]);
  EXPECT_EQ(dc, c);
}

}  // namespace
