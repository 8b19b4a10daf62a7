// Layout ops and the transposed convolution in the plans (see layout_ops.h).
#include "plan/layout_ops.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "plan/plan_internal.h"

namespace cnnx {
namespace plan_detail {
namespace {

Pad2dShape pad_shape(const LayoutSpec& l, int64_t n) {
  Pad2dShape p;
  p.N = n;
  p.H = l.h;
  p.W = l.w;
  p.C = l.c;
  p.top = l.pads[0];
  p.bottom = l.pads[1];
  p.left = l.pads[2];
  p.right = l.pads[3];
  return p;
}

std::vector<int> inverse(const std::vector<int>& perm) {
  std::vector<int> inv(perm.size());
  for (size_t a = 0; a < perm.size(); ++a) inv[perm[a]] = static_cast<int>(a);
  return inv;
}

}  // namespace

bool is_layout_op(OpKind k) {
  switch (k) {
    case OpKind::conv_transpose2d:
    case OpKind::pad2d:
    case OpKind::upsample2d:
    case OpKind::depth_to_space:
    case OpKind::space_to_depth:
    case OpKind::channel_shuffle:
    case OpKind::transpose: return true;
    default: return false;
  }
}

int64_t layout_input_values(const OpSpec& op) {
  if (op.kind == OpKind::conv_transpose2d) return op.convt.H * op.convt.W * op.convt.C_in;
  if (op.kind == OpKind::transpose) {
    int64_t v = 1;
    for (int64_t d : op.layout.shape) v *= d;
    return v;
  }
  return op.layout.h * op.layout.w * op.layout.c;
}

void layout_forward(const OpSpec& op, int64_t n, const float* x, float* y) {
  const LayoutSpec& l = op.layout;
  switch (op.kind) {
    case OpKind::conv_transpose2d: {
      ConvTranspose2dShape s = op.convt;
      s.N = n;
      conv_transpose2d_forward(s, x, op.w, op.bias, y, fused(op.act));
      if (op.act != PlanAct::none && op.act != PlanAct::relu)
        apply_activation(op.act, op.alpha, y, s.output_size(), op.k, op.beta);
      return;
    }
    case OpKind::pad2d: pad2d_forward(l.pad_mode, pad_shape(l, n), l.value, x, y); return;
    case OpKind::upsample2d:
      upsample2d_forward(l.up_mode, n, l.h, l.w, l.c, l.fh, l.fw, x, y);
      return;
    case OpKind::depth_to_space: depth_to_space(l.order, n, l.h, l.w, l.c, l.block, x, y); return;
    case OpKind::space_to_depth: space_to_depth(l.order, n, l.h, l.w, l.c, l.block, x, y); return;
    case OpKind::channel_shuffle: channel_shuffle(n * l.h * l.w, l.c, l.groups, x, y); return;
    case OpKind::transpose:
      transpose_nd(n, static_cast<int>(l.shape.size()), l.shape.data(), l.perm.data(), x, y);
      return;
    default: throw std::invalid_argument(std::string(op_kind_name(op.kind)) + ": not a layout op");
  }
}

void layout_backward(const OpSpec& op, int64_t n, const float* dy, float* dx) {
  const LayoutSpec& l = op.layout;
  switch (op.kind) {
    case OpKind::conv_transpose2d: {
      ConvTranspose2dShape s = op.convt;
      s.N = n;
      conv_transpose2d_backward_data(s, dy, op.w, dx);
      return;
    }
    case OpKind::pad2d: pad2d_backward(l.pad_mode, pad_shape(l, n), dy, dx); return;
    case OpKind::upsample2d:
      upsample2d_backward(l.up_mode, n, l.h, l.w, l.c, l.fh, l.fw, dy, dx);
      return;
    case OpKind::depth_to_space:  // its inverse, read from the output's shape
      space_to_depth(l.order, n, l.h * l.block, l.w * l.block, l.c / (l.block * l.block), l.block,
                     dy, dx);
      return;
    case OpKind::space_to_depth:
      depth_to_space(l.order, n, l.h / l.block, l.w / l.block, l.c * l.block * l.block, l.block, dy,
                     dx);
      return;
    case OpKind::channel_shuffle:
      channel_shuffle(n * l.h * l.w, l.c, l.c / l.groups, dy, dx);
      return;
    case OpKind::transpose: {
      std::vector<int64_t> out_shape(l.shape.size());
      for (size_t a = 0; a < l.shape.size(); ++a) out_shape[a] = l.shape[l.perm[a]];
      const std::vector<int> inv = inverse(l.perm);
      transpose_nd(n, static_cast<int>(out_shape.size()), out_shape.data(), inv.data(), dy, dx);
      return;
    }
    default: throw std::invalid_argument(std::string(op_kind_name(op.kind)) + ": not a layout op");
  }
}

}  // namespace plan_detail
}  // namespace cnnx
