// Helpers shared by the ops kernels (dense, activations, losses, norm,
// dropout, optimisers): thread budgets for streaming loops and a parallel
// range splitter. Internal to cpp/src (the ops kernels and the plans).
#pragma once
#include <algorithm>
#include <cstdint>

#include "cnnx/threading.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace ops_detail {

// Threads worth using for a memory-bound pass over `bytes` bytes: one
// thread per ~256 KB (a fork/join costs a few microseconds, about what one
// core streams in that time).
// Memory-bound loops: one core already streams several GB/s, so a second
// thread pays only past a few MB of traffic (an SGD step over the seed
// network's 63k parameters, 1 MB, stays on one thread).
inline int threads_for_bytes(double bytes) { return threads_for_flops(bytes * 0.25); }

// Calls f(begin, end) on nt threads over [0, n), chunks aligned to `align`
// elements (keeps SIMD loops on whole vectors and threads on separate cache
// lines). Serial when nt <= 1.
template <class F>
inline void parallel_range(int64_t n, int nt, F&& f, int64_t align = 16) {
  if (n <= 0) return;
#ifdef CNNX_HAVE_OPENMP
  if (nt > 1 && n > align) {
#pragma omp parallel num_threads(nt)
    {
      const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t units = (n + align - 1) / align;
      const int64_t per = units / T, extra = units % T;
      const int64_t ub = t * per + std::min<int64_t>(t, extra);
      const int64_t ue = ub + per + (t < extra ? 1 : 0);
      const int64_t b = std::min(n, ub * align), e = std::min(n, ue * align);
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  (void)nt;
  f(int64_t{0}, n);
}

}  // namespace ops_detail
}  // namespace cnnx
