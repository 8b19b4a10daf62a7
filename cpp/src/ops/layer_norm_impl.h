// Layer-normalisation loops over rows of C values, written once and compiled
// per ISA (layer_norm.cpp portable, layer_norm__avx2.cpp,
// layer_norm__avx512.cpp; CNNX_LN_NS names each copy). A row (one NHWC
// pixel's channels) stays in L1 between its passes: the mean, the centred
// variance (two passes: accurate when |mean| >> std), then the output.
// Reductions keep 16 independent float lanes so that they vectorise without
// reassociation flags.
#include <cmath>
#include <cstdint>

#include "ops/layer_norm_kernels.h"

namespace cnnx {
namespace CNNX_LN_NS {
namespace {

constexpr int L = 16;

inline float row_sum(const float* a, int64_t C) {
  float acc[L];
  for (int j = 0; j < L; ++j) acc[j] = 0.0f;
  int64_t c = 0;
  for (; c + L <= C; c += L)
    for (int j = 0; j < L; ++j) acc[j] += a[c + j];
  float s = 0.0f;
  for (int j = 0; j < L; ++j) s += acc[j];
  for (; c < C; ++c) s += a[c];
  return s;
}

// sum (a - m)^2
inline float row_centred_squares(const float* a, float m, int64_t C) {
  float acc[L];
  for (int j = 0; j < L; ++j) acc[j] = 0.0f;
  int64_t c = 0;
  for (; c + L <= C; c += L)
    for (int j = 0; j < L; ++j) {
      const float d = a[c + j] - m;
      acc[j] += d * d;
    }
  float s = 0.0f;
  for (int j = 0; j < L; ++j) s += acc[j];
  for (; c < C; ++c) s += (a[c] - m) * (a[c] - m);
  return s;
}

// sum a * (b - m)
inline float row_dot_centred(const float* a, const float* b, float m, int64_t C) {
  float acc[L];
  for (int j = 0; j < L; ++j) acc[j] = 0.0f;
  int64_t c = 0;
  for (; c + L <= C; c += L)
    for (int j = 0; j < L; ++j) acc[j] += a[c + j] * (b[c + j] - m);
  float s = 0.0f;
  for (int j = 0; j < L; ++j) s += acc[j];
  for (; c < C; ++c) s += a[c] * (b[c] - m);
  return s;
}

inline void row_stats(const float* x, int64_t C, float eps, float* m, float* inv) {
  const float mean = row_sum(x, C) / static_cast<float>(C);
  const float var = row_centred_squares(x, mean, C) / static_cast<float>(C);
  *m = mean;
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
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - m) * inv * gamma[c] + beta[c];
  }
}

constexpr int64_t RB = 32;  // rows summed in float before a double add

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
      if (dg)
        for (int64_t c = 0; c < C; ++c) {
          ag[c] += gr[c] * ((xr[c] - m) * inv);
          ab[c] += gr[c];
        }
      if (!dx) continue;
      // A = sum gamma dy, B = sum gamma dy xhat
      float* d = dx + r * C;
      for (int64_t c = 0; c < C; ++c) d[c] = gamma[c] * gr[c];  // g, kept in dx
      const float A = row_sum(d, C);
      const float B = inv * row_dot_centred(d, xr, m, C);
      const float a = A / static_cast<float>(C), b = B / static_cast<float>(C);
      for (int64_t c = 0; c < C; ++c) d[c] = inv * (d[c] - a - (xr[c] - m) * inv * b);
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
