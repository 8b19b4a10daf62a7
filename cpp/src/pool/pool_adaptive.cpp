// Adaptive average and max pooling: the output size is given and the
// windows follow start = floor(i*n/out), end = ceil((i+1)*n/out) on each
// axis. When out divides n these are the course's windows (stride n/out,
// kernel n - (out-1)*stride, no padding); otherwise neighbouring windows
// overlap by a pixel or vary in size, and out > n repeats input pixels.
#include "pool/pool_internal.h"

namespace cnnx {

void adaptive_avg_pool2d_forward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* x,
                                 float* y) {
  pool::check_shape(s);
  const pool::Axis ah = pool::adaptive_axis(s.h, out_h, false);
  const pool::Axis aw = pool::adaptive_axis(s.w, out_w, false);
  pool::run_avg_forward(pool::make_plan(s, ah, aw), x, y);
}

void adaptive_avg_pool2d_backward(const PoolShape& s, int64_t out_h, int64_t out_w,
                                  const float* dy, float* dx) {
  pool::check_shape(s);
  const pool::Axis ah = pool::adaptive_axis(s.h, out_h, true);
  const pool::Axis aw = pool::adaptive_axis(s.w, out_w, true);
  pool::run_avg_backward(pool::make_plan(s, ah, aw), dy, dx);
}

void adaptive_max_pool2d_forward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* x,
                                 float* y) {
  pool::check_shape(s);
  const pool::Axis ah = pool::adaptive_axis(s.h, out_h, false);
  const pool::Axis aw = pool::adaptive_axis(s.w, out_w, false);
  pool::run_max_forward(pool::make_plan(s, ah, aw), x, y);
}

void adaptive_max_pool2d_backward(const PoolShape& s, int64_t out_h, int64_t out_w,
                                  const float* x, const float* dy, float* dx) {
  pool::check_shape(s);
  const pool::Axis ah = pool::adaptive_axis(s.h, out_h, false);
  const pool::Axis aw = pool::adaptive_axis(s.w, out_w, false);
  pool::run_max_backward(pool::make_plan(s, ah, aw), ah, aw, x, dy, dx);
}

}  // namespace cnnx
