// Softmax cross-entropy (fused) and cross-entropy of probabilities.
#include "cnnx/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/ops_common.h"

namespace cnnx {

namespace {

bool labels_ok(const int64_t* labels, int64_t N, int64_t K) {
  for (int64_t i = 0; i < N; ++i)
    if (labels[i] < 0 || labels[i] >= K) return false;
  return true;
}

// Loss of one row; writes the row's gradient (scaled by inv_n) if g != null.
double sce_row(const float* x, int64_t label, int64_t K, float inv_n, float* g) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t k = 0; k < K; ++k) m = x[k] > m ? x[k] : m;
  double s = 0.0;
  for (int64_t k = 0; k < K; ++k) s += std::exp(static_cast<double>(x[k] - m));
  const double lse = static_cast<double>(m) + std::log(s);
  if (g) {
    const double scale = inv_n / s;
    for (int64_t k = 0; k < K; ++k)
      g[k] = static_cast<float>(std::exp(static_cast<double>(x[k] - m)) * scale);
    g[label] -= inv_n;
  }
  return lse - static_cast<double>(x[label]);
}

}  // namespace

double softmax_cross_entropy(const float* logits, const int64_t* labels, int64_t N, int64_t K,
                             float* dlogits) {
  if (N <= 0) return std::numeric_limits<double>::quiet_NaN();
  if (!labels_ok(labels, N, K)) return std::numeric_limits<double>::quiet_NaN();
  const float inv_n = 1.0f / static_cast<float>(N);
  const int nt = threads_for_flops(30.0 * N * K);
  double total = 0.0;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) reduction(+ : total) schedule(static) if (nt > 1)
#endif
  for (int64_t i = 0; i < N; ++i)
    total += sce_row(logits + i * K, labels[i], K, inv_n, dlogits ? dlogits + i * K : nullptr);
  (void)nt;
  return total / static_cast<double>(N);
}

double cross_entropy(const float* probs, const int64_t* labels, int64_t N, int64_t K, float eps,
                     float* dprobs) {
  if (N <= 0) return std::numeric_limits<double>::quiet_NaN();
  if (!labels_ok(labels, N, K)) return std::numeric_limits<double>::quiet_NaN();
  double total = 0.0;
  const double inv_n = 1.0 / static_cast<double>(N);
  for (int64_t i = 0; i < N; ++i) {
    const float p = std::max(probs[i * K + labels[i]], eps);
    total -= std::log(static_cast<double>(p));
    if (dprobs) {
      float* g = dprobs + i * K;
      for (int64_t k = 0; k < K; ++k) g[k] = 0.0f;
      g[labels[i]] = static_cast<float>(-inv_n / p);
    }
  }
  return total * inv_n;
}

double softmax_cross_entropy_sum(const float* logits, const int64_t* labels, const float* w,
                                 int64_t N, int64_t K, float scale, float* d, bool accumulate) {
  double total = 0.0;
  std::vector<float> row(d && accumulate ? static_cast<size_t>(K) : 0);
  for (int64_t i = 0; i < N; ++i) {
    const float wi = w ? w[i] : 1.0f;
    float* g = d ? (accumulate ? row.data() : d + i * K) : nullptr;
    total += wi * sce_row(logits + i * K, labels[i], K, scale * wi, g);
    if (g && accumulate)
      for (int64_t k = 0; k < K; ++k) d[i * K + k] += row[k];
  }
  return total;
}

double squared_error_sum(const float* y, const float* t, const float* w, int64_t N, int64_t D,
                         float scale, float* d, bool accumulate) {
  double total = 0.0;
  const double inv_d = 1.0 / static_cast<double>(D);
  for (int64_t i = 0; i < N; ++i) {
    const float wi = w ? w[i] : 1.0f;
    const float* yi = y + i * D;
    const float* ti = t + i * D;
    double s = 0.0;
    for (int64_t j = 0; j < D; ++j) {
      const double e = static_cast<double>(yi[j]) - static_cast<double>(ti[j]);
      s += e * e;
    }
    total += wi * s * inv_d;
    if (d) {
      const float c = static_cast<float>(2.0 * scale * wi * inv_d);
      float* di = d + i * D;
      if (accumulate)
        for (int64_t j = 0; j < D; ++j) di[j] += c * (yi[j] - ti[j]);
      else
        for (int64_t j = 0; j < D; ++j) di[j] = c * (yi[j] - ti[j]);
    }
  }
  return total;
}

namespace {

// sum_i w_i * mean_j f(e_ij), with the gradient scale * w_i * f'(e_ij) / D.
template <class F, class G>
double elementwise_sum(const float* y, const float* t, const float* w, int64_t N, int64_t D,
                       float scale, float* d, bool accumulate, F f, G df) {
  double total = 0.0;
  const double inv_d = 1.0 / static_cast<double>(D);
  for (int64_t i = 0; i < N; ++i) {
    const float wi = w ? w[i] : 1.0f;
    const float* yi = y + i * D;
    const float* ti = t + i * D;
    double s = 0.0;
    for (int64_t j = 0; j < D; ++j) s += f(yi[j], ti[j]);
    total += wi * s * inv_d;
    if (d) {
      const float c = static_cast<float>(scale * wi * inv_d);
      float* di = d + i * D;
      for (int64_t j = 0; j < D; ++j) {
        const float g = c * df(yi[j], ti[j]);
        di[j] = accumulate ? di[j] + g : g;
      }
    }
  }
  return total;
}

}  // namespace

double absolute_error_sum(const float* y, const float* t, const float* w, int64_t N, int64_t D,
                          float scale, float* d, bool accumulate) {
  return elementwise_sum(
      y, t, w, N, D, scale, d, accumulate,
      [](float a, float b) { return std::fabs(static_cast<double>(a) - b); },
      [](float a, float b) { return a > b ? 1.0f : (a < b ? -1.0f : 0.0f); });
}

double huber_sum(const float* y, const float* t, const float* w, int64_t N, int64_t D, float delta,
                 float scale, float* d, bool accumulate) {
  return elementwise_sum(
      y, t, w, N, D, scale, d, accumulate,
      [delta](float a, float b) {
        const double e = std::fabs(static_cast<double>(a) - b);
        return e <= delta ? 0.5 * e * e : delta * (e - 0.5 * delta);
      },
      [delta](float a, float b) {
        const float e = a - b;
        return e > delta ? delta : (e < -delta ? -delta : e);
      });
}

double sigmoid_binary_cross_entropy_sum(const float* z, const float* t, const float* w, int64_t N,
                                        int64_t D, float scale, float* d, bool accumulate) {
  return elementwise_sum(
      z, t, w, N, D, scale, d, accumulate,
      [](float a, float b) {
        const double x = a;
        return std::max(x, 0.0) - x * b + std::log1p(std::exp(-std::fabs(x)));
      },
      [](float a, float b) { return 1.0f / (1.0f + std::exp(-a)) - b; });
}

double binary_cross_entropy_sum(const float* p, const float* t, const float* w, int64_t N,
                                int64_t D, float scale, float* d, bool accumulate) {
  constexpr float eps = 1e-7f;
  return elementwise_sum(
      p, t, w, N, D, scale, d, accumulate,
      [](float a, float b) {
        const double q = std::min(std::max(static_cast<double>(a), 1e-7), 1.0 - 1e-7);
        return -(b * std::log(q) + (1.0 - b) * std::log(1.0 - q));
      },
      [](float a, float b) {
        if (a < eps || a > 1.0f - eps) return 0.0f;  // clipped: flat
        return (a - b) / (a * (1.0f - a));
      });
}

double softmax_cross_entropy_soft_sum(const float* logits, const float* t, const float* w,
                                      int64_t N, int64_t K, float scale, float* d,
                                      bool accumulate) {
  double total = 0.0;
  for (int64_t i = 0; i < N; ++i) {
    const float* x = logits + i * K;
    const float* ti = t + i * K;
    const float wi = w ? w[i] : 1.0f;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t k = 0; k < K; ++k) m = x[k] > m ? x[k] : m;
    double s = 0.0, tsum = 0.0, dot = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      s += std::exp(static_cast<double>(x[k] - m));
      tsum += ti[k];
      dot += static_cast<double>(ti[k]) * x[k];
    }
    const double lse = static_cast<double>(m) + std::log(s);
    total += wi * (tsum * lse - dot);
    if (d) {
      const double c = static_cast<double>(scale) * wi;
      float* di = d + i * K;
      for (int64_t k = 0; k < K; ++k) {
        const float g =
            static_cast<float>(c * (tsum * std::exp(static_cast<double>(x[k] - m)) / s - ti[k]));
        di[k] = accumulate ? di[k] + g : g;
      }
    }
  }
  return total;
}

}  // namespace cnnx
