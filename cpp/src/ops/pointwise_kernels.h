// The per-ISA loops of the extra elementwise activations, log-softmax rows
// and PReLU (see pointwise_impl.h), and their dispatch.
#pragma once
#include <cstdint>

#include "cnnx/activation.h"

namespace cnnx {

struct PointwiseKernels {
  void (*forward)(Pointwise f, const float* x, float* y, int64_t n, float a, float b);
  void (*backward)(Pointwise f, const float* dy, const float* x, float* dx, int64_t n, float a,
                   float b);
  // log-softmax of `rows` contiguous rows of K values
  void (*log_softmax_rows)(const float* x, float* y, int64_t rows, int64_t K);
  // rows [r0, r1) of P values
  void (*prelu_forward)(const float* x, const float* slope, float* y, int64_t r0, int64_t r1,
                        int64_t P);
  // dx (may be null) for rows [r0, r1); if ds: ds[p] += sum over those rows of
  // dy * x where x <= 0 (float blocks of rows, summed in double).
  void (*prelu_backward)(const float* dy, const float* x, const float* slope, float* dx, double* ds,
                         int64_t r0, int64_t r1, int64_t P);
  // dx = dy - exp(y) * sum(dy) over `rows` contiguous rows of K values
  void (*log_softmax_backward_rows)(const float* dy, const float* y, float* dx, int64_t rows,
                                    int64_t K);
};

namespace pointwise_generic {
extern const PointwiseKernels kernels;
}
namespace pointwise_avx2 {
extern const PointwiseKernels kernels;
}
namespace pointwise_avx512 {
extern const PointwiseKernels kernels;
}

const PointwiseKernels& pointwise_kernels();

}  // namespace cnnx
