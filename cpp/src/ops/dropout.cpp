// Inverted dropout with a counter-based hash: the keep decision for element
// i is a pure function of (seed, i), so any thread split gives the same mask.
#include <cmath>

#include "cnnx/dropout.h"
#include "ops/ops_common.h"

namespace cnnx {

namespace {

inline uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

struct Keys {
  uint32_t k0, k1;
};

inline Keys keys_of(uint64_t seed) {
  // Spread the seed (splitmix64 finaliser) so nearby seeds give unrelated masks.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return Keys{static_cast<uint32_t>(z), static_cast<uint32_t>(z >> 32)};
}

// Two rounds of murmur3's finaliser over the 64-bit counter, keyed by the
// seed. 32-bit multiplies only, so the loops vectorise.
inline uint32_t bits_at(Keys k, uint64_t i) {
  uint32_t h = fmix32(static_cast<uint32_t>(i) ^ k.k0);
  h = fmix32(h + (static_cast<uint32_t>(i >> 32) ^ k.k1) * 0x9E3779B9u + k.k1);
  return h;
}

// keep iff bits >= threshold (threshold = rate * 2^32, as a 64-bit integer so
// that rate -> 1 never wraps).
inline uint64_t threshold_of(float rate) {
  const double t = std::ldexp(static_cast<double>(rate), 32);
  return t <= 0 ? 0 : static_cast<uint64_t>(t);
}

}  // namespace

uint32_t dropout_bits(uint64_t seed, uint64_t i) { return bits_at(keys_of(seed), i); }

void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t n, float rate,
                     uint64_t seed) {
  const Keys k = keys_of(seed);
  const uint64_t thr = threshold_of(rate);
  const float scale = rate > 0.0f ? static_cast<float>(1.0 / (1.0 - rate)) : 1.0f;
  const int nt = ops_detail::threads_for_bytes(12.0 * n);
  ops_detail::parallel_range(n, nt, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const bool keep = bits_at(k, static_cast<uint64_t>(i)) >= thr;
      y[i] = keep ? x[i] * scale : 0.0f;
      if (mask) mask[i] = keep ? 1 : 0;
    }
  }, 64);
}

void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float rate) {
  const float scale = rate > 0.0f ? static_cast<float>(1.0 / (1.0 - rate)) : 1.0f;
  const int nt = ops_detail::threads_for_bytes(9.0 * n);
  ops_detail::parallel_range(n, nt, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
  }, 64);
}

void dropout_backward_seeded(const float* dy, float* dx, int64_t n, float rate, uint64_t seed) {
  dropout_forward(dy, dx, nullptr, n, rate, seed);
}

}  // namespace cnnx
