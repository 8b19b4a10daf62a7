// The extra activations (cnnx/activation.h: Pointwise, log-softmax, PReLU)
// against double-precision <cmath> references, at every ISA level the CPU
// runs; tails that are not whole vectors and sizes that split over threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "cnnx/activation.h"
#include "test_util.h"

using cnnx::Pointwise;
using cnnx_test::all_close;
using cnnx_test::IsaScope;
using cnnx_test::random_vector;
using cnnx_test::supported_isas;

namespace {

struct Ref {
  Pointwise f;
  float a, b;
  std::function<double(double)> y, dy;
};

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

std::vector<Ref> refs() {
  const double k = std::sqrt(2.0 / M_PI), c = 0.044715;
  const double sa = 1.6732632423543772, ss = 1.0507009873554805;
  return {
      {Pointwise::elu, 0.7f, 0.f, [](double x) { return x > 0 ? x : 0.7 * std::expm1(x); },
       [](double x) { return x > 0 ? 1.0 : 0.7 * std::exp(x); }},
      {Pointwise::selu, float(sa), float(ss),
       [=](double x) { return ss * (x > 0 ? x : sa * std::expm1(x)); },
       [=](double x) { return ss * (x > 0 ? 1.0 : sa * std::exp(x)); }},
      {Pointwise::gelu, 0.f, 0.f, [](double x) { return x * phi(x); },
       [](double x) { return phi(x) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }},
      {Pointwise::gelu_tanh, 0.f, 0.f,
       [=](double x) { return 0.5 * x * (1 + std::tanh(k * (x + c * x * x * x))); },
       [=](double x) {
         const double t = std::tanh(k * (x + c * x * x * x));
         return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x);
       }},
      {Pointwise::silu, 0.f, 0.f, [](double x) { return x * sig(x); },
       [](double x) { return sig(x) * (1 + x * (1 - sig(x))); }},
      {Pointwise::hardswish, 0.f, 0.f,
       [](double x) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; },
       [](double x) { return x <= -3 ? 0.0
                             : x < 3 ? x / 3 + 0.5
                                     : 1.0; }},
      {Pointwise::hardsigmoid, 0.2f, 0.5f,
       [](double x) { return std::min(std::max(double(0.2f) * x + 0.5, 0.0), 1.0); },
       [](double x) {
         const double z = double(0.2f) * x + 0.5;
         return z > 0 && z < 1 ? double(0.2f) : 0.0;
       }},
      {Pointwise::clip, -1.25f, 0.5f, [](double x) { return std::min(std::max(x, -1.25), 0.5); },
       [](double x) { return x > -1.25 && x < 0.5 ? 1.0 : 0.0; }},
      {Pointwise::softplus, 0.f, 0.f, [](double x) { return std::log1p(std::exp(x)); },
       [](double x) { return sig(x); }},
      {Pointwise::softsign, 0.f, 0.f, [](double x) { return x / (1 + std::fabs(x)); },
       [](double x) { return 1 / ((1 + std::fabs(x)) * (1 + std::fabs(x))); }},
  };
}

}  // namespace

TEST(Pointwise, ForwardAndBackwardMatchDoubleReferences) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t n : {1, 15, 16, 17, 1000, 300001}) {
      auto x = random_vector(n, 7, -12.f, 12.f);
      auto g = random_vector(n, 8);
      x[0] = 0.0f;
      for (const Ref& r : refs()) {
        std::vector<float> y(n), dx(n), ry(n), rdx(n);
        cnnx::pointwise_forward(r.f, x.data(), y.data(), n, r.a, r.b);
        cnnx::pointwise_backward(r.f, g.data(), x.data(), dx.data(), n, r.a, r.b);
        for (int64_t i = 0; i < n; ++i) {
          ry[i] = float(r.y(x[i]));
          rdx[i] = float(g[i] * r.dy(x[i]));
        }
        EXPECT_TRUE(all_close(y.data(), ry.data(), n, 2e-6f, 1e-6f))
            << "isa " << int(isa) << " f " << int(r.f) << " n " << n;
        EXPECT_TRUE(all_close(dx.data(), rdx.data(), n, 1e-5f, 2e-6f))
            << "isa " << int(isa) << " f " << int(r.f) << " n " << n;
      }
    }
  }
}

TEST(Pointwise, ExtremesAndNaN) {
  const float v[] = {-1e30f, -200.f, -88.f, -20.f, 20.f, 88.f, 200.f, 1e30f, NAN};
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (const Ref& r : refs()) {
      float y[9];
      cnnx::pointwise_forward(r.f, v, y, 9, r.a, r.b);
      EXPECT_TRUE(std::isnan(y[8])) << int(r.f);
      for (int i = 0; i < 8; ++i) {
        const double ref = r.y(v[i]);
        if (std::isfinite(ref))
          EXPECT_NEAR(y[i], ref, 1e-6 + 1e-6 * std::fabs(ref)) << int(r.f) << " at " << v[i];
      }
    }
  }
}

TEST(Pointwise, InPlaceAndUnknownKind) {
  auto x = random_vector(100, 3, -5.f, 5.f);
  std::vector<float> y(100);
  cnnx::pointwise_forward(Pointwise::gelu, x.data(), y.data(), 100);
  cnnx::pointwise_forward(Pointwise::gelu, x.data(), x.data(), 100);
  EXPECT_TRUE(all_close(x.data(), y.data(), 100, 0.f, 0.f));
  EXPECT_THROW(cnnx::pointwise_forward(static_cast<Pointwise>(99), x.data(), y.data(), 100),
               std::invalid_argument);
}

TEST(LogSoftmax, RowsAndStridedAxesMatchReference) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t inner : {1, 5}) {
      const int64_t outer = 7, K = 37, n = outer * K * inner;
      auto x = random_vector(n, 11, -30.f, 30.f);
      auto dy = random_vector(n, 12);
      std::vector<float> y(n), dx(n), ry(n), rdx(n);
      cnnx::log_softmax_forward(x.data(), y.data(), outer, K, inner);
      cnnx::log_softmax_backward(dy.data(), y.data(), dx.data(), outer, K, inner);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          double m = -INFINITY, s = 0, sdy = 0;
          for (int64_t k = 0; k < K; ++k) m = std::max(m, double(x[(o * K + k) * inner + i]));
          for (int64_t k = 0; k < K; ++k) s += std::exp(x[(o * K + k) * inner + i] - m);
          for (int64_t k = 0; k < K; ++k) sdy += dy[(o * K + k) * inner + i];
          for (int64_t k = 0; k < K; ++k) {
            const int64_t j = (o * K + k) * inner + i;
            const double lv = x[j] - m - std::log(s);
            ry[j] = float(lv);
            rdx[j] = float(dy[j] - std::exp(lv) * sdy);
          }
        }
      EXPECT_TRUE(all_close(y.data(), ry.data(), n, 1e-5f, 1e-5f));
      EXPECT_TRUE(all_close(dx.data(), rdx.data(), n, 1e-4f, 1e-5f));
    }
  }
}

TEST(PReLU, SharedAndPerChannelMatchReference) {
  for (auto isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t P : {1, 3, 16, 21, 64}) {
      const int64_t rows = 513, n = rows * P;
      auto x = random_vector(n, 21), dy = random_vector(n, 22), s = random_vector(P, 23);
      std::vector<float> y(n), dx(n), ds(P), ry(n), rdx(n), rds(P);
      cnnx::prelu_forward(x.data(), s.data(), y.data(), rows, P);
      cnnx::prelu_backward(dy.data(), x.data(), s.data(), dx.data(), ds.data(), rows, P);
      std::vector<double> acc(P, 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t p = i % P;
        ry[i] = x[i] > 0 ? x[i] : s[p] * x[i];
        rdx[i] = x[i] > 0 ? dy[i] : s[p] * dy[i];
        if (x[i] <= 0) acc[p] += double(dy[i]) * x[i];
      }
      for (int64_t p = 0; p < P; ++p) rds[p] = float(acc[p]);
      EXPECT_TRUE(all_close(y.data(), ry.data(), n, 1e-6f, 1e-7f));
      EXPECT_TRUE(all_close(dx.data(), rdx.data(), n, 1e-6f, 1e-7f));
      EXPECT_TRUE(all_close(ds.data(), rds.data(), P, 1e-4f, 1e-4f));
    }
  }
}
