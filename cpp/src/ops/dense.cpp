// Dense (fully-connected) layer: forward and backward on the core SGEMM.
//
// Orientation: for a small batch (N rows) against a large layer the GEMM is
// faster when the weight matrix is its A operand (packed in MR-row panels)
// than when it is the wide B operand: dx = dy @ w^T is then computed as
// dx^T = w @ dy^T into a thread-local buffer and transposed (N x n_in
// floats: small next to w). Measured 2x faster for dx at 64x4096->1000.
//
// Threads: each GEMM is split into independent slabs along its larger
// output dimension, one single-threaded GEMM per thread (threads = 1), so a
// call has one fork/join instead of the GEMM driver's barriers per K block.
// Only the small operand is packed twice. This keeps dense layers fast when
// the cores are shared (a descheduled thread stalls every barrier).
#include "cnnx/dense.h"

#include <algorithm>
#include <vector>

#include "cnnx/cpu.h"
#include "common/scratch.h"
#include "ops/dense_rows.h"
#include "ops/ops_common.h"

namespace cnnx {

namespace {

// dst[c, r] = src[r, c] for src [rows, cols] (row-major), in 16x16 tiles.
void transpose(const float* src, int64_t rows, int64_t cols, float* dst) {
  const int64_t T = 16;
  const int nt = ops_detail::threads_for_bytes(8.0 * rows * cols);
  ops_detail::parallel_range(
      rows, nt,
      [&](int64_t r0, int64_t r1) {
        for (int64_t rb = r0; rb < r1; rb += T) {
          const int64_t re = std::min(r1, rb + T);
          for (int64_t cb = 0; cb < cols; cb += T) {
            const int64_t ce = std::min(cols, cb + T);
            for (int64_t c = cb; c < ce; ++c)
              for (int64_t r = rb; r < re; ++r) dst[c * rows + r] = src[r * cols + c];
          }
        }
      },
      T);
}

// The transposed orientation pays when the batch is small next to the
// layer (the extra transpose touches N * n_in floats, the GEMM N*n_in*n_out).
bool dx_transposed(int64_t N, int64_t in, int64_t out) {
  return N <= 256 && in >= 4 * N && out >= 64;
}

// C[M, N] = op(A) op(B) (+ epilogue) with the work split into nt slabs.
void gemm_slabs(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                const float* B, int64_t ldb, float* C, int64_t ldc, const GemmEpilogue& ep) {
  const int nt = threads_for_flops(2.0 * M * N * K);
  const bool split_m = M >= N;
  const int64_t len = split_m ? M : N;
  if (nt <= 1 || len < 128) {
    sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, ep);
    return;
  }
  ops_detail::parallel_range(
      len, nt,
      [&](int64_t b, int64_t e) {
        if (split_m) {
          const float* a = ta == Trans::N ? A + b * lda : A + b;
          sgemm(ta, tb, e - b, N, K, 1.0f, a, lda, B, ldb, 0.0f, C + b * ldc, ldc, ep, 1);
        } else {
          const float* bb = tb == Trans::N ? B + b : B + b * ldb;
          GemmEpilogue e2 = ep;
          if (ep.bias) e2.bias = ep.bias + b;
          sgemm(ta, tb, M, e - b, K, 1.0f, A, lda, bb, ldb, 0.0f, C + b, ldc, e2, 1);
        }
      },
      64);
}

}  // namespace

namespace {

// The unpacked few-row kernels for this ISA, or null (generic: the GEMM).
using RowsFwd = void (*)(const float*, const float*, const float*, float*, int64_t, int64_t,
                         int64_t, int64_t, int64_t, bool);
using RowsBwd = void (*)(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                         int64_t, int64_t, int64_t, int64_t, int64_t);
RowsFwd rows_forward() {
  const Isa isa = active_isa();
  return isa == Isa::avx512 ? ops_detail::dense_rows_avx512
         : isa == Isa::avx2 ? ops_detail::dense_rows_avx2
                            : nullptr;
}
RowsBwd rows_backward() {
  const Isa isa = active_isa();
  return isa == Isa::avx512 ? ops_detail::dense_rows_backward_avx512
         : isa == Isa::avx2 ? ops_detail::dense_rows_backward_avx2
                            : nullptr;
}

}  // namespace

void dense_forward(const float* x, const float* w, const float* b, float* y, int64_t N, int64_t in,
                   int64_t out, Activation act) {
  const RowsFwd rows = rows_forward();
  if (rows && N >= 1 && N <= ops_detail::kDenseRowsMax && in >= 1) {
    // A few rows: stream w in place (threads split the columns of a big layer).
    const int nt = ops_detail::threads_for_bytes(4.0 * in * out);
    ops_detail::parallel_range(
        out, out >= 128 ? nt : 1,
        [&](int64_t c0, int64_t c1) {
          rows(x, w, b, y, N, in, out, c0, c1, act == Activation::relu);
        },
        64);
    return;
  }
  if (rows && N > ops_detail::kDenseRowsMax && out <= 32 && in >= 1) {
    // A narrow layer (a classifier head): w stays in cache and the packed
    // GEMM would waste most of its 32-wide tile; four rows at a time.
    const int64_t blocks = (N + ops_detail::kDenseRowsMax - 1) / ops_detail::kDenseRowsMax;
    const int nt = threads_for_flops(2.0 * N * in * out);
    ops_detail::parallel_range(
        blocks, nt,
        [&](int64_t b0, int64_t b1) {
          for (int64_t r = b0 * ops_detail::kDenseRowsMax;
               r < std::min(N, b1 * ops_detail::kDenseRowsMax); r += ops_detail::kDenseRowsMax) {
            const int64_t m = std::min(ops_detail::kDenseRowsMax, N - r);
            rows(x + r * in, w, b, y + r * out, m, in, out, 0, out, act == Activation::relu);
          }
        },
        1);
    return;
  }
  GemmEpilogue ep;
  ep.bias = b;
  ep.act = act;
  gemm_slabs(Trans::N, Trans::N, N, out, in, x, in, w, out, y, out, ep);
}

void dense_backward(const float* dy, const float* x, const float* w, float* dx, float* dw,
                    float* db, int64_t N, int64_t in, int64_t out) {
  const RowsBwd rows = rows_backward();
  if (rows && N >= 1 && N <= ops_detail::kDenseRowsMax && in >= 1 && out >= 1) {
    // A few rows: dw is a sum of N outer products, dx N dot products per
    // input; neither needs packing. Threads split dw's columns and dx's inputs.
    const int nt = ops_detail::threads_for_bytes(8.0 * in * out);
    const int64_t cblocks = (out + 63) / 64;
    ops_detail::parallel_range(
        cblocks * 64, cblocks >= 2 ? nt : 1,
        [&](int64_t b, int64_t e) {
          rows(dy, x, w, nullptr, dw, N, in, out, b, std::min(e, out), 0, 0);
        },
        64);
    ops_detail::parallel_range(
        in, nt, [&](int64_t b, int64_t e) { rows(dy, x, w, dx, nullptr, N, in, out, 0, 0, b, e); },
        16);
    if (db) column_sums(dy, N, out, db);
    return;
  }
  if (dx) {
    if (dx_transposed(N, in, out)) {
      // dx^T[in, N] = w[in, out] @ dy[N, out]^T, then transpose into dx.
      float* t = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(in * N));
      gemm_slabs(Trans::N, Trans::T, in, N, out, w, out, dy, out, t, N, {});
      transpose(t, in, N, dx);
    } else {
      // dx[N, in] = dy[N, out] @ w[in, out]^T
      gemm_slabs(Trans::N, Trans::T, N, in, out, dy, out, w, out, dx, in, {});
    }
  }
  // dw[in, out] = x[N, in]^T @ dy[N, out]
  if (dw) gemm_slabs(Trans::T, Trans::N, in, out, N, x, in, dy, out, dw, out, {});
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
