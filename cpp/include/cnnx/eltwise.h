// Elementwise joins of several tensors (add, sub, mul, average) and
// concatenation, forward and backward: the merge layers of a graph model
// (Add, Subtract, Multiply, Average, Concatenate) and of the plans.
#pragma once
#include <cstdint>

namespace cnnx {

enum class EltwiseKind : int { add = 0, sub = 1, mul = 2, avg = 3 };

// y = x[0] op x[1] op ... over n values (sub takes exactly two inputs; avg
// is the sum times 1/n_in). y may alias x[0].
void eltwise_forward(EltwiseKind kind, const float* const* x, int n_in, float* y, int64_t n);

// dx[i] = dL/dx[i] from dy (mul reads the inputs x). accumulate[i]: add to
// dx[i] instead of overwriting it. A null dx[i] is skipped.
void eltwise_backward(EltwiseKind kind, const float* const* x, int n_in, const float* dy,
                      float* const* dx, const bool* accumulate, int64_t n);

// Concatenation of n_in inputs along one axis: y holds `outer` blocks, and
// input i contributes inner[i] consecutive floats to each (NHWC channels:
// outer = N*H*W, inner[i] = C_i).
void concat_forward(const float* const* x, int n_in, const int64_t* inner, int64_t outer, float* y);

// The backward of a concatenation is a split (accumulate / null as above).
void concat_backward(const float* dy, int n_in, const int64_t* inner, int64_t outer,
                     float* const* dx, const bool* accumulate);

}  // namespace cnnx
