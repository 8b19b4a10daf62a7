// Loops of the extra elementwise activations (cnnx/activation.h: Pointwise),
// log-softmax rows and PReLU, written once over a vector type V
// (common/vec_*.h) and compiled per ISA: pointwise.cpp (portable, one float
// at a time), pointwise__avx2.cpp, pointwise__avx512.cpp. Each includes its
// vec header, defines CNNX_PW_NS and CNNX_PW_VEC (the V to use), then this file.
#include <cstdint>
#include <vector>

#include "common/vec_math.h"
#include "ops/pointwise_kernels.h"

namespace cnnx {
namespace CNNX_PW_NS {
namespace {

using V = CNNX_PW_VEC;
using reg = V::reg;
namespace vm = vecmath;

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluKappa = 0.044715f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;  // 1 / sqrt(2 pi)

inline reg c(float v) { return V::set1(v); }

// y = f(x) over n floats; the tail goes through a zero-padded vector.
template <class F>
inline void map1(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(y + i, f(V::load(x + i)));
  if (i < n) {
    alignas(64) float a[V::W] = {}, b[V::W];
    for (int64_t j = 0; j < n - i; ++j) a[j] = x[i + j];
    V::store(b, f(V::load(a)));
    for (int64_t j = 0; j < n - i; ++j) y[i + j] = b[j];
  }
}

// dx = dy * g(x)
template <class G>
inline void map2(const float* dy, const float* x, float* dx, int64_t n, G g) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(dx + i, V::mul(V::load(dy + i), g(V::load(x + i))));
  if (i < n) {
    alignas(64) float a[V::W] = {}, d[V::W] = {}, b[V::W];
    for (int64_t j = 0; j < n - i; ++j) {
      a[j] = x[i + j];
      d[j] = dy[i + j];
    }
    V::store(b, V::mul(V::load(d), g(V::load(a))));
    for (int64_t j = 0; j < n - i; ++j) dx[i + j] = b[j];
  }
}

// sigmoid(2 k (x + c x^3)) = 1 / (1 + exp(-2z)); the exponent is clamped to
// [-100, 80] and the gate set to 0 beyond 80 (where it is below 2e-35, and
// x s must still be 0 for x as large as 1e38). Also gives 1 - s = e s (no
// cancellation where s is near 1).
inline reg gelu_tanh_gate(reg v, reg* one_minus = nullptr) {
  const reg t =
      V::fmadd(V::mul(v, v), c(-2.0f * kSqrt2OverPi * kGeluKappa), c(-2.0f * kSqrt2OverPi));
  const reg raw = V::mul(v, t);                                         // -2z
  const reg e = vm::exp<V>(V::max(c(-100.0f), V::min(c(80.0f), raw)));  // a NaN stays
  const reg s = V::select(V::gt(raw, c(80.0f)), V::zero(), V::recip(V::add(c(1.0f), e)));
  if (one_minus) *one_minus = V::mul(e, s);
  return s;
}

inline reg elu(reg x, reg a) {
  return V::select(V::gt(x, V::zero()), x, V::mul(a, vm::expm1_nonpos<V>(V::min(V::zero(), x))));
}

// d/dx of x > 0 ? x : a (exp(x) - 1)
inline reg elu_grad(reg x, reg a) {
  return V::select(V::gt(x, V::zero()), c(1.0f), V::mul(a, vm::exp<V>(V::min(V::zero(), x))));
}

void forward(Pointwise f, const float* x, float* y, int64_t n, float a, float b) {
  const reg va = c(a), vb = c(b);
  switch (f) {
    case Pointwise::elu: map1(x, y, n, [=](reg v) { return elu(v, va); }); return;
    case Pointwise::selu: map1(x, y, n, [=](reg v) { return V::mul(vb, elu(v, va)); }); return;
    case Pointwise::gelu:
      map1(x, y, n, [](reg v) { return V::mul(v, vm::normal_cdf<V>(v)); });
      return;
    case Pointwise::gelu_tanh:
      // 0.5 x (1 + tanh(z)) = x sigmoid(2z) = x / (1 + exp(-2z)), z = k (x + c x^3)
      map1(x, y, n, [](reg v) { return V::mul(v, gelu_tanh_gate(v)); });
      return;
    case Pointwise::silu: map1(x, y, n, [](reg v) { return V::mul(v, vm::sigmoid<V>(v)); }); return;
    case Pointwise::hardswish:
      map1(x, y, n, [](reg v) {
        const reg r6 = V::max(V::zero(), V::min(c(6.0f), V::add(v, c(3.0f))));
        return V::mul(V::mul(v, r6), c(1.0f / 6.0f));
      });
      return;
    case Pointwise::hardsigmoid:
      map1(x, y, n, [=](reg v) {
        return V::max(V::zero(), V::min(c(1.0f), V::fmadd(va, v, vb)));  // NaN stays
      });
      return;
    case Pointwise::clip:
      // min(b, max(a, x)) with x second: a NaN x stays NaN
      map1(x, y, n, [=](reg v) { return V::min(vb, V::max(va, v)); });
      return;
    case Pointwise::softplus:
      // max(x, 0) + log1p(exp(-|x|)), exact to float for any x
      map1(x, y, n, [](reg v) {
        const reg l = vm::log1p_unit<V>(vm::exp<V>(V::neg(V::abs(v))));
        return V::add(V::max(V::zero(), v), l);
      });
      return;
    case Pointwise::softsign:
      map1(x, y, n, [](reg v) { return V::div(v, V::add(c(1.0f), V::abs(v))); });
      return;
  }
}

void backward(Pointwise f, const float* dy, const float* x, float* dx, int64_t n, float a,
              float b) {
  const reg va = c(a), vb = c(b);
  switch (f) {
    case Pointwise::elu: map2(dy, x, dx, n, [=](reg v) { return elu_grad(v, va); }); return;
    case Pointwise::selu:
      map2(dy, x, dx, n, [=](reg v) { return V::mul(vb, elu_grad(v, va)); });
      return;
    case Pointwise::gelu:
      // Phi(x) + x phi(x)
      map2(dy, x, dx, n, [](reg v) {
        reg g;  // exp(-x^2 / 2), shared with the CDF (0 beyond |x| = 14, as it should be)
        const reg cdf = vm::normal_cdf<V>(v, &g);
        return V::fmadd(V::mul(v, c(kInvSqrt2Pi)), g, cdf);
      });
      return;
    case Pointwise::gelu_tanh:
      // d/dx x s(2z) = s + x s (1 - s) 2 z',  z' = k (1 + 3 c x^2)
      map2(dy, x, dx, n, [](reg v) {
        reg oms;
        const reg s = gelu_tanh_gate(v, &oms);
        const reg dz =
            V::fmadd(c(6.0f * kSqrt2OverPi * kGeluKappa), V::mul(v, v), c(2.0f * kSqrt2OverPi));
        return V::fmadd(V::mul(V::mul(v, s), oms), dz, s);
      });
      return;
    case Pointwise::silu:
      // s (1 + x (1 - s))
      map2(dy, x, dx, n, [](reg v) {
        const reg s = vm::sigmoid<V>(v);
        return V::mul(s, V::fmadd(v, V::sub(c(1.0f), s), c(1.0f)));
      });
      return;
    case Pointwise::hardswish:
      map2(dy, x, dx, n, [](reg v) {
        const reg mid = V::fmadd(v, c(1.0f / 3.0f), c(0.5f));
        return V::select(V::le(v, c(-3.0f)), V::zero(), V::select(V::lt(v, c(3.0f)), mid, c(1.0f)));
      });
      return;
    case Pointwise::hardsigmoid:
      map2(dy, x, dx, n, [=](reg v) {
        const reg z = V::fmadd(va, v, vb);
        return V::select(V::mand(V::gt(z, V::zero()), V::lt(z, c(1.0f))), va, V::zero());
      });
      return;
    case Pointwise::clip:
      map2(dy, x, dx, n, [=](reg v) {
        return V::select(V::mand(V::gt(v, va), V::lt(v, vb)), c(1.0f), V::zero());
      });
      return;
    case Pointwise::softplus: map2(dy, x, dx, n, [](reg v) { return vm::sigmoid<V>(v); }); return;
    case Pointwise::softsign:
      map2(dy, x, dx, n, [](reg v) {
        const reg d = V::add(c(1.0f), V::abs(v));
        return V::recip(V::mul(d, d));
      });
      return;
  }
}

void log_softmax_rows(const float* x, float* y, int64_t rows, int64_t K) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * K;
    float* yr = y + r * K;
    // the maximum ignores NaNs; a NaN then makes the sum, and so every y, NaN
    reg mv = c(-__builtin_inff());
    int64_t k = 0;
    for (; k + V::W <= K; k += V::W) mv = V::max(V::load(xr + k), mv);
    float m = V::hmax(mv);
    for (int64_t j = k; j < K; ++j) m = xr[j] > m ? xr[j] : m;
    reg sv = V::zero();
    const reg vm_ = c(m);
    for (k = 0; k + V::W <= K; k += V::W) sv = V::add(sv, vm::exp<V>(V::sub(V::load(xr + k), vm_)));
    double s = V::hsum(sv);
    for (; k < K; ++k) {
      alignas(64) float t[V::W] = {};
      t[0] = xr[k] - m;
      alignas(64) float e[V::W];
      V::store(e, vm::exp<V>(V::load(t)));
      s += e[0];
    }
    const reg vs = c(m + static_cast<float>(__builtin_log(s)));
    map1(xr, yr, K, [=](reg v) { return V::sub(v, vs); });
  }
}

// dx = dy - exp(y) * sum(dy), row by row
void log_softmax_backward_rows(const float* dy, const float* y, float* dx, int64_t rows,
                               int64_t K) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* gr = dy + r * K;
    const float* yr = y + r * K;
    float* dr = dx + r * K;
    reg sv = V::zero();
    int64_t k = 0;
    for (; k + V::W <= K; k += V::W) sv = V::add(sv, V::load(gr + k));
    double s = V::hsum(sv);
    for (; k < K; ++k) s += gr[k];
    const reg vs = c(static_cast<float>(s));
    k = 0;
    for (; k + V::W <= K; k += V::W)
      V::store(dr + k, V::fnmadd(vm::exp<V>(V::load(yr + k)), vs, V::load(gr + k)));
    for (; k < K; ++k) {
      alignas(64) float t[V::W] = {};
      t[0] = yr[k];
      alignas(64) float e[V::W];
      V::store(e, vm::exp<V>(V::load(t)));
      dr[k] = gr[k] - e[0] * static_cast<float>(s);
    }
  }
}

void prelu_forward(const float* x, const float* slope, float* y, int64_t r0, int64_t r1,
                   int64_t P) {
  if (P == 1) {
    const reg a = c(slope[0]);
    map1(x + r0, y + r0, r1 - r0,
         [=](reg v) { return V::select(V::gt(v, V::zero()), v, V::mul(a, v)); });
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * P;
    float* yr = y + r * P;
    int64_t p = 0;
    for (; p + V::W <= P; p += V::W) {
      const reg v = V::load(xr + p);
      V::store(yr + p, V::select(V::gt(v, V::zero()), v, V::mul(V::load(slope + p), v)));
    }
    for (; p < P; ++p) yr[p] = xr[p] > 0.0f ? xr[p] : slope[p] * xr[p];
  }
}

constexpr int64_t RB = 32;  // rows summed in float before a double add

void prelu_backward(const float* dy, const float* x, const float* slope, float* dx, double* ds,
                    int64_t r0, int64_t r1, int64_t P) {
  if (P == 1) {  // one pass: dx and the sum, in blocks summed in double
    const reg a = c(slope[0]);
    for (int64_t i0 = r0; i0 < r1; i0 += 4096) {
      const int64_t i1 = i0 + 4096 < r1 ? i0 + 4096 : r1;
      reg acc = V::zero();
      int64_t i = i0;
      for (; i + V::W <= i1; i += V::W) {
        const reg v = V::load(x + i), g = V::load(dy + i);
        const auto pos = V::gt(v, V::zero());
        if (dx) V::store(dx + i, V::mul(g, V::select(pos, c(1.0f), a)));
        acc = V::add(acc, V::select(pos, V::zero(), V::mul(g, v)));
      }
      double s = V::hsum(acc);
      for (; i < i1; ++i) {
        if (dx) dx[i] = x[i] > 0.0f ? dy[i] : slope[0] * dy[i];
        s += x[i] > 0.0f ? 0.0 : static_cast<double>(dy[i]) * x[i];
      }
      if (ds) ds[0] += s;
    }
    return;
  }
  // dx and the slope sums in one pass over dy and x
  std::vector<float> acc(ds ? static_cast<size_t>(P) : 0);
  float* a = acc.data();
  for (int64_t rb = r0; rb < r1; rb += RB) {
    const int64_t re = rb + RB < r1 ? rb + RB : r1;
    if (ds)
      for (int64_t p = 0; p < P; ++p) a[p] = 0.0f;
    for (int64_t r = rb; r < re; ++r) {
      const float* xr = x + r * P;
      const float* gr = dy + r * P;
      float* dr = dx ? dx + r * P : nullptr;
      int64_t p = 0;
      for (; p + V::W <= P; p += V::W) {
        const reg v = V::load(xr + p), g = V::load(gr + p);
        const auto pos = V::gt(v, V::zero());
        if (dr) V::store(dr + p, V::mul(g, V::select(pos, c(1.0f), V::load(slope + p))));
        if (ds) V::store(a + p, V::add(V::load(a + p), V::select(pos, V::zero(), V::mul(g, v))));
      }
      for (; p < P; ++p) {
        if (dr) dr[p] = xr[p] > 0.0f ? gr[p] : slope[p] * gr[p];
        if (ds) a[p] += xr[p] > 0.0f ? 0.0f : gr[p] * xr[p];
      }
    }
    if (ds)
      for (int64_t p = 0; p < P; ++p) ds[p] += a[p];
  }
}

}  // namespace

const PointwiseKernels kernels = {forward,       backward,       log_softmax_rows,
                                  prelu_forward, prelu_backward, log_softmax_backward_rows};

}  // namespace CNNX_PW_NS
}  // namespace cnnx
