// Portable micro-kernel: plain C++ that the compiler vectorises with the
// baseline ISA (SSE2 on x86-64). The fallback and reference for dispatch.
#include <algorithm>

#include "gemm/ukernel.h"

namespace cnnx {
namespace {

constexpr int MR = 4;
constexpr int NR = 16;

void f32_gemm_4x16__generic(int64_t kc, const float* a, int64_t a_stride, const float* b,
                            int64_t b_stride, float* c, int64_t ldc, int m, int n,
                            const UkernelArgs& args) {
  float acc[MR][NR] = {};
  // Packed A: row i of step k at a[k*MR + i]; in place: a[i*a_stride + k].
  const int64_t row_step = a_stride == 0 ? 1 : a_stride;
  const int64_t k_step = a_stride == 0 ? MR : 1;
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i * row_step];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += k_step;
    b += b_stride;
  }
  for (int i = 0; i < m; ++i) {
    float* crow = c + i * ldc;
    for (int j = 0; j < n; ++j) {
      float v = args.alpha * acc[i][j];
      if (args.beta != 0.0f) v += args.beta * crow[j];
      if (args.bias) v += args.bias[j];
      if (args.act == Activation::relu) v = std::max(v, 0.0f);
      crow[j] = v;
    }
  }
}

}  // namespace

const GemmConfig kGemmGeneric = {"f32_gemm_4x16__generic", MR, NR, 128, 256, 4096,
                                 f32_gemm_4x16__generic};

}  // namespace cnnx
