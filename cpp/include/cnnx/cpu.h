// CPU feature detection and the one dispatch point for SIMD kernels.
#pragma once

namespace cnnx {

// Ordered: a higher level can run every kernel of a lower one.
enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

// Best level this CPU (and OS) supports.
Isa detected_isa();

// The level kernels use now: detected_isa(), lowered by the environment
// variable CNNX_ISA=generic|avx2|avx512 when it is set at start-up.
Isa active_isa();

// Force a level (tests run every level the CPU supports). A level above
// detected_isa() is clamped down to it. Returns the level actually set.
Isa set_active_isa(Isa isa);

// Extensions outside the ordered levels, for the int8 kernels (cnnx/int8.h):
// vpdpbusd on zmm (AVX512-VNNI, needs the avx512 level too) and its VEX form
// on ymm (AVX-VNNI, Alder Lake and later). Detection only: the int8 kernel
// also follows active_isa(), so CNNX_ISA=avx2 still selects an AVX2 kernel.
bool cpu_has_avx512_vnni();
bool cpu_has_avx_vnni();

const char* isa_name(Isa isa);
// Parses "generic" / "avx2" / "avx512"; returns false on anything else.
bool parse_isa(const char* name, Isa* out);

}  // namespace cnnx
