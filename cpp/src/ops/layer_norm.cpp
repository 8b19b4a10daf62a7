// Layer normalisation over the last axis (cnnx/norm.h): dispatch, thread
// split over rows and the per-thread parameter-gradient sums.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "cnnx/cpu.h"
#include "cnnx/norm.h"
#include "common/scratch.h"
#include "ops/ops_common.h"

#include "common/vec_scalar.h"
#define CNNX_LN_NS layer_norm_generic
#define CNNX_LN_VEC ::cnnx::vec_scalar::V
#include "ops/layer_norm_impl.h"
#undef CNNX_LN_NS
#undef CNNX_LN_VEC

namespace cnnx {

namespace {

const LayerNormKernels& ln_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return layer_norm_avx512::kernels;
    case Isa::avx2: return layer_norm_avx2::kernels;
    default: return layer_norm_generic::kernels;
  }
}

void check(int64_t C, float eps) {
  if (C < 1) throw std::invalid_argument("x: expected at least one value per row");
  if (!(eps > 0.0f)) throw std::invalid_argument("epsilon: must be > 0");
}

// gamma / beta, or ones / zeros
struct Affine {
  std::vector<float> ones, zeros;
  const float* g;
  const float* b;
  Affine(const float* gamma, const float* beta, int64_t C) {
    if (!gamma) ones.assign(static_cast<size_t>(C), 1.0f);
    if (!beta) zeros.assign(static_cast<size_t>(C), 0.0f);
    g = gamma ? gamma : ones.data();
    b = beta ? beta : zeros.data();
  }
};

}  // namespace

void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        int64_t rows, int64_t C, float eps, float* mean, float* inv_std) {
  check(C, eps);
  if (rows <= 0) return;
  const Affine aff(gamma, beta, C);
  const LayerNormKernels& k = ln_kernels();
  const int nt = ops_detail::threads_for_bytes(8.0 * rows * C);
  ops_detail::parallel_range(
      rows, nt,
      [&](int64_t b, int64_t e) { k.forward(x, aff.g, aff.b, y, b, e, C, eps, mean, inv_std); }, 1);
}

void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* mean,
                         const float* inv_std, float* dx, float* dgamma, float* dbeta, int64_t rows,
                         int64_t C, float eps) {
  check(C, eps);
  if ((mean == nullptr) != (inv_std == nullptr))
    throw std::invalid_argument("layer norm: give both mean and inv_std, or neither");
  const bool sums = dgamma || dbeta;
  if (rows <= 0) {
    if (dgamma) std::fill(dgamma, dgamma + C, 0.0f);
    if (dbeta) std::fill(dbeta, dbeta + C, 0.0f);
    return;
  }
  const Affine aff(gamma, nullptr, C);
  const LayerNormKernels& k = ln_kernels();
  const int nt = std::max(1, ops_detail::threads_for_bytes(12.0 * rows * C));
  std::vector<double> part(sums ? static_cast<size_t>(2 * C * nt) : 0, 0.0);
  auto run = [&](int64_t b, int64_t e, int t) {
    float* scratch = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(2 * C));
    double* dg = sums ? part.data() + 2 * C * t : nullptr;
    k.backward(dy, x, aff.g, mean, inv_std, dx, dg, dg ? dg + C : nullptr, b, e, C, eps, scratch);
  };
  if (nt <= 1) {
    run(0, rows, 0);
  } else {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
      const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t b = rows * t / T, e = rows * (t + 1) / T;
      if (b < e) run(b, e, static_cast<int>(t));
    }
#else
    run(0, rows, 0);
#endif
  }
  if (!sums) return;
  for (int64_t c = 0; c < C; ++c) {
    double g = 0.0, b = 0.0;
    for (int t = 0; t < nt; ++t) {
      g += part[2 * C * t + c];
      b += part[2 * C * t + C + c];
    }
    if (dgamma) dgamma[c] = static_cast<float>(g);
    if (dbeta) dbeta[c] = static_cast<float>(b);
  }
}

}  // namespace cnnx
