// Per-ISA exp-based activation loops (see activation_impl.h) and dispatch.
#pragma once
#include <cstdint>

namespace cnnx {

struct ActKernels {
  void (*sigmoid)(const float* x, float* y, int64_t n);
  void (*tanh)(const float* x, float* y, int64_t n);
  // Softmax of `rows` contiguous rows of K values.
  void (*softmax_rows)(const float* x, float* y, int64_t rows, int64_t K);
};

namespace act_generic {
extern const ActKernels kernels;
}
namespace act_avx2 {
extern const ActKernels kernels;
}
namespace act_avx512 {
extern const ActKernels kernels;
}

const ActKernels& act_kernels();

}  // namespace cnnx
