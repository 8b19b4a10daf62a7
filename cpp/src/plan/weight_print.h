// A fingerprint of a layer's weights, so that an inference plan notices a
// user's in-place edit of weights it packed without keeping a second copy
// of them: one read of the weights per run instead of two (ResNet-50 at
// batch 1 on 2 threads: the comparison with a copy cost 5 ms of a 40 ms
// run, and the copy 100 MB).
#pragma once
#include <cstdint>

namespace cnnx {
namespace plan_detail {

// 64 lanes of two 32-bit chains each.
constexpr int kPrintLanes = 64;
constexpr int kPrintWords = 2 * kPrintLanes;

// The fingerprint of w[0, n) into out[0, kPrintWords), on the active ISA's
// vectors (the same value on every ISA).
void weight_print(const float* w, int64_t n, uint32_t* out);

}  // namespace plan_detail
}  // namespace cnnx
