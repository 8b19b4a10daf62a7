// Local response normalisation over the channels of NHWC pixels
// (cnnx/norm.h): argument checks, dispatch and the split over rows.
#include <stdexcept>
#include <string>

#include "cnnx/cpu.h"
#include "cnnx/norm.h"
#include "common/scratch.h"
#include "ops/ops_common.h"

#include "common/vec_scalar.h"
#define CNNX_LRN_NS lrn_generic
#define CNNX_LRN_VEC ::cnnx::vec_scalar::V
#include "ops/lrn_impl.h"
#undef CNNX_LRN_NS
#undef CNNX_LRN_VEC

namespace cnnx {

namespace {

const LrnKernels& lrn_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return lrn_avx512::kernels;
    case Isa::avx2: return lrn_avx2::kernels;
    default: return lrn_generic::kernels;
  }
}

LrnParams check(int64_t C, int64_t size, float alpha, float beta, float bias) {
  if (size < 1 || size % 2 == 0)
    throw std::invalid_argument("size: expected an odd window size >= 1, got " +
                                std::to_string(size));
  if (C < 1) throw std::invalid_argument("x: expected at least one channel");
  return LrnParams{C, size, alpha, beta, bias};
}

template <class F>
void run_rows(int64_t rows, const LrnParams& p, double flops_per_value, F f) {
  const int nt = threads_for_flops(flops_per_value * rows * p.C);
  ops_detail::parallel_range(
      rows, nt,
      [&](int64_t b, int64_t e) {
        float* scratch = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(3 * (p.C + p.size)));
        f(b, e, scratch);
      },
      1);
}

}  // namespace

void lrn_forward(const float* x, float* y, int64_t rows, int64_t C, int64_t size, float alpha,
                 float beta, float bias) {
  const LrnParams p = check(C, size, alpha, beta, bias);
  if (rows <= 0) return;
  const LrnKernels& k = lrn_kernels();
  run_rows(rows, p, 40.0 + 2.0 * size,
           [&](int64_t b, int64_t e, float* scratch) { k.forward(x, y, b, e, p, scratch); });
}

void lrn_backward(const float* dy, const float* x, float* dx, int64_t rows, int64_t C, int64_t size,
                  float alpha, float beta, float bias) {
  const LrnParams p = check(C, size, alpha, beta, bias);
  if (rows <= 0) return;
  const LrnKernels& k = lrn_kernels();
  run_rows(rows, p, 50.0 + 4.0 * size,
           [&](int64_t b, int64_t e, float* scratch) { k.backward(dy, x, dx, b, e, p, scratch); });
}

}  // namespace cnnx
