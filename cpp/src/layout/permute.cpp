// Axis permutation of N tensors (Keras's Permute, ONNX Transpose; see
// cnnx/layout.h). The two innermost moves decide the speed: when the last
// axis stays last, rows are copied whole; otherwise the output's last axis
// and the axis that is contiguous in the input form a 2-D block transposed
// at once, and an odometer walks the other axes.
#include <algorithm>
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
  int p = -1;                            // the output axis reading x's last axis
  for (int a = 0; a < rank; ++a)
    if (perm[a] == last) p = a;
  // Runs: the axis before the last one loops inside too (short runs of a
  // few channels would otherwise pay the index decoding per run).
  const int run_axis = rows && rank >= 2 ? rank - 2 : -1;
  // Short runs whose neighbours in x belong to another output axis q (an
  // H <-> W swap of pixels): tiles of 8 x 8 runs, so that reads and writes
  // both stay within a few cache lines' streams (PyTorch's own trick).
  int q = -1;
  if (run_axis >= 0 && od[last] < 256)
    for (int a = 0; a < rank; ++a)
      if (perm[a] == rank - 2 && a != run_axis) q = a;
  // outer axes: every output axis but the inner one(s)
  int outer[8], n_outer = 0;
  for (int a = 0; a < rank; ++a)
    if (a != last && a != run_axis && a != q && (rows || a != p)) outer[n_outer++] = a;
  int64_t count = N;
  for (int i = 0; i < n_outer; ++i) count *= od[outer[i]];
  const LayoutKernels& k = layout_kernels();
  const int nt = ops_detail::threads_for_bytes(8.0 * static_cast<double>(N * total));
  const bool stream = stream_stores(4.0 * static_cast<double>(N * total));
  ops_detail::parallel_range(
      count, nt,
      [&](int64_t b, int64_t e) {
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
          if (q >= 0) {
            constexpr int64_t T = 8;
            const int64_t nq = od[q], nr = od[run_axis], run = od[last];
            for (int64_t q0 = 0; q0 < nq; q0 += T)
              for (int64_t r0 = 0; r0 < nr; r0 += T)
                for (int64_t a = q0; a < std::min(nq, q0 + T); ++a)
                  for (int64_t c = r0; c < std::min(nr, r0 + T); ++c) {
                    const float* src = x + xo + a * os[q] + c * os[run_axis];
                    float* dst = y + yo + a * ys[q] + c * run;
                    if (stream)
                      k.copy_nt(src, dst, run);
                    else
                      k.copy(src, dst, run, false);
                  }
          } else if (rows && run_axis < 0)
            k.copy(x + xo, y + yo, od[last], stream);
          else if (rows)  // the output's rows are contiguous: y advances by one run
            for (int64_t a = 0; a < od[run_axis]; ++a)
              k.copy(x + xo + a * os[run_axis], y + yo + a * od[last], od[last], stream);
          else  // y[a_p*ys[p] + a_last] = x[a_p + a_last*os[last]]
            k.transpose_block(x + xo, os[last], od[last], od[p], y + yo, ys[p]);
        }
        if (stream) k.fence();
      },
      1);
}

}  // namespace cnnx
