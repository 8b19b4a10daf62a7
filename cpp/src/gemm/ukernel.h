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
// a: a_stride == 0: packed MR x kc micro-panel (for each k, MR values);
//    a_stride > 0: MR full rows read in place, row i at a + i*a_stride
//    (no packing: worth it when few B panels reuse the A block)
// b: kc x NR micro-panel, row k at b + k*b_stride (the driver packs B, so
//    b_stride == NR; other callers may pass a wider stride)
// Partial tiles (m < MR or n < NR) use masked stores, not a scalar path.
using GemmUkernel = void (*)(int64_t kc, const float* a, int64_t a_stride, const float* b,
                             int64_t b_stride, float* c, int64_t ldc, int m, int n,
                             const UkernelArgs& args);

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

// Every AVX-512 (AVX2) tile shape that is built, for measurement and tests.
extern const GemmConfig kGemmAvx512Variants[];
extern const int kGemmAvx512VariantCount;
extern const GemmConfig kGemmAvx2Variants[];
extern const int kGemmAvx2VariantCount;

// Override the micro-kernel by name (benchmarks compare tile shapes; tests
// run every variant). nullptr or "" restores the default. Returns false if no
// kernel of that name can run on this CPU.
bool set_gemm_variant(const char* name);

// The configuration for active_isa() (or the override).
const GemmConfig& gemm_config();
const GemmConfig& gemm_config_for(Isa isa);

}  // namespace cnnx
