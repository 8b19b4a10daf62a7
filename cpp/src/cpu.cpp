#include "cnnx/cpu.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cnnx {
namespace {

Isa probe_cpu() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::generic;
}

Isa initial_isa() {
  Isa best = probe_cpu();
  const char* env = std::getenv("CNNX_ISA");
  if (env && *env) {
    Isa want;
    if (!parse_isa(env, &want)) {
      std::fprintf(stderr, "cnnx: ignoring CNNX_ISA=%s (expected generic, avx2 or avx512)\n", env);
    } else if (static_cast<int>(want) > static_cast<int>(best)) {
      std::fprintf(stderr, "cnnx: CNNX_ISA=%s is not supported by this CPU; using %s\n", env,
                   isa_name(best));
    } else {
      best = want;
    }
  }
  return best;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

Isa detected_isa() {
  static const Isa isa = probe_cpu();
  return isa;
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = [] {
    __builtin_cpu_init();
    return detected_isa() == Isa::avx512 && __builtin_cpu_supports("avx512vnni") != 0;
  }();
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = [] {
    __builtin_cpu_init();
    return detected_isa() >= Isa::avx2 && __builtin_cpu_supports("avxvnni") != 0;
  }();
  return has;
#else
  return false;
#endif
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

Isa set_active_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected_isa())) isa = detected_isa();
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

bool parse_isa(const char* name, Isa* out) {
  if (!std::strcmp(name, "generic")) {
    *out = Isa::generic;
    return true;
  }
  if (!std::strcmp(name, "avx2")) {
    *out = Isa::avx2;
    return true;
  }
  if (!std::strcmp(name, "avx512")) {
    *out = Isa::avx512;
    return true;
  }
  return false;
}

}  // namespace cnnx
