// Batch normalisation over [rows, C] (all axes but the last), forward and
// backward. Two passes each way: a per-channel reduction (threads split the
// rows, each keeps double partial sums) and an elementwise affine pass.
#include <cmath>
#include <vector>

#include "cnnx/cpu.h"
#include "cnnx/norm.h"
#include "ops/ops_common.h"

#define CNNX_BN_NS bn_generic
#include "ops/batchnorm_impl.h"
#undef CNNX_BN_NS

namespace cnnx {

const BnKernels& bn_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return bn_avx512::kernels;
    case Isa::avx2: return bn_avx2::kernels;
    default: return bn_generic::kernels;
  }
}

namespace {

int bn_threads(int64_t rows, int64_t C) {
  return rows > 1 ? ops_detail::threads_for_bytes(8.0 * rows * C) : 1;
}

// Per-channel sums over all rows: s1, s2 (length C each, zeroed here).
template <class F>
void reduce_rows(int64_t rows, int64_t C, int nt, double* s1, double* s2, F&& part) {
  std::vector<double> buf(static_cast<size_t>(2 * C * (nt > 0 ? nt : 1)), 0.0);
  std::vector<int> used(static_cast<size_t>(nt > 0 ? nt : 1), 0);
  // Whole rows per thread; each thread writes its own slot, combined below in
  // a fixed order.
  if (nt <= 1) {
    part(int64_t{0}, rows, buf.data(), buf.data() + C);
  } else {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
      const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t per = rows / T, extra = rows % T;
      const int64_t b = t * per + std::min<int64_t>(t, extra);
      const int64_t e = b + per + (t < extra ? 1 : 0);
      double* mine = buf.data() + 2 * C * t;
      if (b < e) part(b, e, mine, mine + C);
    }
#else
    part(int64_t{0}, rows, buf.data(), buf.data() + C);
#endif
  }
  for (int64_t c = 0; c < C; ++c) s1[c] = s2[c] = 0.0;
  const int slots = nt > 0 ? nt : 1;
  for (int t = 0; t < slots; ++t)
    for (int64_t c = 0; c < C; ++c) {
      s1[c] += buf[2 * C * t + c];
      s2[c] += buf[2 * C * t + C + c];
    }
}

template <class F>
void rows_parallel(int64_t rows, int nt, F&& f) {
  ops_detail::parallel_range(rows, nt, [&](int64_t b, int64_t e) { f(b, e); }, 1);
}

}  // namespace

void batch_norm_forward_train(const float* x, const float* gamma, const float* beta, float* y,
                              int64_t rows, int64_t C, float eps, float momentum,
                              float* running_mean, float* running_var, float* save_mean,
                              float* save_inv_std) {
  if (rows <= 0 || C <= 0) return;
  const BnKernels& k = bn_kernels();
  const int nt = bn_threads(rows, C);
  // Shifted sums around the first row: var = E[(x-s)^2] - E[x-s]^2 stays
  // accurate when |mean| >> std.
  std::vector<float> shift(x, x + C);
  std::vector<double> s1(static_cast<size_t>(C)), s2(static_cast<size_t>(C));
  reduce_rows(rows, C, nt, s1.data(), s2.data(), [&](int64_t b, int64_t e, double* a1, double* a2) {
    k.stats_sums(x, b, e, C, shift.data(), a1, a2);
  });
  std::vector<float> a(static_cast<size_t>(C)), kk(static_cast<size_t>(C));
  const double n = static_cast<double>(rows);
  for (int64_t c = 0; c < C; ++c) {
    const double d = s1[c] / n;
    const double mean = shift[c] + d;
    double var = s2[c] / n - d * d;
    if (var < 0) var = 0;
    const double inv_std = 1.0 / std::sqrt(var + static_cast<double>(eps));
    save_mean[c] = static_cast<float>(mean);
    save_inv_std[c] = static_cast<float>(inv_std);
    const double g = gamma ? gamma[c] : 1.0;
    const double bt = beta ? beta[c] : 0.0;
    a[c] = static_cast<float>(g * inv_std);
    kk[c] = static_cast<float>(bt - mean * g * inv_std);
    if (running_mean)
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
    if (running_var) {
      const double unbiased = rows > 1 ? var * n / (n - 1.0) : var;
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
  }
  rows_parallel(rows, nt,
                [&](int64_t b, int64_t e) { k.affine(x, y, b, e, C, a.data(), kk.data()); });
}

void batch_norm_forward_eval(const float* x, const float* gamma, const float* beta,
                             const float* mean, const float* inv_std, float* y, int64_t rows,
                             int64_t C) {
  if (rows <= 0 || C <= 0) return;
  const BnKernels& k = bn_kernels();
  std::vector<float> a(static_cast<size_t>(C)), kk(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double g = gamma ? gamma[c] : 1.0;
    const double bt = beta ? beta[c] : 0.0;
    a[c] = static_cast<float>(g * inv_std[c]);
    kk[c] = static_cast<float>(bt - static_cast<double>(mean[c]) * g * inv_std[c]);
  }
  rows_parallel(rows, bn_threads(rows, C),
                [&](int64_t b, int64_t e) { k.affine(x, y, b, e, C, a.data(), kk.data()); });
}

void batch_norm_backward(const float* dy, const float* x, const float* gamma, const float* mean,
                         const float* inv_std, float* dx, float* dgamma, float* dbeta, int64_t rows,
                         int64_t C, bool training) {
  if (rows <= 0 || C <= 0) return;
  const BnKernels& k = bn_kernels();
  const int nt = bn_threads(rows, C);
  std::vector<double> sdy(static_cast<size_t>(C)), sdyx(static_cast<size_t>(C));
  const bool need_sums = dgamma || dbeta || (dx && training);
  if (need_sums) {
    reduce_rows(rows, C, nt, sdy.data(), sdyx.data(),
                [&](int64_t b, int64_t e, double* a1, double* a2) {
                  k.grad_sums(dy, x, b, e, C, mean, a1, a2);
                });
  }
  // sdy = sum dy, sdyx = sum dy * (x - mean); dgamma = sdyx * inv_std.
  if (dbeta)
    for (int64_t c = 0; c < C; ++c) dbeta[c] = static_cast<float>(sdy[c]);
  if (dgamma)
    for (int64_t c = 0; c < C; ++c) dgamma[c] = static_cast<float>(sdyx[c] * inv_std[c]);
  if (!dx) return;
  std::vector<float> a(static_cast<size_t>(C)), b(static_cast<size_t>(C)),
      kk(static_cast<size_t>(C));
  const double n = static_cast<double>(rows);
  for (int64_t c = 0; c < C; ++c) {
    const double g = gamma ? gamma[c] : 1.0;
    const double is = inv_std[c];
    const double ga = g * is;
    if (training) {
      // dx = ga * (dy - sdy/n - (x - mean) * is^2 * sdyx / n)
      const double bx = -ga * is * is * sdyx[c] / n;
      a[c] = static_cast<float>(ga);
      b[c] = static_cast<float>(bx);
      kk[c] = static_cast<float>(-ga * sdy[c] / n - bx * mean[c]);
    } else {
      a[c] = static_cast<float>(ga);
      b[c] = 0.0f;
      kk[c] = 0.0f;
    }
  }
  rows_parallel(rows, nt, [&](int64_t r0, int64_t r1) {
    k.affine2(dy, x, dx, r0, r1, C, a.data(), b.data(), kk.data());
  });
}

}  // namespace cnnx
