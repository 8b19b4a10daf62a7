// Float math on the vectors of common/vec_*.h, written once: exp, expm1,
// log, log1p, erfc, the normal CDF, tanh, sigmoid. Include after one of the
// vec_<isa>.h headers; instantiate with that ISA's V only in its own
// translation units.
//
// Accuracy (checked in cpp/tests/test_pointwise.cpp against <cmath>): exp
// and log about 2 ulp; erfc's absolute error below 4e-7 (its polynomial was
// fitted for cnnx by weighted least squares: erfc(a) * exp(a^2) in
// t = 1 / (1 + a/2) on [0, 9.3], degree 10).
#pragma once
#include <cstdint>

namespace cnnx {
namespace vecmath {

template <class V>
using R = typename V::reg;

// exp(r) for r in [-ln2/2, ln2/2] (Cephes-style polynomial).
template <class V>
inline R<V> exp_poly(R<V> r) {
  R<V> p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  return V::fmadd(V::mul(p, r), r, V::add(r, V::set1(1.0f)));
}

// exp(x): 0 far below, +inf far above, NaN stays NaN.
template <class V>
inline R<V> exp(R<V> x) {
  const float lo = V::kSaturatingLdexp ? -104.0f : -87.33654f;
  const float hi = V::kSaturatingLdexp ? 89.0f : 88.37626f;
  const R<V> xc = V::max(V::set1(lo), V::min(V::set1(hi), x));  // a NaN x stays
  const R<V> n = V::round(V::mul(xc, V::set1(1.44269504088896341f)));
  R<V> r = V::fnmadd(n, V::set1(0.693359375f), xc);
  r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
  R<V> y = V::ldexp(exp_poly<V>(r), n);
  if (!V::kSaturatingLdexp) {
    y = V::select(V::lt(x, V::set1(lo)), V::zero(), y);
    y = V::select(V::gt(x, V::set1(hi)), V::set1(__builtin_inff()), y);
  }
  return y;
}

// exp(x) - 1 for x <= 0, accurate near 0 (a Taylor polynomial on [-0.5, 0]).
template <class V>
inline R<V> expm1_nonpos(R<V> x) {
  const R<V> e = V::sub(exp<V>(x), V::set1(1.0f));
  R<V> p = V::set1(1.0f / 40320.0f);
  p = V::fmadd(p, x, V::set1(1.0f / 5040.0f));
  p = V::fmadd(p, x, V::set1(1.0f / 720.0f));
  p = V::fmadd(p, x, V::set1(1.0f / 120.0f));
  p = V::fmadd(p, x, V::set1(1.0f / 24.0f));
  p = V::fmadd(p, x, V::set1(1.0f / 6.0f));
  p = V::fmadd(p, x, V::set1(0.5f));
  const R<V> small = V::fmadd(V::mul(x, x), p, x);
  return V::select(V::gt(x, V::set1(-0.5f)), small, e);
}

// log(x) for finite x > 0 (0 gives -inf; callers pass nothing else).
template <class V>
inline R<V> log_pos(R<V> x) {
  R<V> m, e;
  V::frexp(x, &m, &e);  // m in [1, 2)
  const auto big = V::gt(m, V::set1(1.41421356f));
  m = V::select(big, V::mul(m, V::set1(0.5f)), m);
  e = V::select(big, V::add(e, V::set1(1.0f)), e);
  // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716
  const R<V> s = V::div(V::sub(m, V::set1(1.0f)), V::add(m, V::set1(1.0f)));
  const R<V> s2 = V::mul(s, s);
  R<V> p = V::set1(1.0f / 11.0f);
  p = V::fmadd(p, s2, V::set1(1.0f / 9.0f));
  p = V::fmadd(p, s2, V::set1(1.0f / 7.0f));
  p = V::fmadd(p, s2, V::set1(1.0f / 5.0f));
  p = V::fmadd(p, s2, V::set1(1.0f / 3.0f));
  p = V::fmadd(p, s2, V::set1(1.0f));
  const R<V> y = V::fmadd(e, V::set1(0.693147180559945f), V::mul(V::add(s, s), p));
  return V::select(V::eq(x, V::zero()), V::set1(-__builtin_inff()), y);
}

// log(1 + t) for t in [0, 1], accurate for small t (1 + t's rounding undone).
template <class V>
inline R<V> log1p_unit(R<V> t) {
  const R<V> v = V::add(V::set1(1.0f), t);
  const R<V> c = V::sub(V::sub(v, V::set1(1.0f)), t);  // what the rounding added
  const R<V> l = V::sub(log_pos<V>(v), V::div(c, v));
  return V::select(V::eq(v, V::set1(1.0f)), t, l);
}

// erfc(a) for a >= 0 (see the header comment).
template <class V>
inline R<V> erfc_nonneg(R<V> a0) {
  const R<V> a = V::min(V::set1(10.0f), a0);  // erfc(10) is 0 in float; a NaN stays
  const R<V> t = V::recip(V::fmadd(a, V::set1(0.5f), V::set1(1.0f)));
  R<V> q = V::set1(2.762310873e-02f);
  q = V::fmadd(q, t, V::set1(-2.100092345e-01f));
  q = V::fmadd(q, t, V::set1(6.430108341e-01f));
  q = V::fmadd(q, t, V::set1(-9.728016864e-01f));
  q = V::fmadd(q, t, V::set1(6.923677974e-01f));
  q = V::fmadd(q, t, V::set1(-2.584642618e-01f));
  q = V::fmadd(q, t, V::set1(2.886029891e-01f));
  q = V::fmadd(q, t, V::set1(2.223353595e-01f));
  q = V::fmadd(q, t, V::set1(2.855042478e-01f));
  q = V::fmadd(q, t, V::set1(2.818212120e-01f));
  q = V::fmadd(q, t, V::set1(9.613580671e-06f));
  // exp(-a^2) with a^2's rounding error put back: exp(-(h + l)) ~ exp(-h) (1 - l)
  const R<V> h = V::mul(a, a);
  const R<V> l = V::fmadd(a, a, V::neg(h));
  const R<V> eh = exp<V>(V::neg(h));
  const R<V> e = V::fnmadd(eh, l, eh);
  return V::mul(q, e);
}

// Phi(x) = erfc(-x / sqrt 2) / 2, the standard normal CDF, relatively
// accurate in the lower tail.
template <class V>
inline R<V> normal_cdf(R<V> x) {
  const R<V> e = V::mul(V::set1(0.5f), erfc_nonneg<V>(V::mul(V::abs(x), V::set1(0.70710678118654752f))));
  return V::select(V::negative(x), e, V::sub(V::set1(1.0f), e));
}

// tanh(x) = sign(x) (1 - 2e / (1 + e)), e = exp(-2|x|) (exactly +-1 once e
// underflows); an odd Taylor series below 0.125.
template <class V>
inline R<V> tanh(R<V> x) {
  const R<V> a = V::abs(x);
  const R<V> e = exp<V>(V::mul(a, V::set1(-2.0f)));
  const R<V> big = V::fnmadd(V::add(e, e), V::recip(V::add(V::set1(1.0f), e)), V::set1(1.0f));
  const R<V> a2 = V::mul(a, a);
  R<V> p = V::set1(-17.0f / 315.0f);
  p = V::fmadd(p, a2, V::set1(2.0f / 15.0f));
  p = V::fmadd(p, a2, V::set1(-1.0f / 3.0f));
  const R<V> small = V::fmadd(V::mul(a, a2), p, a);
  return V::copysign(V::select(V::lt(a, V::set1(0.125f)), small, big), x);
}

// 1 / (1 + exp(-x)) from e = exp(-|x|), which never overflows: e / (1 + e)
// below 0 and 1 - e / (1 + e) above (exactly 0 and 1 once e underflows).
template <class V>
inline R<V> sigmoid(R<V> x) {
  const R<V> e = exp<V>(V::neg(V::abs(x)));
  const R<V> t = V::mul(e, V::recip(V::add(V::set1(1.0f), e)));
  return V::select(V::negative(x), t, V::sub(V::set1(1.0f), t));
}

}  // namespace vecmath
}  // namespace cnnx
