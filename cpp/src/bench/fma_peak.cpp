// Measures the machine's FMA peak (GFLOP/s) with independent FMA chains on
// the active ISA, on `threads` threads at once. Benchmarks report GEMM
// efficiency against this figure, measured in the same run.
#include <chrono>
#include <vector>

#include "cnnx/cpu.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {

float fma_chains__avx512(int64_t iters);
float fma_chains__avx2(int64_t iters);

double measure_fma_peak_gflops(int threads, int64_t iters) {
  const Isa isa = active_isa();
  if (isa == Isa::generic) return 0.0;
  const double flops_per_iter = isa == Isa::avx512 ? 24.0 * 16 * 2 : 12.0 * 8 * 2;
  volatile float sink = 0.0f;
  auto run = [&] {
    sink = isa == Isa::avx512 ? fma_chains__avx512(iters) : fma_chains__avx2(iters);
  };
  run();  // warm up (clock ramp, page-in)
  const auto t0 = std::chrono::steady_clock::now();
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
  run();
#else
  threads = 1;
  run();
#endif
  const auto t1 = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(t1 - t0).count();
  (void)sink;
  return flops_per_iter * static_cast<double>(iters) * threads / s * 1e-9;
}

}  // namespace cnnx
