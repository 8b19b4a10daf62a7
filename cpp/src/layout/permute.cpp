// Axis permutation of N tensors (Keras's Permute, ONNX Transpose; see
// cnnx/layout.h). The two innermost moves decide the speed: when the last
// axis stays last, rows are copied whole; otherwise the output's last axis
// and the axis that is contiguous in the input form a 2-D block transposed
// at once, and an odometer walks the other axes.
#include <cstring>
#include <stdexcept>
#include <string>

#include "cnnx/layout.h"
#include "layout/layout_kernels.h"
#include "ops/ops_common.h"

namespace cnnx {

void transpose_nd(int64_t N, int rank, const int64_t* shape, const int* perm, const float* x,
                  float* y) {
  if (rank < 1 || rank > 8) throw std::invalid_argument("perm: expected 1 to 8 axes");
  if (N < 0) throw std::invalid_argument("x: expected N >= 0");
  int seen[8] = {0};
  int64_t total = 1;
  for (int a = 0; a < rank; ++a) {
    if (perm[a] < 0 || perm[a] >= rank || seen[perm[a]]++)
      throw std::invalid_argument("perm: expected a permutation of 0.." + std::to_string(rank - 1));
    if (shape[a] < 1) throw std::invalid_argument("x: expected axes of size >= 1");
    total *= shape[a];
  }
  if (N == 0) return;
  // strides of x, and per output axis: its size and the stride it walks in x
  int64_t xs[8], od[8], os[8], ys[8];
  xs[rank - 1] = 1;
  for (int a = rank - 2; a >= 0; --a) xs[a] = xs[a + 1] * shape[a + 1];
  for (int a = 0; a < rank; ++a) {
    od[a] = shape[perm[a]];
    os[a] = xs[perm[a]];
  }
  ys[rank - 1] = 1;
  for (int a = rank - 2; a >= 0; --a) ys[a] = ys[a + 1] * od[a + 1];
  const int last = rank - 1;
  const bool rows = perm[last] == last;  // contiguous runs of od[last]
  int p = -1;                             // the output axis reading x's last axis
  for (int a = 0; a < rank; ++a)
    if (perm[a] == last) p = a;
  // outer axes: every output axis but the inner one(s)
  int outer[8], n_outer = 0;
  for (int a = 0; a < rank; ++a)
    if (a != last && (rows || a != p)) outer[n_outer++] = a;
  int64_t count = N;
  for (int i = 0; i < n_outer; ++i) count *= od[outer[i]];
  const LayoutKernels& k = layout_kernels();
  const int nt = ops_detail::threads_for_bytes(8.0 * static_cast<double>(N * total));
  ops_detail::parallel_range(count, nt, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      // decode t into (batch, outer indices), last outer axis fastest
      int64_t rest = t, xo = 0, yo = 0;
      for (int i = n_outer - 1; i >= 0; --i) {
        const int a = outer[i];
        const int64_t idx = rest % od[a];
        rest /= od[a];
        xo += idx * os[a];
        yo += idx * ys[a];
      }
      xo += rest * total;
      yo += rest * total;
      if (rows)
        std::memcpy(y + yo, x + xo, sizeof(float) * static_cast<size_t>(od[last]));
      else  // y[a_p*ys[p] + a_last] = x[a_p + a_last*os[last]]
        k.transpose_block(x + xo, os[last], od[last], od[p], y + yo, ys[p]);
    }
  }, 1);
}

}  // namespace cnnx
