// Dropout loops, written once and compiled per ISA: dropout.cpp (portable),
// dropout__avx2.cpp and dropout__avx512.cpp include this file with
// CNNX_DROP_NS set to their own namespace. Every loop is branch-free (the
// keep decision picks a constant factor, never guards a float operation) so
// that GCC vectorises it, 32-bit multiplies in the hash included.
#include <cstdint>

#include "ops/dropout_kernels.h"

namespace cnnx {
namespace CNNX_DROP_NS {

void forward(const float* x, float* y, uint8_t* mask, int64_t b, int64_t e, DropoutKeys k,
             uint32_t thr, float scale) {
  if (mask) {
    // In blocks: the 32-bit keep flags first, then the float and the byte
    // outputs (one loop mixing 32-bit and 8-bit lanes does not vectorise).
    uint32_t keep[256];
    for (int64_t c = b; c < e; c += 256) {
      const int64_t w = e - c < 256 ? e - c : 256;
      for (int64_t j = 0; j < w; ++j)
        keep[j] = dropout_hash(k, static_cast<uint64_t>(c + j)) >= thr ? 1u : 0u;
      for (int64_t j = 0; j < w; ++j) y[c + j] = x[c + j] * (keep[j] ? scale : 0.0f);
      for (int64_t j = 0; j < w; ++j) mask[c + j] = static_cast<uint8_t>(keep[j]);
    }
  } else {
    for (int64_t i = b; i < e; ++i) {
      const bool keep = dropout_hash(k, static_cast<uint64_t>(i)) >= thr;
      y[i] = x[i] * (keep ? scale : 0.0f);
    }
  }
}

void backward(const float* dy, const uint8_t* mask, float* dx, int64_t b, int64_t e, float scale) {
  for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * (mask[i] ? scale : 0.0f);
}

const DropoutKernels kernels = {forward, backward};

}  // namespace CNNX_DROP_NS
}  // namespace cnnx
