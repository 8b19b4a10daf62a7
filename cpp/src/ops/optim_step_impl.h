// The fused optimiser step's loops, written once over a vector type V and
// compiled per ISA: optim_step.cpp (V = one float), optim_step__avx2.cpp (8)
// and optim_step__avx512.cpp (16) define V and CNNX_OPTSTEP_NS, then include
// this file. V provides: T, W, set1, load, store, load_n / store_n (the
// first n lanes: the tail), add, sub, mul, div, sqrt, min, max,
// fma(a, b, c) = a * b + c, fnma(a, b, c) = c - a * b, hsum (to double).
//
// The formulas are torch.optim's, in its order of operations (see
// cnnx/optim_step.h); sqrt and division are IEEE-exact in every V, so the
// ISAs differ only where a fused multiply-add rounds once instead of twice.
#include <cstdint>

#include "ops/optim_step_kernels.h"

namespace cnnx {
namespace CNNX_OPTSTEP_NS {
namespace {

using T = V::T;

struct Regs {
  T gs, clip_lo, clip_hi, wd, lr, mom, decay, om1, b2, om2, bc2, eps, nstep, alpha, om_alpha, nclr,
      zero, ema_m, ema_om;
  bool scale;
  explicit Regs(const StepConsts& c, float gscale)
      : gs(V::set1(gscale)),
        clip_lo(V::set1(-c.clip)),
        clip_hi(V::set1(c.clip)),
        wd(V::set1(c.wd)),
        lr(V::set1(c.lr)),
        mom(V::set1(c.mom)),
        decay(V::set1(c.decay)),
        om1(V::set1(c.om1)),
        b2(V::set1(c.b2)),
        om2(V::set1(c.om2)),
        bc2(V::set1(c.bc2_sqrt)),
        eps(V::set1(c.eps)),
        nstep(V::set1(-c.step_size)),
        alpha(V::set1(c.alpha)),
        om_alpha(V::set1(c.om_alpha)),
        nclr(V::set1(-c.clr)),
        zero(V::set1(0.0f)),
        ema_m(V::set1(c.ema_m)),
        ema_om(V::set1(c.ema_om)),
        scale(gscale != 1.0f) {}
};

inline T ld(const float* p, int64_t i, int n) {
  return n == V::W ? V::load(p + i) : V::load_n(p + i, n);
}
inline void st(float* p, int64_t i, int n, T v) {
  if (n == V::W)
    V::store(p + i, v);
  else
    V::store_n(p + i, v, n);
}

// The gradient the rule sees: scaled (clip by norm), clipped by value.
inline T clipped(const StepConsts& c, const Regs& r, T g) {
  if (r.scale) g = V::mul(g, r.gs);
  if (c.clip_value) g = V::min(V::max(g, r.clip_lo), r.clip_hi);
  return g;
}

// The moving average after the update; the weights take it when overwriting.
inline T finish_ema(const StepConsts& c, const Regs& r, float* ema, int64_t i, int n, T p) {
  if (!c.ema) return p;
  const T e = V::fma(r.ema_m, ld(ema, i, n), V::mul(r.ema_om, p));
  st(ema, i, n, e);
  return c.ema_overwrite ? e : p;
}

template <OptimRule R>
void run(const StepConsts& c, const Regs& r, float* pp, const float* gp, float* s0, float* s1,
         float* s2, float* ema, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; i += V::W) {
    const int n = e - i >= V::W ? V::W : static_cast<int>(e - i);
    T p = ld(pp, i, n);
    T g = clipped(c, r, ld(gp, i, n));
    if (R == OptimRule::sgd) {
      if (c.l2) g = V::fma(r.wd, p, g);
      if (c.has_mom) {
        const T v = V::fma(r.mom, ld(s0, i, n), g);
        st(s0, i, n, v);
        g = c.nesterov ? V::fma(r.mom, v, g) : v;
      }
      p = V::fnma(r.lr, g, p);
    } else if (R == OptimRule::adam) {
      if (c.decoupled)
        p = V::mul(p, r.decay);
      else if (c.l2)
        g = V::fma(r.wd, p, g);
      T m = ld(s0, i, n), v = ld(s1, i, n);
      m = V::fma(r.om1, V::sub(g, m), m);
      v = V::fma(r.b2, v, V::mul(V::mul(r.om2, g), g));
      st(s0, i, n, m);
      st(s1, i, n, v);
      const T denom = V::add(V::div(V::sqrt(v), r.bc2), r.eps);
      p = V::fma(r.nstep, V::div(m, denom), p);
    } else if (R == OptimRule::rmsprop) {
      if (c.l2) g = V::fma(r.wd, p, g);
      T sq = V::fma(V::mul(r.om_alpha, g), g, V::mul(ld(s0, i, n), r.alpha));
      st(s0, i, n, sq);
      if (c.centered) {
        T ga = ld(s2, i, n);
        ga = V::fma(r.om_alpha, V::sub(g, ga), ga);
        st(s2, i, n, ga);
        sq = V::max(V::fnma(ga, ga, sq), r.zero);  // never negative from rounding
      }
      const T avg = V::add(V::sqrt(sq), r.eps);
      if (c.has_mom) {
        const T buf = V::fma(ld(s1, i, n), r.mom, V::div(g, avg));
        st(s1, i, n, buf);
        p = V::fnma(r.lr, buf, p);
      } else {
        p = V::fnma(r.lr, V::div(g, avg), p);
      }
    } else {  // adagrad
      if (c.l2) g = V::fma(r.wd, p, g);
      const T sum = V::fma(g, g, ld(s0, i, n));
      st(s0, i, n, sum);
      const T sd = V::add(V::sqrt(sum), r.eps);
      p = V::fma(r.nclr, V::div(g, sd), p);
    }
    st(pp, i, n, finish_ema(c, r, ema, i, n, p));
  }
}

void update(const StepConsts& c, float gscale, float* p, const float* g, float* s0, float* s1,
            float* s2, float* ema, int64_t b, int64_t e) {
  const Regs r(c, gscale);
  switch (c.rule) {
    case OptimRule::sgd: run<OptimRule::sgd>(c, r, p, g, s0, s1, s2, ema, b, e); return;
    case OptimRule::adam: run<OptimRule::adam>(c, r, p, g, s0, s1, s2, ema, b, e); return;
    case OptimRule::rmsprop: run<OptimRule::rmsprop>(c, r, p, g, s0, s1, s2, ema, b, e); return;
    case OptimRule::adagrad: run<OptimRule::adagrad>(c, r, p, g, s0, s1, s2, ema, b, e); return;
  }
}

// Float partial sums over blocks of 1024 values, added up in double.
double sumsq(const float* g, int64_t b, int64_t e) {
  double total = 0.0;
  for (int64_t k = b; k < e; k += 1024) {
    const int64_t end = e - k > 1024 ? k + 1024 : e;
    T acc = V::set1(0.0f);
    for (int64_t i = k; i < end; i += V::W) {
      const int n = end - i >= V::W ? V::W : static_cast<int>(end - i);
      const T x = ld(g, i, n);
      acc = V::fma(x, x, acc);
    }
    total += V::hsum(acc);
  }
  return total;
}

}  // namespace

const StepKernels kernels = {update, sumsq};

}  // namespace CNNX_OPTSTEP_NS
}  // namespace cnnx
