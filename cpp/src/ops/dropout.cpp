// Inverted dropout with a counter-based hash: the keep decision for element
// i is a pure function of (seed, i), so any thread split gives the same mask.
#include <cmath>

#include "cnnx/cpu.h"
#include "cnnx/dropout.h"
#include "ops/ops_common.h"

#define CNNX_DROP_NS drop_generic
#include "ops/dropout_impl.h"
#undef CNNX_DROP_NS

namespace cnnx {

namespace {

const DropoutKernels& drop_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return drop_avx512::kernels;
    case Isa::avx2: return drop_avx2::kernels;
    default: return drop_generic::kernels;
  }
}

DropoutKeys keys_of(uint64_t seed) {
  // Spread the seed (splitmix64 finaliser) so nearby seeds give unrelated masks.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return DropoutKeys{static_cast<uint32_t>(z), static_cast<uint32_t>(z >> 32)};
}

// keep iff bits >= rate * 2^32 (rate < 1, so the threshold fits 32 bits).
uint32_t threshold_of(float rate) {
  const double t = std::ldexp(static_cast<double>(rate), 32);
  if (t <= 0) return 0;
  if (t >= 4294967295.0) return 0xffffffffu;
  return static_cast<uint32_t>(t);
}

float scale_of(float rate) {
  return rate > 0.0f ? static_cast<float>(1.0 / (1.0 - static_cast<double>(rate))) : 1.0f;
}

}  // namespace

uint32_t dropout_bits(uint64_t seed, uint64_t i) { return dropout_hash(keys_of(seed), i); }

void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t n, float rate,
                     uint64_t seed) {
  const DropoutKernels& k = drop_kernels();
  const DropoutKeys keys = keys_of(seed);
  const uint32_t thr = threshold_of(rate);
  const float scale = scale_of(rate);
  const int nt = threads_for_flops(20.0 * n);  // ~20 integer ops per element
  ops_detail::parallel_range(
      n, nt, [&](int64_t b, int64_t e) { k.forward(x, y, mask, b, e, keys, thr, scale); }, 64);
}

void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float rate) {
  const DropoutKernels& k = drop_kernels();
  const float scale = scale_of(rate);
  const int nt = ops_detail::threads_for_bytes(9.0 * n);
  ops_detail::parallel_range(
      n, nt, [&](int64_t b, int64_t e) { k.backward(dy, mask, dx, b, e, scale); }, 64);
}

void dropout_backward_seeded(const float* dy, float* dx, int64_t n, float rate, uint64_t seed) {
  dropout_forward(dy, dx, nullptr, n, rate, seed);
}

}  // namespace cnnx
