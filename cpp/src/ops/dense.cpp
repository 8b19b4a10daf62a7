// Dense (fully-connected) layer: forward and backward on the core SGEMM.
#include "cnnx/dense.h"

#include <vector>

#include "ops/ops_common.h"

namespace cnnx {

void dense_forward(const float* x, const float* w, const float* b, float* y, int64_t N,
                   int64_t in, int64_t out, Activation act) {
  GemmEpilogue ep;
  ep.bias = b;
  ep.act = act;
  sgemm(Trans::N, Trans::N, N, out, in, 1.0f, x, in, w, out, 0.0f, y, out, ep);
}

void dense_backward(const float* dy, const float* x, const float* w, float* dx, float* dw,
                    float* db, int64_t N, int64_t in, int64_t out) {
  // dx[N, in] = dy[N, out] @ w[in, out]^T
  if (dx) sgemm(Trans::N, Trans::T, N, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
  // dw[in, out] = x[N, in]^T @ dy[N, out]
  if (dw) sgemm(Trans::T, Trans::N, in, out, N, 1.0f, x, in, dy, out, 0.0f, dw, out);
  if (db) column_sums(dy, N, out, db);
}

void column_sums(const float* a, int64_t rows, int64_t cols, float* out) {
  if (cols <= 0) return;
  const int nt = ops_detail::threads_for_bytes(4.0 * rows * cols);
  // Threads split the columns, so every column is summed in the same order
  // whatever the thread count.
  ops_detail::parallel_range(cols, cols >= 64 ? nt : 1, [&](int64_t c0, int64_t c1) {
    const int64_t w = c1 - c0;
    std::vector<double> acc(static_cast<size_t>(w), 0.0);
    std::vector<float> part(static_cast<size_t>(w));
    const int64_t block = 64;
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      const int64_t r1 = std::min(rows, r0 + block);
      std::fill(part.begin(), part.end(), 0.0f);
      float* p = part.data();
      for (int64_t r = r0; r < r1; ++r) {
        const float* row = a + r * cols + c0;
        for (int64_t j = 0; j < w; ++j) p[j] += row[j];
      }
      for (int64_t j = 0; j < w; ++j) acc[j] += p[j];
    }
    for (int64_t j = 0; j < w; ++j) out[c0 + j] = static_cast<float>(acc[j]);
  });
}

}  // namespace cnnx
