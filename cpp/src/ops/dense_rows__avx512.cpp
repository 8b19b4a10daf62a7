// The few-row dense kernels on AVX-512 (columns in blocks of 64): the template in
// dense_rows_impl.h over common/vec_avx512.h.
#include "common/vec_avx512.h"
#include "ops/dense_rows.h"

namespace cnnx {
namespace ops_detail {
namespace {
#define CNNX_DENSE_ROWS_V vec_avx512::V
#include "ops/dense_rows_impl.h"
#undef CNNX_DENSE_ROWS_V
}  // namespace

void dense_rows_avx512(const float* x, const float* w, const float* b, float* y, int64_t M,
                       int64_t in, int64_t out, int64_t c0, int64_t c1, bool relu) {
  forward(x, w, b, y, M, in, out, c0, c1, relu);
}

void dense_rows_backward_avx512(const float* dy, const float* x, const float* w, float* dx,
                                float* dw, int64_t M, int64_t in, int64_t out, int64_t c0,
                                int64_t c1, int64_t k0, int64_t k1) {
  backward(dy, x, w, dx, dw, M, in, out, c0, c1, k0, k1);
}

}  // namespace ops_detail
}  // namespace cnnx
