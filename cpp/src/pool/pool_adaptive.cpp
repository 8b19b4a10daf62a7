// Adaptive average and max pooling: the output size is given and the
// windows follow start = floor(i*n/out), end = ceil((i+1)*n/out) on each
// axis. When out divides n these are the course's windows (stride n/out,
// kernel n - (out-1)*stride, no padding); otherwise neighbouring windows
// overlap by a pixel or vary in size, and out > n repeats input pixels.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "pool/pool_internal.h"

namespace cnnx {

namespace {
// The max backward numbers window positions with int32 lanes.
void check_window_area(const pool::Axis& ah, const pool::Axis& aw) {
  int64_t mh = 0, mw = 0;
  for (int64_t i = 0; i < ah.out; ++i) mh = std::max(mh, ah.hi[i] - ah.lo[i]);
  for (int64_t j = 0; j < aw.out; ++j) mw = std::max(mw, aw.hi[j] - aw.lo[j]);
  if (mh * mw >= (int64_t(1) << 31))
    throw std::invalid_argument("output_size: adaptive max windows of " + std::to_string(mh) + "x" +
                                std::to_string(mw) + " pixels are too large");
}
}  // namespace

void adaptive_avg_pool2d_forward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* x,
                                 float* y) {
  pool::check_shape(s);
  const pool::Axis ah = pool::adaptive_axis(s.h, out_h, false);
  const pool::Axis aw = pool::adaptive_axis(s.w, out_w, false);
  pool::run_avg_forward(pool::make_plan(s, ah, aw), x, y);
}

void adaptive_avg_pool2d_backward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* dy,
                                  float* dx) {
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

void adaptive_max_pool2d_backward(const PoolShape& s, int64_t out_h, int64_t out_w, const float* x,
                                  const float* dy, float* dx) {
  pool::check_shape(s);
  const pool::Axis ah = pool::adaptive_axis(s.h, out_h, false);
  const pool::Axis aw = pool::adaptive_axis(s.w, out_w, false);
  check_window_area(ah, aw);
  pool::run_max_backward(pool::make_plan(s, ah, aw), ah, aw, x, dy, dx);
}

}  // namespace cnnx
