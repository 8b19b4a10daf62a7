// Local response normalisation loops, written once over a vector type V
// (common/vec_*.h) and compiled per ISA (lrn.cpp portable, lrn__avx2.cpp,
// lrn__avx512.cpp; each defines CNNX_LRN_NS and CNNX_LRN_VEC). Per NHWC
// pixel the channel window sums run over a zero-padded copy of the row, so
// every loop is a plain loop over channels.
#include <cstdint>

#include "common/vec_math.h"
#include "ops/lrn_kernels.h"

namespace cnnx {
namespace CNNX_LRN_NS {
namespace {

using V = CNNX_LRN_VEC;
using reg = V::reg;

// sum[c] = sum_{d < size} q[c + d]   (q padded by size/2 zeros each side)
inline void window_sums(const float* q, float* sum, int64_t C, int64_t size) {
  for (int64_t c = 0; c < C; ++c) sum[c] = q[c];
  for (int64_t d = 1; d < size; ++d) {
    const float* qd = q + d;
    for (int64_t c = 0; c < C; ++c) sum[c] += qd[c];
  }
}

// s[c] = bias + alpha/size * window sum of x^2
inline void scales(const float* x, float* q, float* s, const LrnParams& p) {
  const int64_t C = p.C, h = p.size / 2;
  for (int64_t j = 0; j < h; ++j) q[j] = q[h + C + j] = 0.0f;
  float* qc = q + h;
  for (int64_t c = 0; c < C; ++c) qc[c] = x[c] * x[c];
  window_sums(q, s, C, p.size);
  const float k = p.alpha / static_cast<float>(p.size);
  for (int64_t c = 0; c < C; ++c) s[c] = p.bias + k * s[c];
}

// s^-beta
inline reg pow_neg(reg s, reg nb) { return vecmath::exp<V>(V::mul(nb, vecmath::log_pos<V>(s))); }

// f(c, vector of s^-beta at c) over channels [0, C), the tail through a
// padded vector (its extra lanes see s = 1).
template <class F>
inline void over_channels(const float* s, int64_t C, reg nb, F f) {
  int64_t c = 0;
  for (; c + V::W <= C; c += V::W) f(c, pow_neg(V::load(s + c), nb), V::W);
  if (c < C) {
    alignas(64) float t[V::W];
    for (int j = 0; j < V::W; ++j) t[j] = c + j < C ? s[c + j] : 1.0f;
    f(c, pow_neg(V::load(t), nb), static_cast<int>(C - c));
  }
}

void forward(const float* x, float* y, int64_t r0, int64_t r1, const LrnParams& p, float* scratch) {
  const int64_t C = p.C;
  float* q = scratch;
  float* s = scratch + C + p.size;
  const reg nb = V::set1(-p.beta);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    scales(xr, q, s, p);
    over_channels(s, C, nb, [&](int64_t c, reg pw, int n) {
      if (n == V::W) {
        V::store(yr + c, V::mul(V::load(xr + c), pw));
      } else {
        alignas(64) float t[V::W];
        V::store(t, pw);
        for (int j = 0; j < n; ++j) yr[c + j] = xr[c + j] * t[j];
      }
    });
  }
}

void backward(const float* dy, const float* x, float* dx, int64_t r0, int64_t r1,
              const LrnParams& p, float* scratch) {
  const int64_t C = p.C, h = p.size / 2;
  float* q = scratch;
  float* s = scratch + C + p.size;
  float* pw = s + C + p.size;
  const reg nb = V::set1(-p.beta);
  const float k = -2.0f * p.alpha * p.beta / static_cast<float>(p.size);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    const float* gr = dy + r * C;
    float* dr = dx + r * C;
    scales(xr, q, s, p);
    over_channels(s, C, nb, [&](int64_t c, reg v, int n) {
      if (n == V::W) {
        V::store(pw + c, v);
      } else {
        alignas(64) float t[V::W];
        V::store(t, v);
        for (int j = 0; j < n; ++j) pw[c + j] = t[j];
      }
    });
    // q (padded) = dy x s^(-beta - 1) = dy x pw / s
    float* qc = q + h;
    for (int64_t c = 0; c < C; ++c) qc[c] = gr[c] * xr[c] * pw[c] / s[c];
    window_sums(q, s, C, p.size);  // s now holds the window sums of q
    for (int64_t c = 0; c < C; ++c) dr[c] = gr[c] * pw[c] + k * xr[c] * s[c];
  }
}

}  // namespace

const LrnKernels kernels = {forward, backward};

}  // namespace CNNX_LRN_NS
}  // namespace cnnx
