// Portable micro-kernel: plain loops over the same packed layout as the
// VNNI kernels (4 k values per step), exact int32 sums and the scalar store.
#include <cstring>

#include "int8/qstore_scalar.h"

namespace cnnx {
namespace {

constexpr int MR = 4, NR = 16;

void u8s8_gemm_generic(int64_t seg_steps, int nseg, const uint8_t* const* a, int a_stride,
                       const uint8_t* b, void* c, int64_t ldc, int m, int n, const QStoreArgs& st) {
  int32_t acc[MR][NR] = {};
  for (int s = 0; s < nseg; ++s, a += a_stride) {
    for (int64_t q = 0; q < seg_steps; ++q) {
      const int8_t* bq = reinterpret_cast<const int8_t*>(b + q * NR * 4);
      for (int i = 0; i < m; ++i) {
        const uint8_t* ai = a[i] + q * 4;
        for (int j = 0; j < NR; ++j) {
          const int8_t* bj = bq + j * 4;
          acc[i][j] += ai[0] * bj[0] + ai[1] * bj[1] + ai[2] * bj[2] + ai[3] * bj[3];
        }
      }
    }
    b += seg_steps * NR * 4;
  }
  const size_t row_bytes = static_cast<size_t>(ldc) * (st.out == QOutput::u8 ? 1 : 4);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      qscalar::store(acc[i][j], j, st, static_cast<uint8_t*>(c) + i * row_bytes);
}

}  // namespace

const QGemmConfig kQGemmGeneric = {"u8s8_gemm_4x16_generic", MR, NR, 1, u8s8_gemm_generic};

}  // namespace cnnx
