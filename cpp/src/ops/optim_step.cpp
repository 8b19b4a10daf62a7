// The fused optimiser step (see cnnx/optim_step.h): checks, the float
// constants of this step, the norm pass when clipping by norm, then one
// update pass over the segments, split across threads as one range of the
// concatenated segments (one fork/join per pass, however many tensors).
#include "cnnx/optim_step.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cnnx/cpu.h"
#include "ops/ops_common.h"
#include "ops/optim_step_kernels.h"

namespace {

// The portable loop: one float at a time.
struct V {
  using T = float;
  static constexpr int W = 1;
  static T set1(float x) { return x; }
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T load_n(const float* p, int) { return *p; }
  static void store_n(float* p, T v, int) { *p = v; }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T div(T a, T b) { return a / b; }
  static T sqrt(T a) { return std::sqrt(a); }
  static T min(T a, T b) { return b < a ? b : a; }
  static T max(T a, T b) { return b > a ? b : a; }
  static T fma(T a, T b, T c) { return a * b + c; }
  static T fnma(T a, T b, T c) { return c - a * b; }
  static double hsum(T a) { return a; }
};

}  // namespace

#define CNNX_OPTSTEP_NS optstep_generic
#include "ops/optim_step_impl.h"
#undef CNNX_OPTSTEP_NS

namespace cnnx {

namespace {

const StepKernels& step_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return optstep_avx512::kernels;
    case Isa::avx2: return optstep_avx2::kernels;
    default: return optstep_generic::kernels;
  }
}

void check_segments(const int64_t* seg, int64_t ns, int64_t n) {
  if (ns < 0 || (ns > 0 && !seg))
    throw std::invalid_argument("segments: expected (begin, end) pairs");
  int64_t last = 0;
  for (int64_t s = 0; s < ns; ++s) {
    const int64_t b = seg[2 * s], e = seg[2 * s + 1];
    if (b < last || e < b || e > n)
      throw std::invalid_argument(
          "segments: expected sorted, non-overlapping [begin, end) "
          "ranges inside the " +
          std::to_string(n) + " parameters");
    last = e;
  }
}

StepConsts constants(const OptimStepArgs& a) {
  StepConsts c;
  c.rule = a.rule;
  c.clip_value = a.clip == ClipMode::value;
  c.clip = static_cast<float>(a.clip_value);
  c.wd = static_cast<float>(a.weight_decay);
  c.l2 = a.weight_decay != 0.0 && !(a.rule == OptimRule::adam && a.decoupled);
  c.lr = static_cast<float>(a.lr);
  c.mom = static_cast<float>(a.momentum);
  c.has_mom = a.momentum != 0.0;
  c.nesterov = a.nesterov;
  c.eps = static_cast<float>(a.eps);
  if (a.rule == OptimRule::adam) {
    c.decoupled = a.decoupled;
    c.decay = static_cast<float>(1.0 - a.lr * a.weight_decay);
    c.om1 = static_cast<float>(1.0 - a.beta1);
    c.b2 = static_cast<float>(a.beta2);
    c.om2 = static_cast<float>(1.0 - a.beta2);
    const double t = static_cast<double>(a.step);
    c.step_size = static_cast<float>(a.lr / (1.0 - std::pow(a.beta1, t)));
    c.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(a.beta2, t)));
  }
  c.alpha = static_cast<float>(a.alpha);
  c.om_alpha = static_cast<float>(1.0 - a.alpha);
  c.centered = a.centered;
  c.clr = static_cast<float>(a.lr / (1.0 + static_cast<double>(a.step - 1) * a.lr_decay));
  c.ema = a.ema;
  c.ema_overwrite = a.ema && a.ema_overwrite;
  c.ema_m = static_cast<float>(a.ema_momentum);
  c.ema_om = static_cast<float>(1.0 - a.ema_momentum);
  return c;
}

// f(segment, begin, end) over the parts of the segments inside [b, e) of
// their concatenation (cum: prefix sums of the segment lengths).
template <class F>
void walk(const int64_t* seg, const std::vector<int64_t>& cum, int64_t b, int64_t e, F f) {
  int64_t s = std::upper_bound(cum.begin(), cum.end(), b) - cum.begin() - 1;
  const int64_t ns = static_cast<int64_t>(cum.size()) - 1;
  for (; s < ns && cum[s] < e; ++s) {
    const int64_t lo = std::max(b, cum[s]) - cum[s], hi = std::min(e, cum[s + 1]) - cum[s];
    if (lo < hi) f(s, seg[2 * s] + lo, seg[2 * s] + hi);
  }
}

std::vector<int64_t> prefix(const int64_t* seg, int64_t ns) {
  std::vector<int64_t> cum(ns + 1, 0);
  for (int64_t s = 0; s < ns; ++s) cum[s + 1] = cum[s] + seg[2 * s + 1] - seg[2 * s];
  return cum;
}

}  // namespace

void segment_norms(const float* grad, const int64_t* seg, int64_t ns, double* norms) {
  const StepKernels& k = step_kernels();
  const std::vector<int64_t> cum = prefix(seg, ns);
  std::vector<double> sums(ns, 0.0);
  std::mutex mu;
  const int nt = ops_detail::threads_for_bytes(4.0 * cum.back());
  ops_detail::parallel_range(cum.back(), nt, [&](int64_t b, int64_t e) {
    std::vector<double> part(ns, 0.0);
    walk(seg, cum, b, e,
         [&](int64_t s, int64_t lo, int64_t hi) { part[s] += k.sumsq(grad, lo, hi); });
    std::lock_guard<std::mutex> lock(mu);
    for (int64_t s = 0; s < ns; ++s) sums[s] += part[s];
  });
  for (int64_t s = 0; s < ns; ++s) norms[s] = std::sqrt(sums[s]);
}

void optimizer_step(const OptimStepArgs& a, float* p, const float* g, float* s0, float* s1,
                    float* s2, float* ema, int64_t n, const int64_t* seg, int64_t ns) {
  if (n < 0 || (n > 0 && (!p || !g))) throw std::invalid_argument("param: buffers are needed");
  check_segments(seg, ns, n);
  const int r = static_cast<int>(a.rule);
  if (r < 0 || r > 3) throw std::invalid_argument("rule: unknown optimiser rule");
  const bool need0 = a.rule != OptimRule::sgd || a.momentum != 0.0;
  const bool need1 =
      a.rule == OptimRule::adam || (a.rule == OptimRule::rmsprop && a.momentum != 0.0);
  const bool need2 = a.rule == OptimRule::rmsprop && a.centered;
  if ((need0 && !s0) || (need1 && !s1) || (need2 && !s2) || (a.ema && !ema))
    throw std::invalid_argument("state: a state buffer the optimiser needs is missing");
  if (a.step < 1) throw std::invalid_argument("step: expected >= 1");
  if (a.clip != ClipMode::none && !(a.clip_value > 0.0))
    throw std::invalid_argument("clip: expected a clipping value > 0");
  if (ns == 0 || n == 0) return;
  const StepConsts c = constants(a);
  std::vector<float> scale(ns, 1.0f);
  if (a.clip == ClipMode::per_segment_norm || a.clip == ClipMode::global_norm) {
    std::vector<double> norms(ns);
    segment_norms(g, seg, ns, norms.data());
    const double cv = a.clip_value;
    if (a.clip == ClipMode::per_segment_norm) {
      for (int64_t s = 0; s < ns; ++s) scale[s] = static_cast<float>(cv / std::max(norms[s], cv));
    } else {
      double total = 0.0;
      for (double x : norms) total += x * x;
      const float all = static_cast<float>(cv / std::max(std::sqrt(total), cv));
      std::fill(scale.begin(), scale.end(), all);
    }
  }
  const StepKernels& k = step_kernels();
  const std::vector<int64_t> cum = prefix(seg, ns);
  const double streams =
      3.0 + (need0 ? 2 : 0) + (need1 ? 2 : 0) + (need2 ? 2 : 0) + (a.ema ? 2 : 0);
  const int nt = ops_detail::threads_for_bytes(4.0 * streams * cum.back());
  ops_detail::parallel_range(cum.back(), nt, [&](int64_t b, int64_t e) {
    walk(seg, cum, b, e, [&](int64_t s, int64_t lo, int64_t hi) {
      k.update(c, scale[s], p, g, s0, s1, s2, ema, lo, hi);
    });
  });
}

}  // namespace cnnx
