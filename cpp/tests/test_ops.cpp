// Kernels of cpp/src/ops against naive loops, at every ISA level the CPU runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cnnx/activation.h"
#include "cnnx/dense.h"
#include "cnnx/dropout.h"
#include "cnnx/loss.h"
#include "cnnx/norm.h"
#include "cnnx/optim.h"
#include "cnnx/threading.h"
#include "test_util.h"

using cnnx_test::all_close;
using cnnx_test::IsaScope;
using cnnx_test::random_vector;
using cnnx_test::supported_isas;

TEST(OpsDense, ForwardBackwardMatchNaive) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    const int64_t N = 37, in = 53, out = 29;
    auto x = random_vector(N * in, 1), w = random_vector(in * out, 2), b = random_vector(out, 3);
    auto dy = random_vector(N * out, 4);
    std::vector<float> y(N * out), ref(N * out);
    cnnx::dense_forward(x.data(), w.data(), b.data(), y.data(), N, in, out, cnnx::Activation::relu);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < out; ++j) {
        double s = b[j];
        for (int64_t k = 0; k < in; ++k) s += double(x[i * in + k]) * w[k * out + j];
        ref[i * out + j] = float(std::max(s, 0.0));
      }
    EXPECT_TRUE(all_close(y.data(), ref.data(), y.size(), 1e-4f, 1e-4f));

    std::vector<float> dx(N * in), dw(in * out), db(out);
    cnnx::dense_backward(dy.data(), x.data(), w.data(), dx.data(), dw.data(), db.data(), N, in,
                         out);
    std::vector<float> rdx(N * in), rdw(in * out), rdb(out);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t k = 0; k < in; ++k) {
        double s = 0;
        for (int64_t j = 0; j < out; ++j) s += double(dy[i * out + j]) * w[k * out + j];
        rdx[i * in + k] = float(s);
      }
    for (int64_t k = 0; k < in; ++k)
      for (int64_t j = 0; j < out; ++j) {
        double s = 0;
        for (int64_t i = 0; i < N; ++i) s += double(x[i * in + k]) * dy[i * out + j];
        rdw[k * out + j] = float(s);
      }
    for (int64_t j = 0; j < out; ++j) {
      double s = 0;
      for (int64_t i = 0; i < N; ++i) s += dy[i * out + j];
      rdb[j] = float(s);
    }
    EXPECT_TRUE(all_close(dx.data(), rdx.data(), dx.size(), 1e-4f, 1e-4f));
    EXPECT_TRUE(all_close(dw.data(), rdw.data(), dw.size(), 1e-4f, 1e-4f));
    EXPECT_TRUE(all_close(db.data(), rdb.data(), db.size(), 1e-4f, 1e-4f));
  }
}

TEST(OpsActivation, ElementwiseMatchNaive) {
  const int64_t n = 300001;  // large enough to be split over threads
  auto x = random_vector(n, 5, -6.f, 6.f), dy = random_vector(n, 6);
  std::vector<float> y(n), dx(n), ref(n);
  cnnx::relu_forward(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = x[i] > 0 ? x[i] : 0;
  EXPECT_TRUE(all_close(y.data(), ref.data(), n, 0, 0));
  cnnx::relu_backward(dy.data(), x.data(), dx.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = x[i] > 0 ? dy[i] : 0;
  EXPECT_TRUE(all_close(dx.data(), ref.data(), n, 0, 0));
  cnnx::leaky_relu_forward(x.data(), y.data(), n, 0.1f);
  for (int64_t i = 0; i < n; ++i) ref[i] = x[i] > 0 ? x[i] : 0.1f * x[i];
  EXPECT_TRUE(all_close(y.data(), ref.data(), n, 1e-6f, 0));
  cnnx::sigmoid_forward(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = float(1.0 / (1.0 + std::exp(-double(x[i]))));
  EXPECT_TRUE(all_close(y.data(), ref.data(), n, 1e-5f, 1e-7f));
  cnnx::tanh_forward(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = float(std::tanh(double(x[i])));
  EXPECT_TRUE(all_close(y.data(), ref.data(), n, 1e-5f, 1e-6f));
  cnnx::tanh_backward(dy.data(), y.data(), dx.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = dy[i] * (1 - y[i] * y[i]);
  EXPECT_TRUE(all_close(dx.data(), ref.data(), n, 1e-6f, 1e-7f));
}

TEST(OpsActivation, SoftmaxAlongMiddleAxis) {
  const int64_t outer = 3, K = 7, inner = 5;
  auto x = random_vector(outer * K * inner, 7, -20.f, 20.f);
  std::vector<float> y(x.size()), ref(x.size());
  cnnx::softmax_forward(x.data(), y.data(), outer, K, inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double m = -1e30, s = 0;
      for (int64_t k = 0; k < K; ++k) m = std::max(m, double(x[(o * K + k) * inner + i]));
      for (int64_t k = 0; k < K; ++k) s += std::exp(x[(o * K + k) * inner + i] - m);
      for (int64_t k = 0; k < K; ++k)
        ref[(o * K + k) * inner + i] = float(std::exp(x[(o * K + k) * inner + i] - m) / s);
    }
  EXPECT_TRUE(all_close(y.data(), ref.data(), y.size(), 1e-5f, 1e-7f));
}

TEST(OpsLoss, SoftmaxCrossEntropyMatchesNaiveAndIsStable) {
  const int64_t N = 9, K = 11;
  auto x = random_vector(N * K, 8, -5.f, 5.f);
  x[0] = 1e4f;
  x[K + 3] = -1e4f;
  std::vector<int64_t> labels(N);
  for (int64_t i = 0; i < N; ++i) labels[i] = (i * 7) % K;
  std::vector<float> g(N * K), rg(N * K);
  const double loss = cnnx::softmax_cross_entropy(x.data(), labels.data(), N, K, g.data());
  double ref = 0;
  for (int64_t i = 0; i < N; ++i) {
    double m = -1e30, s = 0;
    for (int64_t k = 0; k < K; ++k) m = std::max(m, double(x[i * K + k]));
    for (int64_t k = 0; k < K; ++k) s += std::exp(x[i * K + k] - m);
    ref += m + std::log(s) - x[i * K + labels[i]];
    for (int64_t k = 0; k < K; ++k)
      rg[i * K + k] = float((std::exp(x[i * K + k] - m) / s - (k == labels[i])) / N);
  }
  EXPECT_NEAR(loss, ref / N, 1e-4 * std::fabs(ref / N));
  EXPECT_TRUE(all_close(g.data(), rg.data(), g.size(), 1e-4f, 1e-7f));
  labels[2] = K;  // out of range: NaN, nothing written
  EXPECT_TRUE(std::isnan(cnnx::softmax_cross_entropy(x.data(), labels.data(), N, K, nullptr)));
}

TEST(OpsBatchNorm, TrainForwardBackwardMatchNaive) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t C : {1, 16, 64, 83}) {
      const int64_t rows = 517;
      auto x = random_vector(rows * C, 9, 2.f, 5.f), dy = random_vector(rows * C, 10);
      auto gamma = random_vector(C, 11), beta = random_vector(C, 12);
      std::vector<float> y(rows * C), mean(C), inv(C), rm(C, 0.f), rv(C, 1.f);
      cnnx::batch_norm_forward_train(x.data(), gamma.data(), beta.data(), y.data(), rows, C, 1e-5f,
                                     0.1f, rm.data(), rv.data(), mean.data(), inv.data());
      std::vector<float> ry(rows * C), rdx(rows * C), rdg(C), rdb(C), rrm(C), rrv(C);
      for (int64_t c = 0; c < C; ++c) {
        double s = 0, ss = 0;
        for (int64_t r = 0; r < rows; ++r) s += x[r * C + c];
        const double mu = s / rows;
        for (int64_t r = 0; r < rows; ++r) ss += (x[r * C + c] - mu) * (x[r * C + c] - mu);
        const double var = ss / rows, is = 1 / std::sqrt(var + 1e-5);
        rrm[c] = float(0.1 * mu);
        rrv[c] = float(0.9 + 0.1 * ss / (rows - 1));
        double sd = 0, sdx = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const double xh = (x[r * C + c] - mu) * is;
          ry[r * C + c] = float(xh * gamma[c] + beta[c]);
          sd += dy[r * C + c];
          sdx += dy[r * C + c] * xh;
        }
        rdb[c] = float(sd);
        rdg[c] = float(sdx);
        for (int64_t r = 0; r < rows; ++r) {
          const double xh = (x[r * C + c] - mu) * is;
          rdx[r * C + c] = float(gamma[c] * is / rows * (rows * dy[r * C + c] - sd - xh * sdx));
        }
      }
      EXPECT_TRUE(all_close(y.data(), ry.data(), y.size(), 1e-4f, 1e-4f)) << "C=" << C;
      EXPECT_TRUE(all_close(rm.data(), rrm.data(), C, 1e-5f, 1e-6f));
      EXPECT_TRUE(all_close(rv.data(), rrv.data(), C, 1e-5f, 1e-6f));
      std::vector<float> dx(rows * C), dg(C), db(C);
      cnnx::batch_norm_backward(dy.data(), x.data(), gamma.data(), mean.data(), inv.data(),
                                dx.data(), dg.data(), db.data(), rows, C, true);
      EXPECT_TRUE(all_close(dx.data(), rdx.data(), dx.size(), 1e-3f, 1e-4f)) << "C=" << C;
      EXPECT_TRUE(all_close(dg.data(), rdg.data(), C, 1e-4f, 1e-3f));
      EXPECT_TRUE(all_close(db.data(), rdb.data(), C, 1e-4f, 1e-3f));
    }
  }
}

TEST(OpsDropout, MaskIndependentOfThreadsAndKeepsRate) {
  const int64_t n = 1 << 20;
  std::vector<float> x(n, 1.f), y1(n), y2(n);
  std::vector<uint8_t> m1(n), m2(n);
  const int saved = cnnx::get_num_threads();
  cnnx::set_num_threads(1);
  cnnx::dropout_forward(x.data(), y1.data(), m1.data(), n, 0.3f, 42);
  cnnx::set_num_threads(2);
  cnnx::dropout_forward(x.data(), y2.data(), m2.data(), n, 0.3f, 42);
  cnnx::set_num_threads(saved);
  EXPECT_EQ(m1, m2);
  EXPECT_TRUE(all_close(y1.data(), y2.data(), n, 0, 0));
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    kept += m1[i];
    ASSERT_EQ(y1[i], m1[i] ? 1.f / 0.7f : 0.f);
  }
  EXPECT_NEAR(double(kept) / n, 0.7, 5 * std::sqrt(0.21 / n));
}

TEST(OpsOptim, AdamAndSgdMatchScalarReference) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (bool decoupled : {false, true}) {
      const int64_t n = 1037;
      auto p = random_vector(n, 13), g = random_vector(n, 14), m = random_vector(n, 15);
      auto v = random_vector(n, 16, 0.f, 0.1f);
      std::vector<float> rp = p, rm = m, rv = v;
      const int64_t step = 4;
      const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
      for (int64_t i = 0; i < n; ++i) {
        double pi = rp[i], gi = g[i];
        if (decoupled)
          pi *= 1 - lr * wd;
        else
          gi += wd * pi;
        const double mi = b1 * rm[i] + (1 - b1) * gi, vi = b2 * rv[i] + (1 - b2) * gi * gi;
        pi -= lr / (1 - std::pow(b1, step)) * mi /
              (std::sqrt(vi) / std::sqrt(1 - std::pow(b2, step)) + eps);
        rp[i] = float(pi);
        rm[i] = float(mi);
        rv[i] = float(vi);
      }
      cnnx::adam_update(p.data(), g.data(), m.data(), v.data(), n, step, lr, b1, b2, eps, wd,
                        decoupled);
      EXPECT_TRUE(all_close(p.data(), rp.data(), n, 1e-5f, 1e-6f));
      EXPECT_TRUE(all_close(m.data(), rm.data(), n, 1e-5f, 1e-7f));
      EXPECT_TRUE(all_close(v.data(), rv.data(), n, 1e-5f, 1e-9f));
    }
  }
  const int64_t n = 999;
  auto p = random_vector(n, 17), g = random_vector(n, 18), vel = random_vector(n, 19);
  std::vector<float> rp = p, rv = vel;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] + 0.01f * rp[i];
    rv[i] = 0.9f * rv[i] + gi;
    rp[i] -= 0.1f * (gi + 0.9f * rv[i]);
  }
  cnnx::sgd_update(p.data(), g.data(), vel.data(), n, 0.1f, 0.9f, true, 0.01f);
  EXPECT_TRUE(all_close(p.data(), rp.data(), n, 1e-5f, 1e-6f));
  EXPECT_TRUE(all_close(vel.data(), rv.data(), n, 1e-5f, 1e-6f));
}
