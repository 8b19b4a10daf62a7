// Max pooling with strides and -inf padding, forward and backward.
#include "pool/pool_internal.h"

namespace cnnx {

void max_pool2d_forward(const PoolShape& s, const Pool2dParams& p, const float* x, float* y) {
  int64_t oh, ow;
  pool2d_check(s, p, &oh, &ow);
  const pool::Axis ah =
      pool::strided_axis(s.h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom, true, false);
  const pool::Axis aw =
      pool::strided_axis(s.w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right, true, false);
  pool::run_max_forward(pool::make_plan(s, ah, aw), x, y);
}

void max_pool2d_backward(const PoolShape& s, const Pool2dParams& p, const float* x,
                         const float* dy, float* dx) {
  int64_t oh, ow;
  pool2d_check(s, p, &oh, &ow);
  const pool::Axis ah =
      pool::strided_axis(s.h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom, true, false);
  const pool::Axis aw =
      pool::strided_axis(s.w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right, true, false);
  pool::run_max_backward(pool::make_plan(s, ah, aw), ah, aw, x, dy, dx);
}

}  // namespace cnnx
