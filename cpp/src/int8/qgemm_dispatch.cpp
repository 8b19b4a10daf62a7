// Which int8 micro-kernel runs: the active ISA level (CNNX_ISA and
// set_active_isa still lower it) refined by the CPU's VNNI flags, or an
// override by name for tests and benchmarks.
#include <atomic>
#include <cstring>

#include "cnnx/cpu.h"
#include "int8/qgemm_ukernel.h"

namespace cnnx {
namespace {

std::atomic<const QGemmConfig*> g_override{nullptr};

const QGemmConfig& config_for(Isa isa) {
  // An AVX-512 CPU without VNNI (Skylake-X) runs the AVX2 kernel: its zmm
  // vpmaddwd form is not built.
  if (isa == Isa::avx512 && cpu_has_avx512_vnni()) return kQGemmAvx512Vnni;
  if (isa >= Isa::avx2 && cpu_has_avx_vnni()) return kQGemmAvxVnni;
  if (isa >= Isa::avx2) return kQGemmAvx2;
  return kQGemmGeneric;
}

}  // namespace

bool qgemm_config_runs_here(const QGemmConfig& g) {
  if (&g == &kQGemmGeneric) return true;
  if (&g == &kQGemmAvx2) return detected_isa() >= Isa::avx2;
  if (&g == &kQGemmAvxVnni) return detected_isa() >= Isa::avx2 && cpu_has_avx_vnni();
  // Everything else is built with AVX-512 VNNI flags.
  return detected_isa() == Isa::avx512 && cpu_has_avx512_vnni();
}

const QGemmConfig& qgemm_config() {
  const QGemmConfig* o = g_override.load(std::memory_order_relaxed);
  return o ? *o : config_for(active_isa());
}

const char* qgemm_kernel_name() { return qgemm_config().name; }

bool set_qgemm_kernel(const char* name) {
  if (!name || !*name) {
    g_override.store(nullptr);
    return true;
  }
  const QGemmConfig* fixed[] = {&kQGemmGeneric, &kQGemmAvx2, &kQGemmAvxVnni, &kQGemmAvxVnniEvex,
                                &kQGemmAvx512Vnni};
  for (const QGemmConfig* g : fixed)
    if (!std::strcmp(g->name, name)) {
      if (!qgemm_config_runs_here(*g)) return false;
      g_override.store(g);
      return true;
    }
  for (int i = 0; i < kQGemmAvx512VnniVariantCount; ++i)
    if (!std::strcmp(kQGemmAvx512VnniVariants[i].name, name)) {
      if (!qgemm_config_runs_here(kQGemmAvx512VnniVariants[i])) return false;
      g_override.store(&kQGemmAvx512VnniVariants[i]);
      return true;
    }
  return false;
}

}  // namespace cnnx
