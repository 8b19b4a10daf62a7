// Fully-connected layer on the core SGEMM.
//
//   y[N, out] = act(x[N, in] @ w[in, out] + b[out])
//
// Backward uses transposed GEMMs on the stored operands (no transposed
// copies): dx = dy @ w^T, dw = x^T @ dy, db = column sums of dy.
#pragma once
#include <cstdint>

#include "cnnx/gemm.h"

namespace cnnx {

// b may be null; act is none or relu (fused into the GEMM's store).
void dense_forward(const float* x, const float* w, const float* b, float* y, int64_t N, int64_t in,
                   int64_t out, Activation act = Activation::none);

// Any of dx, dw, db may be null (not computed).
void dense_backward(const float* dy, const float* x, const float* w, float* dx, float* dw,
                    float* db, int64_t N, int64_t in, int64_t out);

// out[j] = sum_i a[i*cols + j] (float accumulation in blocks, double across
// blocks: accurate for long columns).
void column_sums(const float* a, int64_t rows, int64_t cols, float* out);

}  // namespace cnnx
