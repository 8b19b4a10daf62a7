// The layout ops and the transposed convolution as plan ops (both plans):
// forward and backward of an OpSpec over n images. Internal to cpp/src/plan.
#pragma once
#include <cstdint>

#include "cnnx/op_spec.h"

namespace cnnx {
namespace plan_detail {

bool is_layout_op(OpKind k);

// Values per image the op reads.
int64_t layout_input_values(const OpSpec& op);

// y = the op on n images of x (conv_transpose2d: with its bias and
// activation; ReLU fused in the store, others applied after).
void layout_forward(const OpSpec& op, int64_t n, const float* x, float* y);

// dx = dL/dx of the layout op (every one of them is linear: no values needed).
void layout_backward(const OpSpec& op, int64_t n, const float* dy, float* dx);

}  // namespace plan_detail
}  // namespace cnnx
