// Average pooling with strides and zero padding, forward and backward;
// count_include_pad chooses whether padded pixels count in the divisor;
// ceil_mode rounds the output size up.
#include "pool/pool_internal.h"

namespace cnnx {

void avg_pool2d_forward(const PoolShape& s, const Pool2dParams& p, bool count_include_pad,
                        const float* x, float* y) {
  int64_t oh, ow;
  pool2d_check(s, p, &oh, &ow);
  const pool::Axis ah = pool::strided_axis(s.h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom,
                                           count_include_pad, false, 1, p.ceil_mode);
  const pool::Axis aw = pool::strided_axis(s.w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right,
                                           count_include_pad, false, 1, p.ceil_mode);
  pool::run_avg_forward(pool::make_plan(s, ah, aw), x, y);
}

void avg_pool2d_backward(const PoolShape& s, const Pool2dParams& p, bool count_include_pad,
                         const float* dy, float* dx) {
  int64_t oh, ow;
  pool2d_check(s, p, &oh, &ow);
  const pool::Axis ah = pool::strided_axis(s.h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom,
                                           count_include_pad, true, 1, p.ceil_mode);
  const pool::Axis aw = pool::strided_axis(s.w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right,
                                           count_include_pad, true, 1, p.ceil_mode);
  pool::run_avg_backward(pool::make_plan(s, ah, aw), dy, dx);
}

}  // namespace cnnx
