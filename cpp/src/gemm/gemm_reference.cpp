// The plain triple loop: the oracle that every GEMM path is tested against.
#include <algorithm>

#include "cnnx/gemm.h"

namespace cnnx {

void sgemm_reference(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                     int64_t ldc, const GemmEpilogue& ep) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = ta == Trans::N ? A[i * lda + k] : A[k * lda + i];
        const float b = tb == Trans::N ? B[k * ldb + j] : B[j * ldb + k];
        s += static_cast<double>(a) * b;
      }
      float v = alpha * static_cast<float>(s);
      if (beta != 0.0f) v += beta * C[i * ldc + j];
      if (ep.bias) v += ep.bias[j];
      if (ep.act == Activation::relu) v = std::max(v, 0.0f);
      C[i * ldc + j] = v;
    }
  }
}

}  // namespace cnnx
