// The contract between the GEMM driver and its per-ISA micro-kernels.
#pragma once
#include <cstdint>

#include "cnnx/cpu.h"
#include "cnnx/gemm.h"

namespace cnnx {

struct UkernelArgs {
  float alpha;
  float beta;         // 0: overwrite C (never read it), 1: accumulate, else scale
  const float* bias;  // already offset to this tile's first column; null for none
  Activation act;     // applied after bias
};

// c[0:m, 0:n] (m <= MR, n <= NR, row stride ldc) =
//   act(alpha * a_panel * b_panel + beta * c + bias)
// a: packed MR x kc micro-panel (for each k, MR values)
// b: packed kc x NR micro-panel (for each k, NR values)
// Partial tiles (m < MR or n < NR) use masked stores, not a scalar path.
using GemmUkernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             int m, int n, const UkernelArgs& args);

struct GemmConfig {
  const char* name;
  int mr, nr;
  int mc, kc, nc;  // mc % mr == 0, nc % nr == 0
  GemmUkernel ukernel;
};

// Constant data, defined in the ISA's own file: reading it runs no ISA code.
extern const GemmConfig kGemmGeneric;
extern const GemmConfig kGemmAvx2;
extern const GemmConfig kGemmAvx512;

// The configuration for active_isa().
const GemmConfig& gemm_config();
const GemmConfig& gemm_config_for(Isa isa);

}  // namespace cnnx
