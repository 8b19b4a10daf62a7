// Group normalisation (cnnx/norm.h). Each example is [pixels, C] in NHWC
// order, so the work is batch normalisation's per example: per-channel sums
// over the pixels (the batch-norm loops, SIMD per ISA), folded into one mean
// and variance per group, then one pass y = (x - mean) * a[c] + k[c]. Threads
// take whole examples, or split the pixels of one when there are few.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "cnnx/norm.h"
#include "ops/batchnorm_kernels.h"
#include "ops/ops_common.h"

namespace cnnx {

namespace {

void check(int64_t count, int64_t C, int64_t groups) {
  if (C < 1 || count < C || count % C)
    throw std::invalid_argument("x: the channels (" + std::to_string(C) +
                                ") must divide the values per example (" + std::to_string(count) +
                                ")");
  if (groups < 1 || C % groups)
    throw std::invalid_argument("groups: must divide the channels (" + std::to_string(C) +
                                "), got " + std::to_string(groups));
}

// Per-channel sums over rows [0, rows) of one example, split over nt threads:
// s1 = sum (a - sa), s2 = sum (a - sa)(b - sb) (zeroed here).
template <class F>
void channel_sums(int64_t rows, int64_t C, int nt, double* s1, double* s2, F part) {
  std::fill(s1, s1 + C, 0.0);
  std::fill(s2, s2 + C, 0.0);
  if (nt <= 1) {
    part(int64_t{0}, rows, s1, s2);
    return;
  }
  std::vector<double> buf(static_cast<size_t>(2 * C * nt), 0.0);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t b = rows * t / T, e = rows * (t + 1) / T;
    if (b < e) part(b, e, buf.data() + 2 * C * t, buf.data() + 2 * C * t + C);
  }
#else
  part(int64_t{0}, rows, buf.data(), buf.data() + C);
#endif
  for (int t = 0; t < nt; ++t)
    for (int64_t c = 0; c < C; ++c) {
      s1[c] += buf[2 * C * t + c];
      s2[c] += buf[2 * C * t + C + c];
    }
}

template <class F>
void rows_parallel(int64_t rows, int nt, F f) {
  ops_detail::parallel_range(rows, nt, [&](int64_t b, int64_t e) { f(b, e); }, 1);
}

struct Stats {
  std::vector<double> s1, s2;
  std::vector<float> shift;
  explicit Stats(int64_t C) : s1(C), s2(C), shift(C) {}
};

// Mean and 1/sqrt(var + eps) of each group of one example (rows x C values).
void example_stats(const float* x, int64_t rows, int64_t C, int64_t G, float eps, int nt, Stats& st,
                   double* mean, double* inv) {
  const BnKernels& k = bn_kernels();
  std::copy(x, x + C, st.shift.begin());  // around the first pixel: no cancellation
  channel_sums(rows, C, nt, st.s1.data(), st.s2.data(),
               [&](int64_t b, int64_t e, double* a1, double* a2) {
                 k.stats_sums(x, b, e, C, st.shift.data(), a1, a2);
               });
  const int64_t cg = C / G;
  const double M = static_cast<double>(rows * cg);
  for (int64_t g = 0; g < G; ++g) {
    double sx = 0.0;
    for (int64_t c = g * cg; c < (g + 1) * cg; ++c) sx += st.s1[c] + rows * double(st.shift[c]);
    const double m = sx / M;
    // sum (x - m)^2 = s2 + 2 (shift - m) s1 + rows (shift - m)^2, per channel
    double ss = 0.0;
    for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
      const double d = double(st.shift[c]) - m;
      ss += st.s2[c] + 2.0 * d * st.s1[c] + rows * d * d;
    }
    const double var = std::max(ss / M, 0.0);
    mean[g] = m;
    inv[g] = 1.0 / std::sqrt(var + double(eps));
  }
}

// Threads per example (nt_in) and across examples (nt_out).
void split_threads(int64_t n, int64_t count, double bytes_per_value, int* nt_out, int* nt_in) {
  const int nt = std::max(1, ops_detail::threads_for_bytes(bytes_per_value * n * count));
  if (n >= nt) {
    *nt_out = nt;
    *nt_in = 1;
  } else {
    *nt_out = 1;
    *nt_in = nt;
  }
}

// f(i, t) for examples i in [0, n) on nt threads (t: the thread's slot).
template <class F>
void examples_parallel(int64_t n, int nt, F f) {
  if (nt <= 1) {
    for (int64_t i = 0; i < n; ++i) f(i, 0);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) f(i, t);
  }
#else
  for (int64_t i = 0; i < n; ++i) f(i, 0);
#endif
}

}  // namespace

void group_norm_forward(const float* x, const float* gamma, const float* beta, float* y, int64_t n,
                        int64_t count, int64_t C, int64_t groups, float eps, float* mean,
                        float* inv_std) {
  check(count, C, groups);
  if (!(eps > 0.0f)) throw std::invalid_argument("epsilon: must be > 0");
  if (n <= 0) return;
  const BnKernels& k = bn_kernels();
  const int64_t rows = count / C, cg = C / groups;
  int nt_out, nt_in;
  split_threads(n, count, 12.0, &nt_out, &nt_in);
  examples_parallel(n, nt_out, [&](int64_t i, int) {
    const float* xi = x + i * count;
    Stats st(C);
    std::vector<double> m(groups), inv(groups);
    example_stats(xi, rows, C, groups, eps, nt_in, st, m.data(), inv.data());
    std::vector<float> mc(C), a(C), kk(C);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t g = c / cg;
      mc[c] = static_cast<float>(m[g]);
      a[c] = static_cast<float>((gamma ? gamma[c] : 1.0) * inv[g]);
      kk[c] = static_cast<float>(beta ? beta[c] : 0.0);
    }
    for (int64_t g = 0; g < groups; ++g) {
      if (mean) mean[i * groups + g] = static_cast<float>(m[g]);
      if (inv_std) inv_std[i * groups + g] = static_cast<float>(inv[g]);
    }
    float* yi = y + i * count;
    rows_parallel(rows, nt_in, [&](int64_t b, int64_t e) {
      k.affine_centred(xi, yi, b, e, C, mc.data(), a.data(), kk.data());
    });
  });
}

void group_norm_backward(const float* dy, const float* x, const float* gamma, const float* mean,
                         const float* inv_std, float* dx, float* dgamma, float* dbeta, int64_t n,
                         int64_t count, int64_t C, int64_t groups, float eps) {
  check(count, C, groups);
  if ((mean == nullptr) != (inv_std == nullptr))
    throw std::invalid_argument("group norm: give both mean and inv_std, or neither");
  if (!mean && !(eps > 0.0f)) throw std::invalid_argument("epsilon: must be > 0");
  const bool sums = dgamma || dbeta;
  if (n <= 0) {
    if (dgamma) std::fill(dgamma, dgamma + C, 0.0f);
    if (dbeta) std::fill(dbeta, dbeta + C, 0.0f);
    return;
  }
  const BnKernels& k = bn_kernels();
  const int64_t rows = count / C, cg = C / groups;
  int nt_out, nt_in;
  split_threads(n, count, 16.0, &nt_out, &nt_in);
  // per thread slot: dgamma and dbeta partial sums
  std::vector<double> part(static_cast<size_t>(2 * C * nt_out), 0.0);
  examples_parallel(n, nt_out, [&](int64_t i, int t) {
    const float* xi = x + i * count;
    const float* gi = dy + i * count;
    std::vector<double> m(groups), inv(groups);
    Stats st(C);
    if (mean) {
      for (int64_t g = 0; g < groups; ++g) {
        m[g] = mean[i * groups + g];
        inv[g] = inv_std[i * groups + g];
      }
    } else {
      example_stats(xi, rows, C, groups, eps, nt_in, st, m.data(), inv.data());
    }
    std::vector<float> mc(C);
    for (int64_t c = 0; c < C; ++c) mc[c] = static_cast<float>(m[c / cg]);
    // sdy = sum dy, sdyx = sum dy (x - mean) per channel
    channel_sums(rows, C, nt_in, st.s1.data(), st.s2.data(),
                 [&](int64_t b, int64_t e, double* a1, double* a2) {
                   k.grad_sums(gi, xi, b, e, C, mc.data(), a1, a2);
                 });
    const double* sdy = st.s1.data();
    const double* sdyx = st.s2.data();
    if (sums) {
      double* pg = part.data() + 2 * C * t;
      for (int64_t c = 0; c < C; ++c) {
        pg[c] += sdyx[c] * inv[c / cg];
        pg[C + c] += sdy[c];
      }
    }
    if (!dx) return;
    const double M = static_cast<double>(rows * cg);
    std::vector<float> a(C), b(C), kk(C);
    for (int64_t g = 0; g < groups; ++g) {
      double A = 0.0, B = 0.0;
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
        const double gm = gamma ? gamma[c] : 1.0;
        A += gm * sdy[c];
        B += gm * sdyx[c];
      }
      const double is = inv[g];
      B *= is;  // sum gamma dy xhat
      // dx = is (gamma dy - A/M - xhat B/M), xhat = (x - m) is
      const double bx = -is * is * B / M;
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
        a[c] = static_cast<float>((gamma ? gamma[c] : 1.0) * is);
        b[c] = static_cast<float>(bx);
        kk[c] = static_cast<float>(-is * A / M - bx * m[g]);
      }
    }
    float* di = dx + i * count;
    rows_parallel(rows, nt_in, [&](int64_t r0, int64_t r1) {
      k.affine2(gi, xi, di, r0, r1, C, a.data(), b.data(), kk.data());
    });
  });
  if (!sums) return;
  for (int64_t c = 0; c < C; ++c) {
    double g = 0.0, bb = 0.0;
    for (int t = 0; t < nt_out; ++t) {
      g += part[2 * C * t + c];
      bb += part[2 * C * t + C + c];
    }
    if (dgamma) dgamma[c] = static_cast<float>(g);
    if (dbeta) dbeta[c] = static_cast<float>(bb);
  }
}

}  // namespace cnnx
