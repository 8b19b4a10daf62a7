// AVX2+FMA instances of the indirect-GEMM convolution tiles (16 ymm registers).
#include "conv/conv_igemm_impl.h"

namespace cnnx {
namespace conv_detail {
namespace {
typedef float v8 __attribute__((vector_size(32)));
}  // namespace

IgemmKernel igemm_kernel_avx2(int64_t nout) {
  if (nout <= 8) return {igemm_tiles<v8, 8, 1, 12>, 12, 8};
  return {igemm_tiles<v8, 8, 2, 6>, 6, 16};
}

}  // namespace conv_detail
}  // namespace cnnx
