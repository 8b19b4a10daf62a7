// Portable bodies of the uint8 element-wise and pooling kernels.
#include <vector>

#include "int8/qeltwise_scalar.h"

namespace cnnx {
namespace qdetail {
namespace {

bool quantize(int64_t n, const float* x, const QuantizeArgs& a, uint8_t* y) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) {
    ok &= qscalar::finite(x[i]);
    y[i] = qscalar::quantize_one(x[i], a);
  }
  return ok;
}

void dequantize(int64_t n, const uint8_t* q, int32_t zp, float scale, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = qscalar::dequantize_one(q[i], zp, scale);
}

void add(int64_t n, const uint8_t* a, const uint8_t* b, const AddArgs& g, uint8_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = qscalar::add_one(a[i], b[i], g);
}

void max_pool_row(const PoolArgs& a, int64_t n, int64_t oh) {
  const PoolShape& s = *a.s;
  const Pool2dParams& p = *a.p;
  int64_t h0, h1;
  pool_window(oh, p.stride_h, p.pad_top, p.kernel_h, s.h, &h0, &h1);
  for (int64_t ow = 0; ow < a.ow_count; ++ow) {
    int64_t w0, w1;
    pool_window(ow, p.stride_w, p.pad_left, p.kernel_w, s.w, &w0, &w1);
    uint8_t* y = a.y + ((n * a.oh_count + oh) * a.ow_count + ow) * s.c;
    for (int64_t c = 0; c < s.c; ++c) {
      uint8_t m = 0;
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) {
          const uint8_t v = a.x[((n * s.h + h) * s.w + w) * s.c + c];
          m = v > m ? v : m;
        }
      y[c] = m;
    }
  }
}

void avg_pool_row(const PoolArgs& a, int64_t n, int64_t oh) {
  const PoolShape& s = *a.s;
  const Pool2dParams& p = *a.p;
  int64_t h0, h1;
  pool_window(oh, p.stride_h, p.pad_top, p.kernel_h, s.h, &h0, &h1);
  std::vector<int32_t> sum(static_cast<size_t>(s.c));
  for (int64_t ow = 0; ow < a.ow_count; ++ow) {
    int64_t w0, w1;
    pool_window(ow, p.stride_w, p.pad_left, p.kernel_w, s.w, &w0, &w1);
    std::fill(sum.begin(), sum.end(), 0);
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) {
        const uint8_t* xp = a.x + ((n * s.h + h) * s.w + w) * s.c;
        for (int64_t c = 0; c < s.c; ++c) sum[c] += xp[c];
      }
    const int32_t nvalid = static_cast<int32_t>((h1 - h0) * (w1 - w0));
    const float mul = qscalar::average_mul(a, h1 - h0, w1 - w0);
    uint8_t* y = a.y + ((n * a.oh_count + oh) * a.ow_count + ow) * s.c;
    for (int64_t c = 0; c < s.c; ++c) y[c] = qscalar::average_one(sum[c], nvalid, mul, a.zx, a.zy);
  }
}

}  // namespace

const EltwiseKernels kQEltwiseGeneric = {quantize, dequantize, add, max_pool_row, avg_pool_row};

}  // namespace qdetail
}  // namespace cnnx
