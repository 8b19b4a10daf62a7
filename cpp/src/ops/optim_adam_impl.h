// The Adam / AdamW loop, written once over a SIMD vector type V
// (common/vec_*.h): optim_adam__avx512.cpp and optim_adam__avx2.cpp define
// CNNX_ADAM_V and include this file inside an anonymous namespace of their
// own. The tail goes through masked loads and stores; every operation is an
// IEEE one (fma, sqrt, div), so the ISAs give the same bits as the portable loop.

using V = CNNX_ADAM_V;

void adam_loop(float* p, const float* g, float* m, float* v, int64_t b, int64_t e,
               const AdamArgs& a) {
  const V::reg om1 = V::set1(a.one_minus_beta1), b2 = V::set1(a.beta2);
  const V::reg om2 = V::set1(a.one_minus_beta2), bc2 = V::set1(a.bc2_sqrt);
  const V::reg eps = V::set1(a.eps), nstep = V::set1(-a.step_size);
  const V::reg wd = V::set1(a.weight_decay), decay = V::set1(a.decay);
  const bool dec = a.decoupled, l2 = !a.decoupled && a.weight_decay != 0.0f;
  auto step = [&](V::reg gi, V::reg pi, V::reg mi, V::reg vi, V::reg* po, V::reg* mo, V::reg* vo) {
    if (dec) pi = V::mul(pi, decay);
    if (l2) gi = V::fmadd(wd, pi, gi);
    mi = V::fmadd(om1, V::sub(gi, mi), mi);
    vi = V::fmadd(b2, vi, V::mul(V::mul(om2, gi), gi));
    const V::reg denom = V::add(V::div(V::sqrt(vi), bc2), eps);
    *po = V::fmadd(nstep, V::div(mi, denom), pi);
    *mo = mi;
    *vo = vi;
  };
  V::reg po, mo, vo;
  int64_t i = b;
  // Whole vectors with plain loads and stores (AVX2's masked stores are slow),
  // then one masked tail.
  for (; i + V::W <= e; i += V::W) {
    step(V::load(g + i), V::load(p + i), V::load(m + i), V::load(v + i), &po, &mo, &vo);
    V::store(m + i, mo);
    V::store(v + i, vo);
    V::store(p + i, po);
  }
  if (i < e) {
    const V::tail k = V::tail_mask(e - i);
    step(V::load_tail(g + i, k), V::load_tail(p + i, k), V::load_tail(m + i, k),
         V::load_tail(v + i, k), &po, &mo, &vo);
    V::store_tail(m + i, k, mo);
    V::store_tail(v + i, k, vo);
    V::store_tail(p + i, k, po);
  }
}
