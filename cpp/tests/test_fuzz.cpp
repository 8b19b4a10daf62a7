// A short random-shape fuzz loop through the C++ kernels (GEMM, conv forward
// and both backwards, every pooling kind forward and backward), each checked
// against a naive loop written here, on a random ISA level and thread count
// per case. Buffers have exactly their logical size, so under the sanitizer
// build (scripts/sanitize.sh) any out-of-bounds read or write is reported.
//
// Time-bounded: each test runs for CNNX_FUZZ_SECONDS (default 2) seconds,
// at least kMinCases cases and at most kMaxCases. The sequence is fixed by
// CNNX_FUZZ_SEED (default 20261128); a failure prints the case to replay.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/cpu.h"
#include "cnnx/gemm.h"
#include "cnnx/pool.h"
#include "cnnx/threading.h"
#include "test_util.h"

namespace {

constexpr int kMinCases = 25;
constexpr int kMaxCases = 100000;

double fuzz_seconds() {
  const char* e = std::getenv("CNNX_FUZZ_SECONDS");
  const double v = e ? std::atof(e) : 2.0;
  return v > 0 ? v : 2.0;
}

uint32_t fuzz_seed() {
  const char* e = std::getenv("CNNX_FUZZ_SEED");
  return e ? static_cast<uint32_t>(std::strtoul(e, nullptr, 10)) : 20261128u;
}

// Runs body(rng, case_index) until the time budget is spent; restores the
// ISA level and thread count afterwards.
template <class F>
int fuzz_loop(const char* what, F body) {
  const auto isas = cnnx_test::supported_isas();
  const cnnx::Isa saved_isa = cnnx::active_isa();
  const int saved_threads = cnnx::get_num_threads();
  std::mt19937 rng(fuzz_seed() ^ static_cast<uint32_t>(std::hash<std::string>()(what)));
  const auto t0 = std::chrono::steady_clock::now();
  const double budget = fuzz_seconds();
  int n = 0;
  for (; n < kMaxCases; ++n) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (n >= kMinCases && el > budget) break;
    cnnx::set_active_isa(isas[rng() % isas.size()]);
    cnnx::set_num_threads(1 + static_cast<int>(rng() % 3));
    body(rng, n);
    if (::testing::Test::HasFailure()) break;
  }
  cnnx::set_active_isa(saved_isa);
  cnnx::set_num_threads(saved_threads);
  std::printf("[fuzz] %s: %d cases\n", what, n);
  return n;
}

int64_t uni(std::mt19937& rng, int64_t lo, int64_t hi) {  // inclusive
  return lo + static_cast<int64_t>(rng() % static_cast<uint32_t>(hi - lo + 1));
}

std::vector<float> rand_vec(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// |got - want| <= 1e-4 * mag + 1e-5, mag = sum of |terms| of that entry.
::testing::AssertionResult close(const std::vector<float>& got, const std::vector<double>& want,
                                 const std::vector<double>& mag, const std::string& ctx) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << ctx << ": size " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = 1e-4 * mag[i] + 1e-5;
    if (std::isnan(want[i]) && std::isnan(got[i])) continue;  // untouched NaN padding
    if (!(std::fabs(got[i] - want[i]) <= tol))
      return ::testing::AssertionFailure()
             << ctx << ": element " << i << " got " << got[i] << " want " << want[i];
  }
  return ::testing::AssertionSuccess();
}

std::string isa_name() {
  switch (cnnx::active_isa()) {
    case cnnx::Isa::avx512: return "avx512";
    case cnnx::Isa::avx2: return "avx2";
    default: return "generic";
  }
}

// ------------------------------------------------------------------- GEMM

TEST(Fuzz, Sgemm) {
  fuzz_loop("sgemm", [](std::mt19937& rng, int it) {
    const bool ta = rng() & 1, tb = rng() & 1;
    const int64_t M = uni(rng, 1, 80), N = uni(rng, 1, 80), K = uni(rng, 1, 90);
    const int64_t lda = (ta ? M : K) + uni(rng, 0, 3);
    const int64_t ldb = (tb ? K : N) + uni(rng, 0, 3);
    const int64_t ldc = N + uni(rng, 0, 3);
    const float alpha = (rng() % 4 == 0) ? 1.f : std::uniform_real_distribution<float>(-2, 2)(rng);
    const int bsel = rng() % 3;
    const float beta = bsel == 0 ? 0.f : bsel == 1 ? 1.f : 0.5f;
    const bool use_bias = rng() & 1, relu = rng() & 1;
    const int threads = static_cast<int>(rng() % 3);  // 0 auto, 1 caller, 2
    // exact sizes: the last row of each operand ends at its last element
    const auto A = rand_vec(rng, static_cast<size_t>(((ta ? K : M) - 1) * lda + (ta ? M : K)));
    const auto B = rand_vec(rng, static_cast<size_t>(((tb ? N : K) - 1) * ldb + (tb ? K : N)));
    auto C = rand_vec(rng, static_cast<size_t>((M - 1) * ldc + N));
    const auto bias = rand_vec(rng, static_cast<size_t>(N));
    if (beta == 0.f)  // beta == 0: C is write-only, NaN there must not leak
      for (auto& c : C) c = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> C0 = C;
    std::vector<double> want(C.size()), mag(C.size());
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < ldc && i * ldc + j < static_cast<int64_t>(C.size()); ++j) {
        const int64_t idx = i * ldc + j;
        if (j >= N) {  // padding between rows stays untouched
          want[idx] = C0[idx];
          mag[idx] = 0;
          continue;
        }
        double s = 0, m = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double a = ta ? A[k * lda + i] : A[i * lda + k];
          const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
          s += a * b;
          m += std::fabs(a * b);
        }
        double v = alpha * s + (beta != 0.f ? beta * C0[idx] : 0.0);
        m = std::fabs(alpha) * m + (beta != 0.f ? std::fabs(beta * C0[idx]) : 0.0);
        if (use_bias) {
          v += bias[j];
          m += std::fabs(bias[j]);
        }
        if (relu) v = std::max(v, 0.0);
        want[idx] = v;
        mag[idx] = m;
      }
    cnnx::GemmEpilogue ep;
    ep.bias = use_bias ? bias.data() : nullptr;
    ep.act = relu ? cnnx::Activation::relu : cnnx::Activation::none;
    cnnx::sgemm(ta ? cnnx::Trans::T : cnnx::Trans::N, tb ? cnnx::Trans::T : cnnx::Trans::N, M, N, K,
                alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, ep, threads);
    std::ostringstream ctx;
    ctx << "case " << it << " " << isa_name() << " sgemm(" << (ta ? 'T' : 'N') << (tb ? 'T' : 'N')
        << " M=" << M << " N=" << N << " K=" << K << " lda=" << lda << " ldb=" << ldb
        << " ldc=" << ldc << " alpha=" << alpha << " beta=" << beta << " bias=" << use_bias
        << " relu=" << relu << " threads=" << threads << ")";
    ASSERT_TRUE(close(C, want, mag, ctx.str()));
  });
}

// ------------------------------------------------------------ convolution

cnnx::Conv2dShape random_conv(std::mt19937& rng) {
  for (;;) {
    cnnx::Conv2dShape s;
    s.N = uni(rng, 1, 3);
    s.H = uni(rng, 1, 12);
    s.W = uni(rng, 1, 12);
    const int kind = rng() % 6;  // 0: depthwise, 1: grouped, 2: 1x1, else general
    s.groups = 1;
    if (kind == 0) {
      s.C_in = uni(rng, 1, 20);
      s.groups = s.C_in;
      s.C_out = s.C_in * uni(rng, 1, 2);
    } else if (kind == 1) {
      s.groups = uni(rng, 2, 4);
      s.C_in = s.groups * uni(rng, 1, 5);
      s.C_out = s.groups * uni(rng, 1, 6);
    } else {
      s.C_in = uni(rng, 1, 40);
      s.C_out = uni(rng, 1, 40);
    }
    if (kind == 2) {
      s.KH = s.KW = 1;
      if (rng() & 1) {
        s.stride_h = s.stride_w = 1;  // the plain-GEMM path
      } else {
        s.stride_h = uni(rng, 1, 3);
        s.stride_w = uni(rng, 1, 3);
      }
    } else {
      s.KH = uni(rng, 1, 5);
      s.KW = uni(rng, 1, 5);
      s.stride_h = uni(rng, 1, 3);
      s.stride_w = uni(rng, 1, 3);
      s.dilation_h = (rng() % 4 == 0) ? uni(rng, 2, 3) : 1;
      s.dilation_w = (rng() % 4 == 0) ? uni(rng, 2, 3) : 1;
      if (rng() % 3) {
        s.pad_top = uni(rng, 0, 3);
        s.pad_bottom = uni(rng, 0, 3);
        s.pad_left = uni(rng, 0, 3);
        s.pad_right = uni(rng, 0, 3);
      }
    }
    if (cnnx::conv2d_check(s)[0] == 0) return s;
  }
}

std::string describe(const cnnx::Conv2dShape& s) {
  std::ostringstream o;
  o << isa_name() << " threads=" << cnnx::get_num_threads() << " N=" << s.N << " H=" << s.H
    << " W=" << s.W << " Cin=" << s.C_in << " K=" << s.KH << "x" << s.KW << " Cout=" << s.C_out
    << " stride=" << s.stride_h << "," << s.stride_w << " dil=" << s.dilation_h << ","
    << s.dilation_w << " pad=" << s.pad_top << "," << s.pad_bottom << "," << s.pad_left << ","
    << s.pad_right << " groups=" << s.groups << " algo=" << cnnx::conv2d_forward_algorithm(s);
  return o.str();
}

// f(x_index, w_index, y_index) for every multiply-add of the convolution.
template <class F>
void conv_taps(const cnnx::Conv2dShape& s, F f) {
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t cig = s.C_in / s.groups, cog = s.C_out / s.groups;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t co = 0; co < s.C_out; ++co) {
          const int64_t g = co / cog;
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
            if (ih < 0 || ih >= s.H) continue;
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
              if (iw < 0 || iw >= s.W) continue;
              for (int64_t ci = 0; ci < cig; ++ci)
                f(((n * s.H + ih) * s.W + iw) * s.C_in + g * cig + ci,
                  ((kh * s.KW + kw) * cig + ci) * s.C_out + co,
                  ((n * OH + oh) * OW + ow) * s.C_out + co);
            }
          }
        }
}

TEST(Fuzz, Conv2dForwardAndBackward) {
  fuzz_loop("conv2d", [](std::mt19937& rng, int it) {
    const cnnx::Conv2dShape s = random_conv(rng);
    const auto x = rand_vec(rng, static_cast<size_t>(s.input_size()));
    const auto w = rand_vec(rng, static_cast<size_t>(s.weight_size()));
    const auto bias = rand_vec(rng, static_cast<size_t>(s.C_out));
    const auto dy = rand_vec(rng, static_cast<size_t>(s.output_size()));
    const bool relu = rng() & 1, use_bias = rng() & 1;
    const std::string ctx = "case " + std::to_string(it) + " " + describe(s);

    // forward
    std::vector<double> y_ref(dy.size(), 0.0), y_mag(dy.size(), 0.0);
    conv_taps(s, [&](int64_t xi, int64_t wi, int64_t yi) {
      y_ref[yi] += double(x[xi]) * w[wi];
      y_mag[yi] += std::fabs(double(x[xi]) * w[wi]);
    });
    for (size_t i = 0; i < y_ref.size(); ++i) {
      const int64_t co = static_cast<int64_t>(i) % s.C_out;
      if (use_bias) {
        y_ref[i] += bias[co];
        y_mag[i] += std::fabs(bias[co]);
      }
      if (relu) y_ref[i] = std::max(y_ref[i], 0.0);
    }
    std::vector<float> y(dy.size(), std::numeric_limits<float>::quiet_NaN());
    cnnx::conv2d_forward(s, x.data(), w.data(), use_bias ? bias.data() : nullptr, y.data(),
                         relu ? cnnx::Activation::relu : cnnx::Activation::none);
    ASSERT_TRUE(close(y, y_ref, y_mag, ctx + " forward"));

    // backward data
    std::vector<double> dx_ref(x.size(), 0.0), dx_mag(x.size(), 0.0);
    std::vector<double> dw_ref(w.size(), 0.0), dw_mag(w.size(), 0.0);
    conv_taps(s, [&](int64_t xi, int64_t wi, int64_t yi) {
      dx_ref[xi] += double(dy[yi]) * w[wi];
      dx_mag[xi] += std::fabs(double(dy[yi]) * w[wi]);
      dw_ref[wi] += double(dy[yi]) * x[xi];
      dw_mag[wi] += std::fabs(double(dy[yi]) * x[xi]);
    });
    std::vector<float> dx(x.size(), std::numeric_limits<float>::quiet_NaN());
    cnnx::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
    ASSERT_TRUE(close(dx, dx_ref, dx_mag, ctx + " backward_data"));

    // backward weights (+ bias)
    std::vector<double> db_ref(s.C_out, 0.0), db_mag(s.C_out, 0.0);
    for (size_t i = 0; i < dy.size(); ++i) {
      db_ref[i % s.C_out] += dy[i];
      db_mag[i % s.C_out] += std::fabs(dy[i]);
    }
    std::vector<float> dw(w.size(), std::numeric_limits<float>::quiet_NaN());
    std::vector<float> db(s.C_out, std::numeric_limits<float>::quiet_NaN());
    const bool want_db = rng() & 1;
    cnnx::conv2d_backward_weights(s, dy.data(), x.data(), dw.data(), want_db ? db.data() : nullptr);
    ASSERT_TRUE(close(dw, dw_ref, dw_mag, ctx + " backward_weights"));
    if (want_db) ASSERT_TRUE(close(db, db_ref, db_mag, ctx + " backward_bias"));
  });
}

// ---------------------------------------------------------------- pooling

struct PoolCase {
  cnnx::PoolShape s;
  cnnx::Pool2dParams p;
  int64_t oh, ow;
};

PoolCase random_pool(std::mt19937& rng) {
  for (;;) {
    PoolCase c;
    c.s = {uni(rng, 1, 3), uni(rng, 1, 11), uni(rng, 1, 11), uni(rng, 1, 37)};
    c.p.kernel_h = uni(rng, 1, 5);
    c.p.kernel_w = uni(rng, 1, 5);
    c.p.stride_h = uni(rng, 1, 4);
    c.p.stride_w = uni(rng, 1, 4);
    c.p.pad_top = uni(rng, 0, c.p.kernel_h / 2);
    c.p.pad_bottom = uni(rng, 0, c.p.kernel_h / 2);
    c.p.pad_left = uni(rng, 0, c.p.kernel_w / 2);
    c.p.pad_right = uni(rng, 0, c.p.kernel_w / 2);
    if (rng() % 3 == 0) c.p.pad_top = c.p.pad_bottom = c.p.pad_left = c.p.pad_right = 0;
    c.oh = cnnx::pool_output_size(c.s.h, c.p.kernel_h, c.p.stride_h, c.p.pad_top, c.p.pad_bottom);
    c.ow = cnnx::pool_output_size(c.s.w, c.p.kernel_w, c.p.stride_w, c.p.pad_left, c.p.pad_right);
    if (c.oh >= 1 && c.ow >= 1) return c;
  }
}

std::string describe(const PoolCase& c) {
  std::ostringstream o;
  o << isa_name() << " threads=" << cnnx::get_num_threads() << " x=(" << c.s.n << "," << c.s.h
    << "," << c.s.w << "," << c.s.c << ") k=" << c.p.kernel_h << "x" << c.p.kernel_w
    << " s=" << c.p.stride_h << "," << c.p.stride_w << " pad=" << c.p.pad_top << ","
    << c.p.pad_bottom << "," << c.p.pad_left << "," << c.p.pad_right;
  return o.str();
}

// One window [h0, h1) x [w0, w1) of real pixels per output; the reference
// for max/avg (strided) and adaptive pooling alike.
template <class Win>
void pool_reference(const cnnx::PoolShape& s, int64_t OH, int64_t OW, Win win, bool is_max,
                    bool adaptive_or_exclude, int64_t full_window, const std::vector<float>& x,
                    const std::vector<float>& dy, std::vector<double>& y, std::vector<double>& dx) {
  y.assign(static_cast<size_t>(s.n * OH * OW * s.c), 0.0);
  dx.assign(x.size(), 0.0);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t i = 0; i < OH; ++i)
      for (int64_t j = 0; j < OW; ++j) {
        int64_t h0, h1, w0, w1;
        win(i, j, &h0, &h1, &w0, &w1);
        for (int64_t c = 0; c < s.c; ++c) {
          const int64_t yi = ((n * OH + i) * OW + j) * s.c + c;
          if (is_max) {
            int64_t best = -1;
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) {
                const int64_t xi = ((n * s.h + h) * s.w + w) * s.c + c;
                if (best < 0 || x[xi] > x[best]) best = xi;  // first maximum wins
              }
            y[yi] = x[best];
            dx[best] += dy[yi];
          } else {
            const int64_t cnt = adaptive_or_exclude ? (h1 - h0) * (w1 - w0) : full_window;
            double sum = 0;
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) {
                const int64_t xi = ((n * s.h + h) * s.w + w) * s.c + c;
                sum += x[xi];
                dx[xi] += double(dy[yi]) / cnt;
              }
            y[yi] = sum / cnt;
          }
        }
      }
}

std::vector<double> ones_like(const std::vector<double>& v, double scale) {
  std::vector<double> m(v.size());
  for (size_t i = 0; i < v.size(); ++i) m[i] = scale * (1.0 + std::fabs(v[i]));
  return m;
}

TEST(Fuzz, Pool2d) {
  fuzz_loop("pool2d", [](std::mt19937& rng, int it) {
    const PoolCase c = random_pool(rng);
    const auto& s = c.s;
    const auto& p = c.p;
    int64_t oh = -1, ow = -1;
    cnnx::pool2d_check(s, p, &oh, &ow);
    ASSERT_EQ(oh, c.oh);
    ASSERT_EQ(ow, c.ow);
    const auto x = rand_vec(rng, static_cast<size_t>(s.n * s.h * s.w * s.c));
    const auto dy = rand_vec(rng, static_cast<size_t>(s.n * oh * ow * s.c));
    const std::string ctx = "case " + std::to_string(it) + " " + describe(c);
    auto win = [&](int64_t i, int64_t j, int64_t* h0, int64_t* h1, int64_t* w0, int64_t* w1) {
      *h0 = std::max<int64_t>(i * p.stride_h - p.pad_top, 0);
      *h1 = std::min<int64_t>(i * p.stride_h - p.pad_top + p.kernel_h, s.h);
      *w0 = std::max<int64_t>(j * p.stride_w - p.pad_left, 0);
      *w1 = std::min<int64_t>(j * p.stride_w - p.pad_left + p.kernel_w, s.w);
    };
    std::vector<double> y_ref, dx_ref;
    std::vector<float> y(dy.size(), std::numeric_limits<float>::quiet_NaN());
    std::vector<float> dx(x.size(), std::numeric_limits<float>::quiet_NaN());
    switch (rng() % 3) {
      case 0:
        pool_reference(s, oh, ow, win, true, false, 0, x, dy, y_ref, dx_ref);
        cnnx::max_pool2d_forward(s, p, x.data(), y.data());
        ASSERT_TRUE(close(y, y_ref, ones_like(y_ref, 0.0), ctx + " max forward"));
        cnnx::max_pool2d_backward(s, p, x.data(), dy.data(), dx.data());
        ASSERT_TRUE(close(dx, dx_ref, ones_like(dx_ref, 1e-2), ctx + " max backward"));
        break;
      default: {
        const bool include = rng() & 1;
        pool_reference(s, oh, ow, win, false, !include, p.kernel_h * p.kernel_w, x, dy, y_ref,
                       dx_ref);
        cnnx::avg_pool2d_forward(s, p, include, x.data(), y.data());
        ASSERT_TRUE(close(y, y_ref, ones_like(y_ref, 1e-2),
                          ctx + " avg forward include_pad=" + std::to_string(include)));
        cnnx::avg_pool2d_backward(s, p, include, dy.data(), dx.data());
        ASSERT_TRUE(close(dx, dx_ref, ones_like(dx_ref, 1e-2),
                          ctx + " avg backward include_pad=" + std::to_string(include)));
      }
    }
  });
}

TEST(Fuzz, AdaptiveAndGlobalPool2d) {
  fuzz_loop("adaptive_pool2d", [](std::mt19937& rng, int it) {
    const cnnx::PoolShape s{uni(rng, 1, 3), uni(rng, 1, 13), uni(rng, 1, 13), uni(rng, 1, 37)};
    const int64_t OH = uni(rng, 1, 15), OW = uni(rng, 1, 15);  // smaller or larger than n
    const auto x = rand_vec(rng, static_cast<size_t>(s.n * s.h * s.w * s.c));
    const auto dy = rand_vec(rng, static_cast<size_t>(s.n * OH * OW * s.c));
    std::ostringstream o;
    o << "case " << it << " " << isa_name() << " threads=" << cnnx::get_num_threads() << " x=("
      << s.n << "," << s.h << "," << s.w << "," << s.c << ") out=" << OH << "x" << OW;
    const std::string ctx = o.str();
    auto win = [&](int64_t i, int64_t j, int64_t* h0, int64_t* h1, int64_t* w0, int64_t* w1) {
      *h0 = (i * s.h) / OH;
      *h1 = ((i + 1) * s.h + OH - 1) / OH;
      *w0 = (j * s.w) / OW;
      *w1 = ((j + 1) * s.w + OW - 1) / OW;
      int64_t a, b;
      cnnx::adaptive_window(i, s.h, OH, &a, &b);  // the library's own rule agrees
      EXPECT_TRUE(a == *h0 && b == *h1) << ctx << " adaptive_window(" << i << ")";
    };
    std::vector<double> y_ref, dx_ref;
    std::vector<float> y(dy.size(), std::numeric_limits<float>::quiet_NaN());
    std::vector<float> dx(x.size(), std::numeric_limits<float>::quiet_NaN());
    switch (rng() % 3) {
      case 0:
        pool_reference(s, OH, OW, win, true, true, 0, x, dy, y_ref, dx_ref);
        cnnx::adaptive_max_pool2d_forward(s, OH, OW, x.data(), y.data());
        ASSERT_TRUE(close(y, y_ref, ones_like(y_ref, 0.0), ctx + " adaptive max forward"));
        cnnx::adaptive_max_pool2d_backward(s, OH, OW, x.data(), dy.data(), dx.data());
        ASSERT_TRUE(close(dx, dx_ref, ones_like(dx_ref, 1e-2), ctx + " adaptive max backward"));
        break;
      case 1:
        pool_reference(s, OH, OW, win, false, true, 0, x, dy, y_ref, dx_ref);
        cnnx::adaptive_avg_pool2d_forward(s, OH, OW, x.data(), y.data());
        ASSERT_TRUE(close(y, y_ref, ones_like(y_ref, 1e-2), ctx + " adaptive avg forward"));
        cnnx::adaptive_avg_pool2d_backward(s, OH, OW, dy.data(), dx.data());
        ASSERT_TRUE(close(dx, dx_ref, ones_like(dx_ref, 1e-2), ctx + " adaptive avg backward"));
        break;
      default: {
        // global average: (n, h, w, c) -> (n, c)
        std::vector<double> g_ref(static_cast<size_t>(s.n * s.c), 0.0);
        std::vector<double> gdx_ref(x.size());
        const auto gdy = rand_vec(rng, g_ref.size());
        for (int64_t n = 0; n < s.n; ++n)
          for (int64_t p = 0; p < s.h * s.w; ++p)
            for (int64_t c = 0; c < s.c; ++c) {
              g_ref[n * s.c + c] += x[(n * s.h * s.w + p) * s.c + c] / double(s.h * s.w);
              gdx_ref[(n * s.h * s.w + p) * s.c + c] = gdy[n * s.c + c] / double(s.h * s.w);
            }
        std::vector<float> g(g_ref.size(), std::numeric_limits<float>::quiet_NaN());
        cnnx::global_avg_pool2d_forward(s, x.data(), g.data());
        ASSERT_TRUE(close(g, g_ref, ones_like(g_ref, 1e-2), ctx + " global avg forward"));
        cnnx::global_avg_pool2d_backward(s, gdy.data(), dx.data());
        ASSERT_TRUE(close(dx, gdx_ref, ones_like(gdx_ref, 1e-2), ctx + " global avg backward"));
      }
    }
  });
}

// Shapes the checks must refuse (without touching memory: null pointers).
TEST(Fuzz, HostileShapesAreRefused) {
  cnnx::Conv2dShape s;
  s.N = 1;
  s.H = s.W = 5;
  s.C_in = 2;
  s.C_out = 4;
  s.KH = s.KW = 3;
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = int64_t{1} << 62;  // sum overflows
  EXPECT_STRNE(cnnx::conv2d_check(s), "");
  EXPECT_THROW(cnnx::conv2d_forward(s, nullptr, nullptr, nullptr, nullptr), std::invalid_argument);
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = int64_t{1} << 40;
  s.dilation_h = s.dilation_w = int64_t{1} << 40;  // "same" padding of a huge dilation
  EXPECT_STRNE(cnnx::conv2d_check(s), "");
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = 0;
  s.dilation_h = s.dilation_w = std::numeric_limits<int64_t>::max() / 2;  // (K-1)*d overflows
  EXPECT_STRNE(cnnx::conv2d_check(s), "");
  s.dilation_h = s.dilation_w = 1;
  s.groups = 3;
  EXPECT_STRNE(cnnx::conv2d_check(s), "");
  s.groups = 0;
  EXPECT_STRNE(cnnx::conv2d_check(s), "");
  s.groups = 1;
  s.stride_h = 0;
  EXPECT_STRNE(cnnx::conv2d_check(s), "");

  int64_t oh, ow;
  const cnnx::PoolShape ps{1, 4, 4, 2};
  const auto bad = [&](cnnx::Pool2dParams p) {
    EXPECT_THROW(cnnx::pool2d_check(ps, p, &oh, &ow), std::invalid_argument);
  };
  bad({0, 2, 2, 2, 0, 0, 0, 0});
  bad({2, 2, 0, 2, 0, 0, 0, 0});
  bad({2, 2, 2, 2, -1, 0, 0, 0});
  bad({2, 2, 2, 2, 2, 0, 0, 0});                                // more than half the window
  bad({5, 5, 1, 1, 0, 0, 0, 0});                                // window larger than input
  bad({int64_t{1} << 62, 2, 1, 1, int64_t{1} << 61, 0, 0, 0});  // huge window
  bad({int64_t{1} << 32, int64_t{1} << 32, 1, 1, 0, 0, 0, 0});  // kh*kw overflows 32 bits
}

}  // namespace
