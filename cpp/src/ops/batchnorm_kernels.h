// The per-ISA batch-norm loops (see batchnorm_impl.h) and their dispatch.
#pragma once
#include <cstdint>

namespace cnnx {

struct BnKernels {
  void (*stats_sums)(const float* x, int64_t r0, int64_t r1, int64_t C, const float* shift,
                     double* s1, double* s2);
  void (*grad_sums)(const float* dy, const float* x, int64_t r0, int64_t r1, int64_t C,
                    const float* mean, double* sdy, double* sdyx);
  void (*affine)(const float* x, float* y, int64_t r0, int64_t r1, int64_t C, const float* a,
                 const float* k);
  void (*affine2)(const float* dy, const float* x, float* dx, int64_t r0, int64_t r1, int64_t C,
                  const float* a, const float* b, const float* k);
  // y = (x - m[c]) * a[c] + k[c]: no cancellation when |mean| >> std (group norm)
  void (*affine_centred)(const float* x, float* y, int64_t r0, int64_t r1, int64_t C,
                         const float* m, const float* a, const float* k);
};

namespace bn_generic {
extern const BnKernels kernels;
}
namespace bn_avx2 {
extern const BnKernels kernels;
}
namespace bn_avx512 {
extern const BnKernels kernels;
}

// The active ISA's loops (also used by group normalisation, group_norm.cpp).
const BnKernels& bn_kernels();

}  // namespace cnnx
