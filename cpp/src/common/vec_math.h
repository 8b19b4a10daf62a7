// Float math on the vectors of common/vec_*.h, written once: exp, expm1,
// log, log1p, erfc, the normal CDF, tanh, sigmoid. Include after one of the
// vec_<isa>.h headers; instantiate with that ISA's V only in its own
// translation units.
//
// Accuracy (checked in cpp/tests/test_pointwise.cpp against <cmath>): exp
// and log about 2 ulp; the normal CDF's absolute error below 4e-7, what
// x * Phi(x) (GELU) needs. Its polynomial was fitted for cnnx by iteratively
// reweighted least squares on the absolute error: erfc(a) * exp(a^2) as a
// degree-5 polynomial in t = 1 / (1 + 0.45 a) on [0, 6].
#pragma once
#include <cstdint>

namespace cnnx {
namespace vecmath {

template <class V>
using R = typename V::reg;

// exp(r) for r in [-ln2/2, ln2/2]: Cephes's coefficients, plain Horner
// (six fused multiply-adds).
template <class V>
inline R<V> exp_poly(R<V> r) {
  R<V> p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  p = V::fmadd(p, r, V::set1(1.0f));
  return V::fmadd(p, r, V::set1(1.0f));
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

// exp(x) for x in [-100, 0] (or NaN): no clamping on AVX-512.
template <class V>
inline R<V> exp_bounded_nonpos(R<V> x) {
  if (!V::kSaturatingLdexp) return exp<V>(x);
  const R<V> n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  R<V> r = V::fnmadd(n, V::set1(0.693359375f), x);
  r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
  return V::ldexp(exp_poly<V>(r), n);
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

// log(1 + t) for t in [0, 1] as 2 atanh(s), s = t / (2 + t) <= 1/3: an odd
// series to s^13 (truncation below 2e-8 relative), accurate for small t.
template <class V>
inline R<V> log1p_unit(R<V> t) {
  const R<V> s = V::div(t, V::add(V::set1(2.0f), t));
  const R<V> s2 = V::mul(s, s);
  R<V> p = V::set1(1.0f / 13.0f);
  p = V::fmadd(p, s2, V::set1(1.0f / 11.0f));
  p = V::fmadd(p, s2, V::set1(1.0f / 9.0f));
  p = V::fmadd(p, s2, V::set1(1.0f / 7.0f));
  p = V::fmadd(p, s2, V::set1(1.0f / 5.0f));
  p = V::fmadd(p, s2, V::set1(1.0f / 3.0f));
  p = V::fmadd(p, s2, V::set1(1.0f));
  return V::mul(V::add(s, s), p);
}

// Phi(x) = erfc(-x / sqrt 2) / 2, the standard normal CDF, from
// e = erfc(|x| / sqrt 2) / 2 (see the header comment): e below 0, 1 - e
// above. Also gives exp(-min(x^2/2, 100)) (for the density) when asked.
template <class V>
inline R<V> normal_cdf(R<V> x, R<V>* gauss = nullptr) {
  // a = |x| / sqrt 2, at most 10 (erfc(10) is 0 in float; a NaN stays)
  const R<V> a = V::min(V::set1(10.0f), V::mul(V::abs(x), V::set1(0.70710678118654752f)));
  const R<V> t = V::recip(V::fmadd(a, V::set1(0.45f), V::set1(1.0f)));
  R<V> q = V::set1(0.5f * -2.616435191e-01f);  // the coefficients halved: e = erfc / 2
  q = V::fmadd(q, t, V::set1(0.5f * 1.016228948e+00f));
  q = V::fmadd(q, t, V::set1(0.5f * -5.667371876e-01f));
  q = V::fmadd(q, t, V::set1(0.5f * 6.497055640e-01f));
  q = V::fmadd(q, t, V::set1(0.5f * 1.516023896e-01f));
  q = V::fmadd(q, t, V::set1(0.5f * 1.084376430e-02f));
  const R<V> g = exp_bounded_nonpos<V>(V::fnmadd(a, a, V::zero()));
  if (gauss) *gauss = g;
  const R<V> e = V::mul(q, g);
  return V::select(V::negative(x), e, V::sub(V::set1(1.0f), e));
}

// tanh(x) = sign(x) (1 - 2e / (1 + e)), e = exp(-2|x|) (|x| is capped at 50,
// where the result is exactly +-1 in float); an odd Taylor series below 0.125.
template <class V>
inline R<V> tanh(R<V> x) {
  const R<V> a = V::abs(x);
  const R<V> e = exp_bounded_nonpos<V>(V::mul(V::min(V::set1(50.0f), a), V::set1(-2.0f)));
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
  const R<V> e = exp_bounded_nonpos<V>(V::neg(V::min(V::set1(100.0f), V::abs(x))));
  const R<V> t = V::mul(e, V::recip(V::add(V::set1(1.0f), e)));
  return V::select(V::negative(x), t, V::sub(V::set1(1.0f), t));
}

}  // namespace vecmath
}  // namespace cnnx
