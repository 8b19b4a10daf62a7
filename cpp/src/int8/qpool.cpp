// int8 pooling front ends: the window checks of pool.h, then one output row
// (image, output row) per task across threads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>

#include "cnnx/int8.h"
#include "cnnx/threading.h"
#include "int8/qeltwise.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace qdetail {
const EltwiseKernels& eltwise_kernels();
void check_qparams(const QuantParams& q, const char* scale_name, const char* zp_name);
}  // namespace qdetail

namespace {

void run_rows(const qdetail::PoolArgs& a, void (*row)(const qdetail::PoolArgs&, int64_t, int64_t)) {
  const int64_t rows = a.s->n * a.oh_count;
  if (rows <= 0 || a.ow_count <= 0 || a.s->c <= 0) return;
  const double reads =
      static_cast<double>(rows) * a.ow_count * a.s->c * a.p->kernel_h * a.p->kernel_w;
  int nt = static_cast<int>(std::min<int64_t>(threads_for_flops(4.0 * reads), rows));
#ifdef CNNX_HAVE_OPENMP
  if (nt > 1) {
    std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(nt)
    for (;;) {
      const int64_t r = next.fetch_add(1, std::memory_order_relaxed);
      if (r >= rows) break;
      row(a, r / a.oh_count, r % a.oh_count);
    }
    return;
  }
#endif
  (void)nt;
  for (int64_t r = 0; r < rows; ++r) row(a, r / a.oh_count, r % a.oh_count);
}

}  // namespace

void qmax_pool2d_forward(const PoolShape& s, const Pool2dParams& p, const uint8_t* x, uint8_t* y) {
  int64_t oh, ow;
  pool2d_check(s, p, &oh, &ow);
  const qdetail::PoolArgs a{&s, &p, oh, ow, x, y, false, 0, 0, 1.0f};
  run_rows(a, qdetail::eltwise_kernels().max_pool_row);
}

void qavg_pool2d_forward(const PoolShape& s, const Pool2dParams& p, bool count_include_pad,
                         QuantParams xq, QuantParams yq, const uint8_t* x, uint8_t* y) {
  int64_t oh, ow;
  pool2d_check(s, p, &oh, &ow);
  qdetail::check_qparams(xq, "x_scale", "x_zero_point");
  qdetail::check_qparams(yq, "y_scale", "y_zero_point");
  // Window sums stay exact in int32: 255 * 2^23 < 2^31.
  if (p.kernel_h * p.kernel_w > (int64_t{1} << 23))
    throw std::invalid_argument(
        "pool_size: int8 average pooling takes at most 2^23 pixels per window");
  const float ratio = xq.scale / yq.scale;
  if (!std::isfinite(ratio))
    throw std::invalid_argument("y_scale: x_scale / y_scale overflows float32");
  const qdetail::PoolArgs a{&s,   &p, oh, ow, x, y, count_include_pad, xq.zero_point, yq.zero_point,
                            ratio};
  run_rows(a, qdetail::eltwise_kernels().avg_pool_row);
}

}  // namespace cnnx
