// Dense forward for 1..kDenseRowsMax rows without packing (dense_rows__*.cpp).
#pragma once
#include <cstdint>

namespace cnnx {
namespace ops_detail {

constexpr int64_t kDenseRowsMax = 4;

// y[m, c0:c1] = act(x[m, :] @ w[:, c0:c1] + b[c0:c1]) for m < M <= kDenseRowsMax;
// x (M, in), w (in, out), y (M, out), all row-major.
void dense_rows_avx512(const float* x, const float* w, const float* b, float* y, int64_t M,
                       int64_t in, int64_t out, int64_t c0, int64_t c1, bool relu);

// For the same few rows: dw[:, c0:c1] = x^T @ dy (overwritten; c0 and c1 a
// multiple of 64, or c1 = out) and dx[:, k0:k1] = dy @ w[k0:k1, :]^T; either may be null.
void dense_rows_backward_avx512(const float* dy, const float* x, const float* w, float* dx,
                                float* dw, int64_t M, int64_t in, int64_t out, int64_t c0,
                                int64_t c1, int64_t k0, int64_t k1);

// The same two on AVX2+FMA (dense_rows__avx2.cpp).
void dense_rows_avx2(const float* x, const float* w, const float* b, float* y, int64_t M,
                     int64_t in, int64_t out, int64_t c0, int64_t c1, bool relu);
void dense_rows_backward_avx2(const float* dy, const float* x, const float* w, float* dx, float* dw,
                              int64_t M, int64_t in, int64_t out, int64_t c0, int64_t c1,
                              int64_t k0, int64_t k1);

}  // namespace ops_detail
}  // namespace cnnx
