// Local response, group and layer normalisation (cnnx/norm.h) against naive
// double-precision loops, at every ISA level the CPU runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cnnx/norm.h"
#include "test_util.h"

using cnnx_test::all_close;
using cnnx_test::IsaScope;
using cnnx_test::random_vector;
using cnnx_test::supported_isas;

TEST(Lrn, ForwardAndBackwardMatchNaive) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t size : {1, 3, 5, 9}) {
      for (int64_t C : {3, 16, 37}) {
        const int64_t rows = 29, n = rows * C, h = size / 2;
        const float alpha = 0.4f, beta = 0.75f, bias = 1.5f;
        auto x = random_vector(n, 31, -2.f, 2.f), dy = random_vector(n, 32);
        std::vector<float> y(n), dx(n), ry(n), rdx(n);
        cnnx::lrn_forward(x.data(), y.data(), rows, C, size, alpha, beta, bias);
        cnnx::lrn_backward(dy.data(), x.data(), dx.data(), rows, C, size, alpha, beta, bias);
        for (int64_t r = 0; r < rows; ++r) {
          const float* xr = x.data() + r * C;
          const float* gr = dy.data() + r * C;
          std::vector<double> s(C);
          for (int64_t c = 0; c < C; ++c) {
            double q = 0;
            for (int64_t j = std::max<int64_t>(0, c - h); j <= std::min(C - 1, c + h); ++j)
              q += double(xr[j]) * xr[j];
            s[c] = bias + double(alpha) / size * q;
            ry[r * C + c] = float(xr[c] * std::pow(s[c], -double(beta)));
          }
          for (int64_t c = 0; c < C; ++c) {
            double t = 0;
            for (int64_t j = std::max<int64_t>(0, c - h); j <= std::min(C - 1, c + h); ++j)
              t += gr[j] * double(xr[j]) * std::pow(s[j], -double(beta) - 1);
            rdx[r * C + c] = float(gr[c] * std::pow(s[c], -double(beta)) -
                                   2.0 * alpha * beta / size * xr[c] * t);
          }
        }
        EXPECT_TRUE(all_close(y.data(), ry.data(), n, 1e-5f, 1e-6f)) << size << " " << C;
        EXPECT_TRUE(all_close(dx.data(), rdx.data(), n, 1e-4f, 1e-5f)) << size << " " << C;
      }
    }
  }
  std::vector<float> a(8), b(8);
  EXPECT_THROW(cnnx::lrn_forward(a.data(), b.data(), 1, 8, 4, 1e-4f, 0.75f, 1.f),
               std::invalid_argument);
  EXPECT_THROW(cnnx::lrn_forward(a.data(), b.data(), 1, 8, 0, 1e-4f, 0.75f, 1.f),
               std::invalid_argument);
}

TEST(GroupNorm, ForwardAndBackwardMatchNaive) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t G : {1, 2, 8}) {
      const int64_t N = 3, P = 45, C = 16, count = P * C, n = N * count, cg = C / G;
      auto x = random_vector(n, 41, -3.f, 5.f), dy = random_vector(n, 42);
      auto gamma = random_vector(C, 43, 0.5f, 1.5f), beta = random_vector(C, 44);
      std::vector<float> y(n), dx(n), dg(C), db(C), ry(n), rdx(n), rdg(C, 0.f), rdb(C, 0.f);
      cnnx::group_norm_forward(x.data(), gamma.data(), beta.data(), y.data(), N, count, C, G, 1e-5f,
                               nullptr, nullptr);
      cnnx::group_norm_backward(dy.data(), x.data(), gamma.data(), nullptr, nullptr, dx.data(),
                                dg.data(), db.data(), N, count, C, G, 1e-5f);
      std::vector<double> sg(C, 0), sb(C, 0);
      for (int64_t i = 0; i < N; ++i)
        for (int64_t g = 0; g < G; ++g) {
          double m = 0, v = 0;
          const double M = double(P * cg);
          for (int64_t p = 0; p < P; ++p)
            for (int64_t c = g * cg; c < (g + 1) * cg; ++c) m += x[i * count + p * C + c];
          m /= M;
          for (int64_t p = 0; p < P; ++p)
            for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
              const double d = x[i * count + p * C + c] - m;
              v += d * d;
            }
          const double inv = 1.0 / std::sqrt(v / M + 1e-5);
          double A = 0, B = 0;
          for (int64_t p = 0; p < P; ++p)
            for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
              const int64_t j = i * count + p * C + c;
              const double xh = (x[j] - m) * inv;
              ry[j] = float(xh * gamma[c] + beta[c]);
              A += gamma[c] * double(dy[j]);
              B += gamma[c] * double(dy[j]) * xh;
              sg[c] += dy[j] * xh;
              sb[c] += dy[j];
            }
          for (int64_t p = 0; p < P; ++p)
            for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
              const int64_t j = i * count + p * C + c;
              const double xh = (x[j] - m) * inv;
              rdx[j] = float(inv * (gamma[c] * dy[j] - A / M - xh * B / M));
            }
        }
      for (int64_t c = 0; c < C; ++c) {
        rdg[c] = float(sg[c]);
        rdb[c] = float(sb[c]);
      }
      EXPECT_TRUE(all_close(y.data(), ry.data(), n, 1e-4f, 1e-5f)) << G;
      EXPECT_TRUE(all_close(dx.data(), rdx.data(), n, 1e-3f, 1e-4f)) << G;
      EXPECT_TRUE(all_close(dg.data(), rdg.data(), C, 1e-4f, 1e-4f)) << G;
      EXPECT_TRUE(all_close(db.data(), rdb.data(), C, 1e-4f, 1e-4f)) << G;
    }
  }
  std::vector<float> a(12), b(12);
  EXPECT_THROW(cnnx::group_norm_forward(a.data(), nullptr, nullptr, b.data(), 1, 12, 6, 4, 1e-5f,
                                        nullptr, nullptr),
               std::invalid_argument);
}

TEST(LayerNorm, ForwardAndBackwardMatchNaive) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t C : {1, 7, 16, 96, 131}) {
      const int64_t rows = 77, n = rows * C;
      auto x = random_vector(n, 51, -4.f, 2.f), dy = random_vector(n, 52);
      auto gamma = random_vector(C, 53, 0.5f, 1.5f), beta = random_vector(C, 54);
      std::vector<float> y(n), dx(n), dg(C), db(C), ry(n), rdx(n), rdg(C), rdb(C);
      cnnx::layer_norm_forward(x.data(), gamma.data(), beta.data(), y.data(), rows, C, 1e-5f,
                               nullptr, nullptr);
      cnnx::layer_norm_backward(dy.data(), x.data(), gamma.data(), nullptr, nullptr, dx.data(),
                                dg.data(), db.data(), rows, C, 1e-5f);
      std::vector<double> sg(C, 0), sb(C, 0);
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x.data() + r * C;
        const float* gr = dy.data() + r * C;
        double m = 0, v = 0, A = 0, B = 0;
        for (int64_t c = 0; c < C; ++c) m += xr[c];
        m /= C;
        for (int64_t c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
        const double inv = 1.0 / std::sqrt(v / C + 1e-5);
        for (int64_t c = 0; c < C; ++c) {
          const double xh = (xr[c] - m) * inv;
          ry[r * C + c] = float(xh * gamma[c] + beta[c]);
          A += gamma[c] * double(gr[c]);
          B += gamma[c] * double(gr[c]) * xh;
          sg[c] += gr[c] * xh;
          sb[c] += gr[c];
        }
        for (int64_t c = 0; c < C; ++c) {
          const double xh = (xr[c] - m) * inv;
          rdx[r * C + c] = float(inv * (gamma[c] * gr[c] - A / C - xh * B / C));
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        rdg[c] = float(sg[c]);
        rdb[c] = float(sb[c]);
      }
      EXPECT_TRUE(all_close(y.data(), ry.data(), n, 1e-4f, 1e-5f)) << C;
      EXPECT_TRUE(all_close(dx.data(), rdx.data(), n, 1e-3f, 1e-4f)) << C;
      EXPECT_TRUE(all_close(dg.data(), rdg.data(), C, 1e-4f, 1e-4f)) << C;
      EXPECT_TRUE(all_close(db.data(), rdb.data(), C, 1e-4f, 1e-4f)) << C;
    }
  }
}
