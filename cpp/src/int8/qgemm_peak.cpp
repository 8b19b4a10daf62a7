// The int8 dot-product peak of the active kernel's instruction, measured the
// way the FMA peak is (cpp/src/bench/fma_peak.cpp): benchmarks report the
// int8 GEMM's efficiency against it, measured in the same run. The best of a
// many short bursts is kept, so a burst that lost its core does not count.
#include <algorithm>
#include <chrono>

#include "int8/qgemm_ukernel.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {

int32_t vnni_chains_zmm__avx512vnni(int64_t iters);
int32_t vnni_chains_ymm_evex__avx512vnni(int64_t iters);
int32_t vnni_chains_ymm__avxvnni(int64_t iters);
int32_t maddwd_chains_ymm__avx2(int64_t iters);

double measure_qgemm_peak_gops(int threads, int64_t iters) {
  const QGemmConfig& g = qgemm_config();
  int32_t (*chains)(int64_t) = nullptr;
  double ops_per_iter = 0;  // chains x lanes x MACs per lane x 2
  if (&g == &kQGemmGeneric) return 0.0;
  if (&g == &kQGemmAvx2) {
    chains = maddwd_chains_ymm__avx2;
    ops_per_iter = 10.0 * 8 * 2 * 2;
  } else if (&g == &kQGemmAvxVnni) {
    chains = vnni_chains_ymm__avxvnni;
    ops_per_iter = 12.0 * 8 * 4 * 2;
  } else if (&g == &kQGemmAvxVnniEvex) {
    chains = vnni_chains_ymm_evex__avx512vnni;
    ops_per_iter = 12.0 * 8 * 4 * 2;
  } else {
    chains = vnni_chains_zmm__avx512vnni;
    ops_per_iter = 12.0 * 16 * 4 * 2;
  }
  volatile int32_t sink = 0;
  auto run = [&](int64_t n) { sink = chains(n); };
  run(iters / 10 + 1);  // warm up (clock ramp, page-in)
  // Short bursts (about a millisecond each) and the fastest one: on a busy
  // machine a long run is always interrupted, a short one often is not.
  const int64_t burst = std::min<int64_t>(std::max<int64_t>(1, iters), 250000);
  const int64_t bursts = std::max<int64_t>(5, iters / burst);
  double best = 1e30;
  for (int64_t r = 0; r < bursts; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
    run(burst);
#else
    threads = 1;
    run(burst);
#endif
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  (void)sink;
  return ops_per_iter * static_cast<double>(burst) * threads / best * 1e-9;
}

}  // namespace cnnx
