// Front ends of quantize / dequantize / add: check the parameters, pick the
// ISA's body, split long arrays across threads (memory-bound: a thread pays
// for itself once it streams a few hundred kilobytes).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cnnx/cpu.h"
#include "cnnx/int8.h"
#include "cnnx/threading.h"
#include "int8/qeltwise.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace qdetail {

const EltwiseKernels& eltwise_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return kQEltwiseAvx512;
    case Isa::avx2: return kQEltwiseAvx2;
    default: return kQEltwiseGeneric;
  }
}

void check_qparams(const QuantParams& q, const char* scale_name, const char* zp_name) {
  if (!(std::isfinite(q.scale) && q.scale > 0.0f))
    throw std::invalid_argument(std::string(scale_name) + ": expected a finite scale > 0, got " +
                                std::to_string(q.scale));
  if (q.zero_point < 0 || q.zero_point > 255)
    throw std::invalid_argument(std::string(zp_name) + ": expected 0..255, got " +
                                std::to_string(q.zero_point));
}

namespace {

// f(begin, end) over [0, n) in chunks of 64-byte-aligned element counts.
template <class F>
void chunked(int64_t n, F f) {
  if (n <= 0) return;
  int nt = threads_for_flops(16.0 * static_cast<double>(n));
#ifdef CNNX_HAVE_OPENMP
  if (nt > 1) {
    const int64_t chunk = std::max<int64_t>(4096, (n / (int64_t{nt} * 4) + 63) / 64 * 64);
    std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(nt)
    for (;;) {
      const int64_t b = next.fetch_add(chunk, std::memory_order_relaxed);
      if (b >= n) break;
      f(b, std::min(n, b + chunk));
    }
    return;
  }
#endif
  (void)nt;
  f(0, n);
}

}  // namespace
}  // namespace qdetail

void quantize_u8(int64_t n, const float* x, QuantParams q, uint8_t* y) {
  qdetail::check_qparams(q, "scale", "zero_point");
  if (n < 0) throw std::invalid_argument("x: negative size");
  const qdetail::QuantizeArgs a{q.scale, static_cast<float>(-q.zero_point),
                                static_cast<float>(255 - q.zero_point), q.zero_point};
  const auto& k = qdetail::eltwise_kernels();
  std::atomic<bool> ok{true};
  qdetail::chunked(n, [&](int64_t b, int64_t e) {
    if (!k.quantize(e - b, x + b, a, y + b)) ok.store(false, std::memory_order_relaxed);
  });
  if (!ok.load())
    throw std::invalid_argument("x: contains NaN or infinity, which cannot be quantized");
}

void dequantize_u8(int64_t n, const uint8_t* q, QuantParams p, float* y) {
  qdetail::check_qparams(p, "scale", "zero_point");
  if (n < 0) throw std::invalid_argument("q: negative size");
  const auto& k = qdetail::eltwise_kernels();
  qdetail::chunked(
      n, [&](int64_t b, int64_t e) { k.dequantize(e - b, q + b, p.zero_point, p.scale, y + b); });
}

void qadd(int64_t n, const uint8_t* a, QuantParams aq, const uint8_t* b, QuantParams bq,
          QuantParams yq, QActivation act, uint8_t* y) {
  qdetail::check_qparams(aq, "a_scale", "a_zero_point");
  qdetail::check_qparams(bq, "b_scale", "b_zero_point");
  qdetail::check_qparams(yq, "y_scale", "y_zero_point");
  if (act != QActivation::none && act != QActivation::relu)
    throw std::invalid_argument("activation: expected none or relu for an add");
  if (n < 0) throw std::invalid_argument("a: negative size");
  const float ma = aq.scale / yq.scale, mb = bq.scale / yq.scale;
  if (!std::isfinite(ma) || !std::isfinite(mb))
    throw std::invalid_argument("y_scale: the input scale / output scale ratio overflows float32");
  const qdetail::AddArgs g{aq.zero_point,
                           bq.zero_point,
                           yq.zero_point,
                           ma,
                           mb,
                           act == QActivation::relu ? 0.0f : static_cast<float>(-yq.zero_point),
                           static_cast<float>(255 - yq.zero_point)};
  const auto& k = qdetail::eltwise_kernels();
  qdetail::chunked(n, [&](int64_t s, int64_t e) { k.add(e - s, a + s, b + s, g, y + s); });
}

}  // namespace cnnx
