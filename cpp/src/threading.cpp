#include "cnnx/threading.h"

#include <algorithm>
#include <atomic>
#include <thread>

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace {

int default_threads() {
#ifdef CNNX_HAVE_OPENMP
  return std::max(1, omp_get_max_threads());  // honours OMP_NUM_THREADS
#else
  return 1;
#endif
}

std::atomic<int>& slot() {
  static std::atomic<int> n{default_threads()};
  return n;
}

}  // namespace

int get_num_threads() { return slot().load(std::memory_order_relaxed); }

// At most 1024 (as cnnx.set_num_threads): libgomp aborts the whole process when
// it cannot create a requested thread (e.g. after set_num_threads(1 << 30)).
void set_num_threads(int n) {
  slot().store(std::min(std::max(1, n), 1024), std::memory_order_relaxed);
}

bool have_openmp() {
#ifdef CNNX_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

int threads_for_flops(double flops) {
  // A fork/join costs a few microseconds (far more when the machine is
  // busy) against ~100 GFLOP/s per core: below ~2 MFLOP per extra thread
  // the parallel region costs more than it saves.
  const double per_thread = 2.0e6;
#ifdef CNNX_HAVE_OPENMP
  // Called from inside a parallel region (an inference plan running one
  // chunk of images per thread): the caller already owns every core.
  if (omp_in_parallel()) return 1;
#endif
  int n = get_num_threads();
  int useful = static_cast<int>(flops / per_thread);
  return std::max(1, std::min(n, useful));
}

}  // namespace cnnx
