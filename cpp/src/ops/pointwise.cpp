// The extra elementwise activations, log-softmax and PReLU (cnnx/activation.h):
// dispatch to the active ISA's loops (pointwise_impl.h) and thread splits.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "cnnx/activation.h"
#include "cnnx/cpu.h"
#include "common/scratch.h"
#include "ops/ops_common.h"

#include "common/vec_scalar.h"
#define CNNX_PW_NS pointwise_generic
#define CNNX_PW_VEC ::cnnx::vec_scalar::V
#include "ops/pointwise_impl.h"
#undef CNNX_PW_NS
#undef CNNX_PW_VEC

namespace cnnx {

const PointwiseKernels& pointwise_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return pointwise_avx512::kernels;
    case Isa::avx2: return pointwise_avx2::kernels;
    default: return pointwise_generic::kernels;
  }
}

using ops_detail::parallel_range;
using ops_detail::threads_for_bytes;

namespace {

void check_kind(Pointwise f) {
  const int i = static_cast<int>(f);
  if (i < 0 || i >= kPointwiseCount) throw std::invalid_argument("activation: unknown kind");
}

// Threads for a pass over n elements: memory-bound for most functions, but
// the erf / exp / log ones cost ~20-40 flops an element.
int threads_for(Pointwise f, int64_t n, double bytes_per_elem) {
  double flops = 0.0;
  switch (f) {
    case Pointwise::hardswish:
    case Pointwise::hardsigmoid:
    case Pointwise::clip:
    case Pointwise::softsign: break;
    default: flops = 30.0; break;
  }
  return std::max(threads_for_bytes(bytes_per_elem * n), threads_for_flops(flops * n));
}

}  // namespace

void pointwise_forward(Pointwise f, const float* x, float* y, int64_t n, float a, float b) {
  check_kind(f);
  const PointwiseKernels& k = pointwise_kernels();
  parallel_range(n, threads_for(f, n, 8.0),
                 [=, &k](int64_t lo, int64_t hi) { k.forward(f, x + lo, y + lo, hi - lo, a, b); });
}

void pointwise_backward(Pointwise f, const float* dy, const float* x, float* dx, int64_t n, float a,
                        float b) {
  check_kind(f);
  const PointwiseKernels& k = pointwise_kernels();
  parallel_range(n, threads_for(f, n, 12.0), [=, &k](int64_t lo, int64_t hi) {
    k.backward(f, dy + lo, x + lo, dx + lo, hi - lo, a, b);
  });
}

namespace {

// Along an axis with inner > 1: each k-slice is a contiguous run of `inner`.
void log_softmax_strided(const float* x, float* y, int64_t K, int64_t inner) {
  float* m = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(inner));
  float* s = thread_scratch(ScratchSlot::op_1, static_cast<size_t>(inner));
  for (int64_t i = 0; i < inner; ++i) {
    m[i] = -std::numeric_limits<float>::infinity();
    s[i] = 0.0f;
  }
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < inner; ++i) m[i] = std::max(m[i], x[k * inner + i]);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < inner; ++i) s[i] += std::exp(x[k * inner + i] - m[i]);
  for (int64_t i = 0; i < inner; ++i) s[i] = m[i] + std::log(s[i]);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < inner; ++i) y[k * inner + i] = x[k * inner + i] - s[i];
}

}  // namespace

void log_softmax_forward(const float* x, float* y, int64_t outer, int64_t K, int64_t inner) {
  if (outer <= 0 || K <= 0 || inner <= 0) return;
  const int nt = threads_for_flops(25.0 * outer * K * inner);
  parallel_range(
      outer, outer > 1 ? nt : 1,
      [=](int64_t b, int64_t e) {
        if (inner == 1) {
          pointwise_kernels().log_softmax_rows(x + b * K, y + b * K, e - b, K);
        } else {
          for (int64_t o = b; o < e; ++o)
            log_softmax_strided(x + o * K * inner, y + o * K * inner, K, inner);
        }
      },
      1);
}

void log_softmax_backward(const float* dy, const float* y, float* dx, int64_t outer, int64_t K,
                          int64_t inner) {
  if (outer <= 0 || K <= 0 || inner <= 0) return;
  const int nt = threads_for_flops(20.0 * outer * K * inner);
  if (inner == 1) {
    parallel_range(
        outer, outer > 1 ? nt : 1,
        [=](int64_t b, int64_t e) {
          pointwise_kernels().log_softmax_backward_rows(dy + b * K, y + b * K, dx + b * K, e - b,
                                                        K);
        },
        1);
    return;
  }
  parallel_range(
      outer, outer > 1 ? nt : 1,
      [=](int64_t b, int64_t e) {
        float* s = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(inner));
        for (int64_t o = b; o < e; ++o) {
          const int64_t base = o * K * inner;
          for (int64_t i = 0; i < inner; ++i) s[i] = 0.0f;
          for (int64_t k = 0; k < K; ++k)
            for (int64_t i = 0; i < inner; ++i) s[i] += dy[base + k * inner + i];
          for (int64_t k = 0; k < K; ++k)
            for (int64_t i = 0; i < inner; ++i) {
              const int64_t j = base + k * inner + i;
              dx[j] = dy[j] - std::exp(y[j]) * s[i];
            }
        }
      },
      1);
}

void prelu_forward(const float* x, const float* slope, float* y, int64_t rows, int64_t P) {
  if (rows <= 0 || P <= 0) return;
  const PointwiseKernels& k = pointwise_kernels();
  if (P == 1) {  // one flat run
    parallel_range(rows, threads_for_bytes(8.0 * rows),
                   [=, &k](int64_t b, int64_t e) { k.prelu_forward(x, slope, y, b, e, 1); });
    return;
  }
  parallel_range(
      rows, threads_for_bytes(8.0 * rows * P),
      [=, &k](int64_t b, int64_t e) { k.prelu_forward(x, slope, y, b, e, P); }, 1);
}

void prelu_backward(const float* dy, const float* x, const float* slope, float* dx, float* dslope,
                    int64_t rows, int64_t P) {
  if (rows <= 0 || P <= 0) {
    if (dslope)
      for (int64_t p = 0; p < P; ++p) dslope[p] = 0.0f;
    return;
  }
  const PointwiseKernels& k = pointwise_kernels();
  // P == 1: the whole array is one run of rows * 1 values
  const int nt = std::max(1, threads_for_bytes(12.0 * rows * P));
  const int slots = nt;
  std::vector<double> part(dslope ? static_cast<size_t>(P) * slots : 0, 0.0);
  const int64_t align = P == 1 ? 16 : 1;
  if (nt <= 1) {
    k.prelu_backward(dy, x, slope, dx, dslope ? part.data() : nullptr, 0, rows, P);
  } else {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
      const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t units = (rows + align - 1) / align;
      const int64_t per = units / T, extra = units % T;
      const int64_t ub = t * per + std::min<int64_t>(t, extra);
      const int64_t ue = ub + per + (t < extra ? 1 : 0);
      const int64_t b = std::min(rows, ub * align), e = std::min(rows, ue * align);
      if (b < e)
        k.prelu_backward(dy, x, slope, dx, dslope ? part.data() + P * t : nullptr, b, e, P);
    }
#else
    k.prelu_backward(dy, x, slope, dx, dslope ? part.data() : nullptr, 0, rows, P);
#endif
  }
  if (!dslope) return;
  for (int64_t p = 0; p < P; ++p) {
    double s = 0.0;
    for (int t = 0; t < slots; ++t) s += part[static_cast<size_t>(P) * t + p];
    dslope[p] = static_cast<float>(s);
  }
}

}  // namespace cnnx
