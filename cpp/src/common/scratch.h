// Thread-local, 64-byte-aligned scratch buffers. Each OS thread (OpenMP
// worker or Python caller) has its own, so concurrent calls never share one.
// Buffers grow on demand and are kept for the next call.
#pragma once
#include <cstddef>

namespace cnnx {

// Named slots so that nested users (a conv packing patches, then the GEMM it
// calls packing panels) never hand out the same memory twice.
enum class ScratchSlot : int {
  gemm_a = 0,
  gemm_b = 1,
  conv_0 = 2,
  conv_1 = 3,
  op_0 = 4,
  op_1 = 5,
  plan = 6,  // an inference plan's activation arena
  conv_2 = 7,
  conv_3 = 8,
  plan_pad = 9,  // a plan's zero-padded copy of a conv input
  count = 10
};

// At least n floats, aligned to 64 bytes, valid until this thread asks the
// same slot again. Throws std::bad_alloc when memory runs out.
float* thread_scratch(ScratchSlot slot, size_t n);

}  // namespace cnnx
