// Layer-normalisation loops over rows of C values, written once over a
// vector type V (common/vec_*.h) and compiled per ISA (layer_norm.cpp
// portable, layer_norm__avx2.cpp, layer_norm__avx512.cpp; each defines
// CNNX_LN_NS and CNNX_LN_VEC). A row (one NHWC pixel's channels) stays in L1
// between its two passes: the statistics (sums shifted by the row's first
// value, so var = E[(x-s)^2] - E[x-s]^2 stays accurate when |mean| >> std),
// then the output. Whole vectors, then a scalar tail.
#include <cmath>
#include <cstdint>

#include "ops/layer_norm_kernels.h"

namespace cnnx {
namespace CNNX_LN_NS {
namespace {

using V = CNNX_LN_VEC;
using reg = V::reg;

inline void row_stats(const float* x, int64_t C, float eps, float* m, float* inv) {
  const float sh = x[0];
  const reg vsh = V::set1(sh);
  reg v1 = V::zero(), v2 = V::zero();
  int64_t c = 0;
  for (; c + V::W <= C; c += V::W) {
    const reg d = V::sub(V::load(x + c), vsh);
    v1 = V::add(v1, d);
    v2 = V::fmadd(d, d, v2);
  }
  float s1 = V::hsum(v1), s2 = V::hsum(v2);
  for (; c < C; ++c) {
    const float d = x[c] - sh;
    s1 += d;
    s2 += d * d;
  }
  const float d1 = s1 / static_cast<float>(C);
  float var = s2 / static_cast<float>(C) - d1 * d1;
  var = var > 0.0f ? var : 0.0f;
  *m = sh + d1;
  *inv = 1.0f / std::sqrt(var + eps);
}

void forward(const float* x, const float* gamma, const float* beta, float* y, int64_t r0,
             int64_t r1, int64_t C, float eps, float* mean, float* inv_std) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    float m, inv;
    row_stats(xr, C, eps, &m, &inv);
    if (mean) mean[r] = m;
    if (inv_std) inv_std[r] = inv;
    const reg vm = V::set1(m), vi = V::set1(inv);
    int64_t c = 0;
    for (; c + V::W <= C; c += V::W) {
      const reg xh = V::mul(V::sub(V::load(xr + c), vm), vi);
      V::store(yr + c, V::fmadd(xh, V::load(gamma + c), V::load(beta + c)));
    }
    for (; c < C; ++c) yr[c] = (xr[c] - m) * inv * gamma[c] + beta[c];
  }
}

constexpr int64_t RB = 32;  // rows summed in float before a double add

// Per row: one pass for A = sum gamma dy, B = sum gamma dy (x - m) and the
// parameter-gradient sums, one for dx = inv (gamma dy - A/C - (x - m) inv^2 B/C).
void backward(const float* dy, const float* x, const float* gamma, const float* mean,
              const float* inv_std, float* dx, double* dg, double* db, int64_t r0, int64_t r1,
              int64_t C, float eps, float* scratch) {
  float* ag = scratch;      // float partial sums of dy * xhat
  float* ab = scratch + C;  // and of dy
  for (int64_t rb = r0; rb < r1; rb += RB) {
    const int64_t re = rb + RB < r1 ? rb + RB : r1;
    if (dg)
      for (int64_t c = 0; c < C; ++c) ag[c] = ab[c] = 0.0f;
    for (int64_t r = rb; r < re; ++r) {
      const float* xr = x + r * C;
      const float* gr = dy + r * C;
      float m, inv;
      if (mean) {
        m = mean[r];
        inv = inv_std[r];
      } else {
        row_stats(xr, C, eps, &m, &inv);
      }
      const reg vm = V::set1(m), vi = V::set1(inv);
      reg va = V::zero(), vb = V::zero();
      int64_t c = 0;
      for (; c + V::W <= C; c += V::W) {
        const reg g = V::load(gr + c), xc = V::sub(V::load(xr + c), vm);
        const reg gd = V::mul(V::load(gamma + c), g);
        va = V::add(va, gd);
        vb = V::fmadd(gd, xc, vb);
        if (dg) {
          V::store(ag + c, V::fmadd(V::mul(g, xc), vi, V::load(ag + c)));
          V::store(ab + c, V::add(V::load(ab + c), g));
        }
      }
      float A = V::hsum(va), B = V::hsum(vb);
      for (; c < C; ++c) {
        const float g = gr[c], xc = xr[c] - m, gd = gamma[c] * g;
        A += gd;
        B += gd * xc;
        if (dg) {
          ag[c] += g * xc * inv;
          ab[c] += g;
        }
      }
      if (!dx) continue;
      const float a = A / static_cast<float>(C);
      const float b = B * inv * inv / static_cast<float>(C);
      const reg vA = V::set1(a), vB = V::set1(b);
      float* d = dx + r * C;
      for (c = 0; c + V::W <= C; c += V::W) {
        const reg gd = V::mul(V::load(gamma + c), V::load(gr + c));
        const reg xc = V::sub(V::load(xr + c), vm);
        V::store(d + c, V::mul(vi, V::fnmadd(xc, vB, V::sub(gd, vA))));
      }
      for (; c < C; ++c) d[c] = inv * (gamma[c] * gr[c] - a - (xr[c] - m) * b);
    }
    if (dg)
      for (int64_t c = 0; c < C; ++c) {
        dg[c] += ag[c];
        db[c] += ab[c];
      }
  }
}

}  // namespace

const LayerNormKernels kernels = {forward, backward};

}  // namespace CNNX_LN_NS
}  // namespace cnnx
