// Thread budget for the OpenMP kernels.
#pragma once
#include <cstdint>

namespace cnnx {

// Threads a kernel may use. Starts at OMP_NUM_THREADS (or the core count).
int get_num_threads();
// n >= 1. Safe to call while other threads compute: kernels read the value
// once when they start.
void set_num_threads(int n);
// Whether the library was built with OpenMP.
bool have_openmp();

// Threads worth using for `work` units of roughly `flops` floating-point
// operations in total: a fork/join costs a few microseconds, so small jobs
// stay on one thread.
int threads_for_flops(double flops);

}  // namespace cnnx
