// Global average pooling: (n, h, w, c) -> (n, c), the mean of each channel
// over all pixels. It is adaptive average pooling to a 1x1 output, whose
// (n, 1, 1, c) result has exactly the memory layout of (n, c).
#include "pool/pool_internal.h"

namespace cnnx {

void global_avg_pool2d_forward(const PoolShape& s, const float* x, float* y) {
  adaptive_avg_pool2d_forward(s, 1, 1, x, y);
}

void global_avg_pool2d_backward(const PoolShape& s, const float* dy, float* dx) {
  adaptive_avg_pool2d_backward(s, 1, 1, dy, dx);
}

}  // namespace cnnx
