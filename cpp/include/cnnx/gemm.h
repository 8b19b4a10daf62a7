// Single-precision GEMM, BLIS style: packed panels, cache blocking and one
// register-tiled micro-kernel per ISA (see cpp/src/gemm/).
//
//   C[M,N] = act(alpha * op(A)[M,K] * op(B)[K,N] + beta * C + bias[N])
//
// All matrices are row-major with leading dimensions. beta == 0 means C is
// write-only (it may hold NaN or garbage).
#pragma once
#include <cstdint>

namespace cnnx {

enum class Trans : char { N = 'N', T = 'T' };
enum class Activation : int { none = 0, relu = 1 };

// Applied once, after the full K reduction, in the same pass that stores C.
struct GemmEpilogue {
  const float* bias = nullptr;  // length N, added to every row; may be null
  Activation act = Activation::none;
};

// threads: 0 = decide from the problem size and get_num_threads();
//          1 = run on the calling thread (the caller is already parallel);
//          n = at most n threads.
void sgemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const GemmEpilogue& epilogue = {}, int threads = 0);

// An operand that packs itself. The driver asks it for `rows` rows starting
// at row r0 (an M index for A, an N index for B) and depth [k0, k0 + kc),
// laid out as micro-panels of `width` rows: for each panel, for each k, the
// `width` values of that panel's rows at depth k (rows past `rows` are zero).
// This is how convolution feeds image patches straight into the GEMM
// without an im2col matrix.
struct PackSource {
  void (*pack)(const void* ctx, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
               float* dst);
  const void* ctx;
  // Optional, A operand only: when set, element (r, k) is rows[r*ld + k] and
  // the driver may let the micro-kernel read full row panels in place
  // instead of packing them (a win when few B panels reuse each A block).
  const float* rows = nullptr;
  int64_t ld = 0;
};

// The general driver: op(A) and op(B) given as packers.
void sgemm_packed_sources(int64_t M, int64_t N, int64_t K, float alpha, const PackSource& A,
                          const PackSource& B, float beta, float* C, int64_t ldc,
                          const GemmEpilogue& epilogue = {}, int threads = 0);

// Ready-made packers for plain strided matrices (op(X) is rows x depth when
// X is the A operand; the B operand is described by op(B)^T, i.e. N x K).
struct StridedMatrix {
  const float* data;
  int64_t ld;
  bool transposed;  // element (r, k) is data[k*ld + r] instead of data[r*ld + k]
};
PackSource strided_source(const StridedMatrix* m);

// Plain triple loop, the test oracle.
void sgemm_reference(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                     int64_t ldc, const GemmEpilogue& epilogue = {});

// The micro-kernel in use (depends on active_isa()), for tests and benchmarks.
struct GemmKernelInfo {
  const char* name;  // e.g. "f32_gemm_14x32__avx512"
  int mr, nr;        // register tile
  int mc, kc, nc;    // cache blocks
};
GemmKernelInfo gemm_kernel_info();

}  // namespace cnnx
