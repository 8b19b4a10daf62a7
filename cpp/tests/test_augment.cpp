// The fused optimiser step and the augmentation kernels against scalar
// references in double, on every ISA the CPU supports.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cnnx/augment.h"
#include "cnnx/optim_step.h"
#include "test_util.h"

using cnnx_test::all_close;
using cnnx_test::IsaScope;
using cnnx_test::random_vector;
using cnnx_test::supported_isas;

namespace {

// ---- optimiser step ----------------------------------------------------------------

struct Ref {
  std::vector<double> p, s0, s1, s2, e;
};

// One step of the rule on [b, e) with gradient scale gs, in double.
void ref_step(const cnnx::OptimStepArgs& a, Ref& r, const std::vector<float>& g, int64_t b,
              int64_t e, double gs) {
  for (int64_t i = b; i < e; ++i) {
    double gi = g[i] * gs;
    if (a.clip == cnnx::ClipMode::value) gi = std::min(std::max(gi, -a.clip_value), a.clip_value);
    double& p = r.p[i];
    switch (a.rule) {
      case cnnx::OptimRule::sgd:
        gi += a.weight_decay * p;
        if (a.momentum != 0) {
          r.s0[i] = a.momentum * r.s0[i] + gi;
          gi = a.nesterov ? gi + a.momentum * r.s0[i] : r.s0[i];
        }
        p -= a.lr * gi;
        break;
      case cnnx::OptimRule::adam: {
        if (a.decoupled)
          p *= 1 - a.lr * a.weight_decay;
        else
          gi += a.weight_decay * p;
        r.s0[i] = a.beta1 * r.s0[i] + (1 - a.beta1) * gi;
        r.s1[i] = a.beta2 * r.s1[i] + (1 - a.beta2) * gi * gi;
        const double t = static_cast<double>(a.step);
        p -= a.lr / (1 - std::pow(a.beta1, t)) * r.s0[i] /
             (std::sqrt(r.s1[i]) / std::sqrt(1 - std::pow(a.beta2, t)) + a.eps);
        break;
      }
      case cnnx::OptimRule::rmsprop: {
        gi += a.weight_decay * p;
        r.s0[i] = a.alpha * r.s0[i] + (1 - a.alpha) * gi * gi;
        double avg = r.s0[i];
        if (a.centered) {
          r.s2[i] = a.alpha * r.s2[i] + (1 - a.alpha) * gi;
          avg -= r.s2[i] * r.s2[i];
        }
        avg = std::sqrt(std::max(avg, 0.0)) + a.eps;
        if (a.momentum != 0) {
          r.s1[i] = a.momentum * r.s1[i] + gi / avg;
          p -= a.lr * r.s1[i];
        } else {
          p -= a.lr * gi / avg;
        }
        break;
      }
      case cnnx::OptimRule::adagrad: {
        gi += a.weight_decay * p;
        r.s0[i] += gi * gi;
        const double clr = a.lr / (1 + (a.step - 1) * a.lr_decay);
        p -= clr * gi / (std::sqrt(r.s0[i]) + a.eps);
        break;
      }
    }
    if (a.ema) {
      r.e[i] = a.ema_momentum * r.e[i] + (1 - a.ema_momentum) * p;
      if (a.ema_overwrite) p = r.e[i];
    }
  }
}

std::vector<float> as_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }
std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

void check_rule(cnnx::OptimStepArgs a) {
  const int64_t n = 5000;
  const std::vector<int64_t> seg = {0, 1, 16, 1037, 1040, 4999};  // a gap, a tail, odd sizes
  const auto g = random_vector(n, 1, -2.f, 2.f);
  const auto p0 = random_vector(n, 2);
  const auto s00 = random_vector(n, 3, 0.f, 0.5f), s10 = random_vector(n, 4, 0.f, 0.5f);
  const auto s20 = random_vector(n, 5, -0.1f, 0.1f), e0 = random_vector(n, 6);
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<float> p = p0, s0 = s00, s1 = s10, s2 = s20, e = e0;
    Ref r{as_double(p0), as_double(s00), as_double(s10), as_double(s20), as_double(e0)};
    std::vector<double> scale(3, 1.0);
    if (a.clip == cnnx::ClipMode::per_segment_norm || a.clip == cnnx::ClipMode::global_norm) {
      double total = 0;
      std::vector<double> norms(3);
      for (int s = 0; s < 3; ++s) {
        double sq = 0;
        for (int64_t i = seg[2 * s]; i < seg[2 * s + 1]; ++i) sq += double(g[i]) * g[i];
        norms[s] = std::sqrt(sq);
        total += sq;
      }
      for (int s = 0; s < 3; ++s) {
        const double nrm = a.clip == cnnx::ClipMode::global_norm ? std::sqrt(total) : norms[s];
        scale[s] = a.clip_value / std::max(nrm, a.clip_value);
      }
    }
    for (int s = 0; s < 3; ++s) ref_step(a, r, g, seg[2 * s], seg[2 * s + 1], scale[s]);
    cnnx::optimizer_step(a, p.data(), g.data(), s0.data(), s1.data(), s2.data(), e.data(), n,
                         seg.data(), 3);
    EXPECT_TRUE(all_close(p.data(), as_float(r.p).data(), n, 2e-5f, 2e-6f)) << cnnx::isa_name(isa);
    EXPECT_TRUE(all_close(s0.data(), as_float(r.s0).data(), n, 2e-5f, 2e-6f))
        << cnnx::isa_name(isa);
    EXPECT_TRUE(all_close(s1.data(), as_float(r.s1).data(), n, 2e-5f, 2e-6f))
        << cnnx::isa_name(isa);
    EXPECT_TRUE(all_close(s2.data(), as_float(r.s2).data(), n, 2e-5f, 2e-6f))
        << cnnx::isa_name(isa);
    EXPECT_TRUE(all_close(e.data(), as_float(r.e).data(), n, 2e-5f, 2e-6f)) << cnnx::isa_name(isa);
    EXPECT_EQ(p[1], p0[1]);  // outside every segment: untouched
    EXPECT_EQ(p[4999], p0[4999]);
  }
}

}  // namespace

TEST(OptimizerStep, EveryRuleClipAndEmaMatchDouble) {
  cnnx::OptimStepArgs a;
  a.lr = 0.01;
  a.step = 3;
  a.rule = cnnx::OptimRule::sgd;
  a.momentum = 0.9;
  a.nesterov = true;
  a.weight_decay = 0.01;
  check_rule(a);
  a.clip = cnnx::ClipMode::per_segment_norm;
  a.clip_value = 5.0;
  check_rule(a);
  a = cnnx::OptimStepArgs();
  a.rule = cnnx::OptimRule::adam;
  a.step = 4;
  a.decoupled = true;
  a.weight_decay = 0.1;
  a.clip = cnnx::ClipMode::global_norm;
  a.clip_value = 10.0;
  a.ema = true;
  a.ema_momentum = 0.9;
  check_rule(a);
  a = cnnx::OptimStepArgs();
  a.rule = cnnx::OptimRule::rmsprop;
  a.centered = true;
  a.momentum = 0.5;
  a.clip = cnnx::ClipMode::value;
  a.clip_value = 0.5;
  a.ema = true;
  a.ema_overwrite = true;
  check_rule(a);
  a = cnnx::OptimStepArgs();
  a.rule = cnnx::OptimRule::adagrad;
  a.step = 7;
  a.lr_decay = 0.05;
  a.eps = 1e-10;
  check_rule(a);
}

TEST(OptimizerStep, RefusesBadSegmentsAndMissingState) {
  std::vector<float> p(10), g(10), s(10);
  cnnx::OptimStepArgs a;
  const int64_t overlap[] = {0, 5, 4, 8};
  EXPECT_THROW(cnnx::optimizer_step(a, p.data(), g.data(), nullptr, nullptr, nullptr, nullptr, 10,
                                    overlap, 2),
               std::invalid_argument);
  const int64_t outside[] = {0, 11};
  EXPECT_THROW(cnnx::optimizer_step(a, p.data(), g.data(), nullptr, nullptr, nullptr, nullptr, 10,
                                    outside, 1),
               std::invalid_argument);
  a.rule = cnnx::OptimRule::adam;
  const int64_t whole[] = {0, 10};
  EXPECT_THROW(cnnx::optimizer_step(a, p.data(), g.data(), s.data(), nullptr, nullptr, nullptr, 10,
                                    whole, 1),
               std::invalid_argument);
}

// ---- augmentation ------------------------------------------------------------------

namespace {

int64_t ref_fill(int64_t i, int64_t n, cnnx::FillMode m, bool* inside) {
  *inside = true;
  switch (m) {
    case cnnx::FillMode::reflect: {
      int64_t r = ((i % (2 * n)) + 2 * n) % (2 * n);
      return r >= n ? 2 * n - 1 - r : r;
    }
    case cnnx::FillMode::wrap: return ((i % n) + n) % n;
    case cnnx::FillMode::nearest: return std::min(std::max<int64_t>(i, 0), n - 1);
    case cnnx::FillMode::constant:
      *inside = i >= 0 && i < n;
      return std::min(std::max<int64_t>(i, 0), n - 1);
  }
  return 0;
}

// One image resampled in double from the transform the library reports.
std::vector<double> ref_sample(const cnnx::AugmentSpec& s, const double* m, const float* img,
                               std::vector<char>* unclear) {
  std::vector<double> out(s.oh * s.ow * s.c);
  unclear->assign(s.oh * s.ow, 0);
  for (int64_t y = 0; y < s.oh; ++y)
    for (int64_t x = 0; x < s.ow; ++x) {
      const double xs = m[0] * x + m[1] * y + m[2], ys = m[3] * x + m[4] * y + m[5];
      auto read = [&](int64_t ix, int64_t iy, int64_t c) {
        bool a, b;
        const int64_t cx = ref_fill(ix, s.w, s.fill, &a), cy = ref_fill(iy, s.h, s.fill, &b);
        return a && b ? double(img[(cy * s.w + cx) * s.c + c]) : double(s.fill_value);
      };
      for (int64_t c = 0; c < s.c; ++c) {
        double v;
        if (s.interp == cnnx::Interpolation::nearest) {
          const double fx = std::floor(xs + 0.5), fy = std::floor(ys + 0.5);
          if (std::fabs(xs + 0.5 - std::round(xs + 0.5)) < 1e-4 ||
              std::fabs(ys + 0.5 - std::round(ys + 0.5)) < 1e-4)
            (*unclear)[y * s.ow + x] = 1;
          v = read(int64_t(fx), int64_t(fy), c);
        } else {
          const double fx = std::floor(xs), fy = std::floor(ys), tx = xs - fx, ty = ys - fy;
          const int64_t ix = int64_t(fx), iy = int64_t(fy);
          const double top = read(ix, iy, c) * (1 - tx) + read(ix + 1, iy, c) * tx;
          const double bot = read(ix, iy + 1, c) * (1 - tx) + read(ix + 1, iy + 1, c) * tx;
          v = top * (1 - ty) + bot * ty;
        }
        out[(y * s.ow + x) * s.c + c] = v;
      }
    }
  return out;
}

void check_geometric(cnnx::AugmentSpec s) {
  const int64_t n = 4, in = s.h * s.w * s.c, out = s.oh * s.ow * s.c;
  const auto x = random_vector(n * in, 9, 0.f, 1.f);
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<float> y(n * out);
    cnnx::augment_forward(s, x.data(), y.data(), n, 77, 5, true);
    for (int64_t i = 0; i < n; ++i) {
      const cnnx::ImageTransform t = cnnx::augment_transform(s, 77, 5 + i, true);
      std::vector<char> unclear;
      const std::vector<double> ref = ref_sample(s, t.m, x.data() + i * in, &unclear);
      for (int64_t j = 0; j < out; ++j) {
        if (unclear[j / s.c]) continue;
        ASSERT_NEAR(y[i * out + j], ref[j], 2e-5)
            << cnnx::isa_name(isa) << " image " << i << " value " << j;
      }
    }
  }
}

}  // namespace

TEST(Augment, GeometricTransformsMatchDoubleEveryIsaFillAndInterpolation) {
  for (auto kind :
       {cnnx::AugmentKind::translate, cnnx::AugmentKind::rotate, cnnx::AugmentKind::zoom})
    for (auto fill : {cnnx::FillMode::reflect, cnnx::FillMode::wrap, cnnx::FillMode::constant,
                      cnnx::FillMode::nearest})
      for (auto interp : {cnnx::Interpolation::bilinear, cnnx::Interpolation::nearest})
        for (int64_t c : {1, 3}) {
          cnnx::AugmentSpec s;
          s.kind = kind;
          s.h = s.oh = 11;
          s.w = s.ow = 19;  // rows of 16 + 3: a vector and a tail
          s.c = c;
          s.fill = fill;
          s.interp = interp;
          s.fill_value = 0.5f;
          s.lo[0] = s.lo[1] = -0.4f;
          s.hi[0] = s.hi[1] = 0.4f;
          check_geometric(s);
        }
}

TEST(Augment, FlipCropContrastAndBackwardAdjoint) {
  const int64_t n = 8, h = 6, w = 5, c = 2, in = h * w * c;
  const auto x = random_vector(n * in, 3, 0.f, 1.f);
  cnnx::AugmentSpec s;
  s.h = s.oh = h;
  s.w = s.ow = w;
  s.c = c;
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    s.kind = cnnx::AugmentKind::flip;
    s.horizontal = s.vertical = true;
    std::vector<float> y(n * in);
    cnnx::augment_forward(s, x.data(), y.data(), n, 5, 0, true);
    for (int64_t i = 0; i < n; ++i) {
      const cnnx::ImageTransform t = cnnx::augment_transform(s, 5, i, true);
      for (int64_t r = 0; r < h; ++r)
        for (int64_t q = 0; q < w; ++q)
          for (int64_t k = 0; k < c; ++k) {
            const int64_t sr = t.flip_v ? h - 1 - r : r, sq = t.flip_h ? w - 1 - q : q;
            ASSERT_EQ(y[i * in + (r * w + q) * c + k], x[i * in + (sr * w + sq) * c + k]);
          }
    }
    s.kind = cnnx::AugmentKind::contrast;
    s.lo[0] = 0.5f;
    s.hi[0] = 1.5f;
    s.value_lo = 0.2f;
    s.value_hi = 0.8f;
    cnnx::augment_forward(s, x.data(), y.data(), n, 5, 0, true);
    for (int64_t i = 0; i < n; ++i) {
      const double f = cnnx::augment_transform(s, 5, i, true).factor;
      for (int64_t k = 0; k < c; ++k) {
        double mean = 0;
        for (int64_t p = 0; p < h * w; ++p) mean += x[i * in + p * c + k];
        mean /= h * w;
        for (int64_t p = 0; p < h * w; ++p) {
          const double v = std::min(std::max((x[i * in + p * c + k] - mean) * f + mean, 0.2), 0.8);
          ASSERT_NEAR(y[i * in + p * c + k], v, 1e-6);
        }
      }
    }
  }
  // backward = adjoint: <dy, f(x)> = <f*(dy), x> for the linear transforms
  for (auto kind : {cnnx::AugmentKind::rotate, cnnx::AugmentKind::crop, cnnx::AugmentKind::flip}) {
    s.kind = kind;
    s.fill = cnnx::FillMode::reflect;
    s.interp = cnnx::Interpolation::bilinear;
    s.lo[0] = -0.3f;
    s.hi[0] = 0.3f;
    s.oh = kind == cnnx::AugmentKind::crop ? 4 : h;
    s.ow = kind == cnnx::AugmentKind::crop ? 3 : w;
    for (bool training : {true, false}) {
      const int64_t out = s.oh * s.ow * c;
      std::vector<float> y(n * out), dx(n * in);
      const auto dy = random_vector(n * out, 8);
      cnnx::augment_forward(s, x.data(), y.data(), n, 12, 0, training);
      cnnx::augment_backward(s, dy.data(), y.data(), dx.data(), n, 12, 0, training, false);
      double lhs = 0, rhs = 0;
      for (int64_t j = 0; j < n * out; ++j) lhs += double(dy[j]) * y[j];
      for (int64_t j = 0; j < n * in; ++j) rhs += double(dx[j]) * x[j];
      EXPECT_NEAR(lhs, rhs, 1e-4 * (1 + std::fabs(lhs))) << static_cast<int>(kind);
    }
  }
}

TEST(Augment, RescaleAndNormalizeMatchScalar) {
  const int64_t n = 1000, C = 3;
  const auto x = random_vector(n * C, 4, -5.f, 5.f);
  const float scale[] = {0.5f, -2.0f, 3.0f}, offset[] = {1.0f, 0.0f, -1.0f};
  const float mean[] = {0.1f, -0.2f, 0.3f}, var[] = {4.0f, 0.0f, 0.25f};
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<float> y(n * C), ref(n * C);
    cnnx::rescale_forward(x.data(), y.data(), n * C, C, 1, scale, offset);
    for (int64_t i = 0; i < n * C; ++i) ref[i] = x[i] * scale[i % C] + offset[i % C];
    EXPECT_TRUE(all_close(y.data(), ref.data(), n * C, 1e-6f, 1e-6f)) << cnnx::isa_name(isa);
    cnnx::normalize_forward(x.data(), y.data(), n * C, C, 1, mean, var, 1e-7f);
    for (int64_t i = 0; i < n * C; ++i)
      ref[i] = (x[i] - mean[i % C]) / std::max(std::sqrt(var[i % C]), 1e-7f);
    EXPECT_TRUE(all_close(y.data(), ref.data(), n * C, 1e-6f, 1e-6f)) << cnnx::isa_name(isa);
    // the middle axis of (50, 3, 20) values: constant (i / 20) % 3
    cnnx::rescale_forward(x.data(), y.data(), n * C, C, 20, scale, offset);
    for (int64_t i = 0; i < n * C; ++i) ref[i] = x[i] * scale[(i / 20) % C] + offset[(i / 20) % C];
    EXPECT_TRUE(all_close(y.data(), ref.data(), n * C, 1e-6f, 1e-6f)) << cnnx::isa_name(isa);
  }
}

TEST(Augment, CheckRefusesBadSpecs) {
  cnnx::AugmentSpec s;
  EXPECT_THROW(cnnx::augment_check(s), std::invalid_argument);  // empty image
  s.h = s.w = s.oh = s.ow = 8;
  s.c = 1;
  EXPECT_NO_THROW(cnnx::augment_check(s));
  s.kind = cnnx::AugmentKind::crop;
  s.oh = 9;
  EXPECT_THROW(cnnx::augment_check(s), std::invalid_argument);
  s.kind = cnnx::AugmentKind::zoom;
  s.oh = 8;
  s.lo[0] = -1.0f;
  EXPECT_THROW(cnnx::augment_check(s), std::invalid_argument);
  s.lo[0] = 0.5f;
  s.hi[0] = 0.1f;
  EXPECT_THROW(cnnx::augment_check(s), std::invalid_argument);
}
