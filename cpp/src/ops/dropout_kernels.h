// The dropout hash and the per-ISA dropout loops (see dropout_impl.h).
#pragma once
#include <cstdint>

namespace cnnx {

struct DropoutKeys {
  uint32_t k0, k1;
};

inline uint32_t dropout_fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

// Two rounds of murmur3's finaliser over the 64-bit counter, keyed by the
// seed. 32-bit multiplies only, so the loops vectorise.
inline uint32_t dropout_hash(DropoutKeys k, uint64_t i) {
  uint32_t h = dropout_fmix32(static_cast<uint32_t>(i) ^ k.k0);
  h = dropout_fmix32(h + (static_cast<uint32_t>(i >> 32) ^ k.k1) * 0x9E3779B9u + k.k1);
  return h;
}

struct DropoutKernels {
  // keep iff hash >= thr; y = x * scale where kept, 0 elsewhere.
  void (*forward)(const float* x, float* y, uint8_t* mask, int64_t b, int64_t e, DropoutKeys k,
                  uint32_t thr, float scale);
  void (*backward)(const float* dy, const uint8_t* mask, float* dx, int64_t b, int64_t e,
                   float scale);
};

namespace drop_generic {
extern const DropoutKernels kernels;
}
namespace drop_avx2 {
extern const DropoutKernels kernels;
}
namespace drop_avx512 {
extern const DropoutKernels kernels;
}

}  // namespace cnnx
