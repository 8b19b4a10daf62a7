// The per-ISA loops of local response normalisation (see lrn_impl.h).
#pragma once
#include <cstdint>

namespace cnnx {

struct LrnParams {
  int64_t C, size;
  float alpha, beta, bias;
};

struct LrnKernels {
  // rows [r0, r1) of C channels; scratch holds 3 * (C + size) floats
  void (*forward)(const float* x, float* y, int64_t r0, int64_t r1, const LrnParams& p,
                  float* scratch);
  void (*backward)(const float* dy, const float* x, float* dx, int64_t r0, int64_t r1,
                   const LrnParams& p, float* scratch);
};

namespace lrn_generic {
extern const LrnKernels kernels;
}
namespace lrn_avx2 {
extern const LrnKernels kernels;
}
namespace lrn_avx512 {
extern const LrnKernels kernels;
}

}  // namespace cnnx
