// Fused optimiser updates over flat float32 buffers, in place, one pass.
// Semantics follow torch.optim exactly (see each function).
#pragma once
#include <cstdint>

namespace cnnx {

// torch.optim.SGD (dampening 0):
//   g = grad + weight_decay * param
//   momentum != 0:  v = momentum * v + g;  g = nesterov ? g + momentum * v : v
//   param -= lr * g
// With v starting at zero this equals PyTorch's first step (v = g).
// velocity may be null when momentum == 0.
void sgd_update(float* param, const float* grad, float* velocity, int64_t n, float lr,
                float momentum, bool nesterov, float weight_decay);

// torch.optim.Adam (decoupled = false: L2 added to the gradient) and
// torch.optim.AdamW (decoupled = true: param *= 1 - lr * weight_decay first).
//   m = m + (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
//   param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// step counts from 1 (the step being taken).
// Hyper-parameters are taken in double so that 1 - beta etc. are rounded to
// float once, as PyTorch does with its Python-float hyper-parameters.
void adam_update(float* param, const float* grad, float* m, float* v, int64_t n, int64_t step,
                 double lr, double beta1, double beta2, double eps, double weight_decay,
                 bool decoupled);

}  // namespace cnnx
