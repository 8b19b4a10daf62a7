// The per-ISA loops of layer normalisation over the last axis (see
// layer_norm_impl.h).
#pragma once
#include <cstdint>

namespace cnnx {

struct LayerNormKernels {
  // rows [r0, r1) of C values; gamma / beta never null here (the driver
  // passes ones / zeros); mean / inv_std per row may be null.
  void (*forward)(const float* x, const float* gamma, const float* beta, float* y, int64_t r0,
                  int64_t r1, int64_t C, float eps, float* mean, float* inv_std);
  // dx may be null; if dg: dg[c] += sum dy*xhat, db[c] += sum dy over the
  // rows (float blocks of rows, scratch of 2*C floats, added in double).
  // mean / inv_std null: recomputed per row.
  void (*backward)(const float* dy, const float* x, const float* gamma, const float* mean,
                   const float* inv_std, float* dx, double* dg, double* db, int64_t r0, int64_t r1,
                   int64_t C, float eps, float* scratch);
};

namespace layer_norm_generic {
extern const LayerNormKernels kernels;
}
namespace layer_norm_avx2 {
extern const LayerNormKernels kernels;
}
namespace layer_norm_avx512 {
extern const LayerNormKernels kernels;
}

}  // namespace cnnx
