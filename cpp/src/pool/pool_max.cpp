// Max pooling with strides, -inf padding, dilation and ceil mode, forward
// and backward.
#include "pool/pool_internal.h"
#include "pool/pool_max2x2.h"

namespace cnnx {

namespace {

pool::Axis axis_h(const PoolShape& s, const Pool2dParams& p) {
  return pool::strided_axis(s.h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom, true, false,
                            p.dilation_h, p.ceil_mode);
}

pool::Axis axis_w(const PoolShape& s, const Pool2dParams& p) {
  return pool::strided_axis(s.w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right, true, false,
                            p.dilation_w, p.ceil_mode);
}

}  // namespace

void max_pool2d_forward(const PoolShape& s, const Pool2dParams& p, const float* x, float* y) {
  int64_t oh, ow;
  pool2d_check(s, p, &oh, &ow);
  if (p.kernel_h == 2 && p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_top == 0 &&
      p.pad_bottom == 0 && p.pad_left == 0 && p.pad_right == 0 && p.dilation_h == 1 &&
      p.dilation_w == 1 && oh == s.h / 2 && ow == s.w / 2 && active_isa() >= Isa::avx2) {
    // the common pool: one pass, no window tables
    if (active_isa() == Isa::avx512)
      pool::max_pool_2x2_avx512(s, x, y);
    else
      pool::max_pool_2x2_avx2(s, x, y);
    return;
  }
  const pool::Axis ah = axis_h(s, p), aw = axis_w(s, p);
  pool::run_max_forward(pool::make_plan(s, ah, aw), x, y);
}

void max_pool2d_backward(const PoolShape& s, const Pool2dParams& p, const float* x, const float* dy,
                         float* dx) {
  int64_t oh, ow;
  pool2d_check(s, p, &oh, &ow);
  const pool::Axis ah = axis_h(s, p), aw = axis_w(s, p);
  pool::run_max_backward(pool::make_plan(s, ah, aw), ah, aw, x, dy, dx);
}

}  // namespace cnnx
