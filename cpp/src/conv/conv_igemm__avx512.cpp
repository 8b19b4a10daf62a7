// AVX-512 instances of the indirect-GEMM convolution tiles.
#include "conv/conv_igemm_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
}  // namespace

IgemmKernel igemm_kernel_avx512(int64_t nout) {
  if (nout <= 8) return {igemm_tiles<v8, 8, 1, 24>, 24, 8};
  if (nout <= 16) return {igemm_tiles<v16, 16, 1, 24>, 24, 16};
  if (nout <= 32) return {igemm_tiles<v16, 16, 2, 12>, 12, 32};
  return {igemm_tiles<v16, 16, 4, 6>, 6, 64};
}

}  // namespace conv_detail
}  // namespace cnnx
