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

namespace cnnx {

// ---- More elementwise activations (issue 19) --------------------------------
// Each has a forward y = f(x) and a backward dx = dy * f'(x) taken from the
// forward INPUT x; `a` and `b` are the function's parameters (unused ones
// are ignored). Definitions follow PyTorch (and ONNX, where it has the op):
enum class Pointwise : int {
  elu = 0,          // x > 0 ? x : a * (exp(x) - 1)                      (a: alpha)
  selu = 1,         // b * (x > 0 ? x : a * (exp(x) - 1))        (a: alpha, b: scale)
  gelu = 2,         // x * Phi(x), Phi the standard normal CDF (erf form)
  gelu_tanh = 3,    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  silu = 4,         // x * sigmoid(x)  (Swish)
  hardswish = 5,    // x * min(max(x + 3, 0), 6) / 6
  hardsigmoid = 6,  // max(0, min(1, a * x + b))                 (a: slope, b: offset)
  clip = 7,         // min(max(x, a), b)                             (a: min, b: max)
  softplus = 8,     // log(1 + exp(x)), stable for any x
  softsign = 9,     // x / (1 + |x|)
};
constexpr int kPointwiseCount = 10;

// Gradients where f has a kink (PyTorch's choices): clip and hardsigmoid pass
// the gradient only strictly inside their linear range; hardswish's is 0 up
// to -3, (2x + 3) / 6 strictly between -3 and 3, and 1 from 3 on.
void pointwise_forward(Pointwise f, const float* x, float* y, int64_t n, float a = 0.0f,
                       float b = 0.0f);
void pointwise_backward(Pointwise f, const float* dy, const float* x, float* dx, int64_t n,
                        float a = 0.0f, float b = 0.0f);

// log(softmax(x)) along the middle axis of (outer, K, inner), max-subtracted.
void log_softmax_forward(const float* x, float* y, int64_t outer, int64_t K, int64_t inner);
// From the forward output y: dx = dy - exp(y) * sum_k dy.
void log_softmax_backward(const float* dy, const float* y, float* dx, int64_t outer, int64_t K,
                          int64_t inner);

// PReLU: x > 0 ? x : slope[i % P] * x over rows of P values (P = 1: one
// shared slope; P = channels: one per channel of NHWC rows).
void prelu_forward(const float* x, const float* slope, float* y, int64_t rows, int64_t P);
// dx = x > 0 ? dy : slope * dy (dx may be null); dslope[p] = sum over rows of
// dy * x where x <= 0 (overwritten; may be null).
void prelu_backward(const float* dy, const float* x, const float* slope, float* dx, float* dslope,
                    int64_t rows, int64_t P);

}  // namespace cnnx
