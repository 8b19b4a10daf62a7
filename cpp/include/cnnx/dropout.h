// Inverted dropout with a counter-based random number generator: element i
// is kept iff hash(seed, i) >= rate * 2^32, so the mask depends only on
// (seed, i): never on thread count or call order.
#pragma once
#include <cstdint>

namespace cnnx {

// y = x * keep / (1 - rate); mask (optional, uint8 0/1) records keep.
// rate in [0, 1): rate == 0 copies x and keeps everything.
void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t n, float rate, uint64_t seed);
// dx = dy * mask / (1 - rate).
void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float rate);
// The same mask regenerated from the seed (no stored mask needed).
void dropout_backward_seeded(const float* dy, float* dx, int64_t n, float rate, uint64_t seed);

// The hash behind the mask, exposed for tests: 32 random bits for (seed, i).
uint32_t dropout_bits(uint64_t seed, uint64_t i);

}  // namespace cnnx
