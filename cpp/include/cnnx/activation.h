// Elementwise activations and softmax, forward and backward. Flat buffers of
// n floats (64-bit counts); large buffers are split over threads. Outputs may
// alias inputs (in-place) for the elementwise functions.
#pragma once
#include <cstdint>

namespace cnnx {

void relu_forward(const float* x, float* y, int64_t n);
// dx = dy where x > 0, else 0.
void relu_backward(const float* dy, const float* x, float* dx, int64_t n);

void leaky_relu_forward(const float* x, float* y, int64_t n, float alpha);
void leaky_relu_backward(const float* dy, const float* x, float* dx, int64_t n, float alpha);

// sigmoid(x) = 1 / (1 + exp(-x)), saturating cleanly for large |x|.
void sigmoid_forward(const float* x, float* y, int64_t n);
// From the forward output y: dx = dy * y * (1 - y).
void sigmoid_backward(const float* dy, const float* y, float* dx, int64_t n);

void tanh_forward(const float* x, float* y, int64_t n);
// From y: dx = dy * (1 - y^2).
void tanh_backward(const float* dy, const float* y, float* dx, int64_t n);

// Softmax along the middle axis of an (outer, K, inner) array (inner == 1 is
// the usual last-axis case). Max-subtracted, so any finite input is safe.
void softmax_forward(const float* x, float* y, int64_t outer, int64_t K, int64_t inner);
// dx = y * (dy - sum_k dy*y) along the same axis.
void softmax_backward(const float* dy, const float* y, float* dx, int64_t outer, int64_t K,
                      int64_t inner);

}  // namespace cnnx
