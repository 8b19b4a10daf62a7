// Helpers shared by the plans' files (inference_plan.cpp: building and
// running; inference_plan_ops.cpp: each op, whole or in parts;
// inference_plan_coop.cpp: the cooperative mode; train_plan.cpp: the training
// step). Internal to cpp/src/plan.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "cnnx/activation.h"
#include "cnnx/cpu.h"
#include "cnnx/plan.h"
#include "cnnx/pool.h"
#include "ops/dense_rows.h"

namespace cnnx {
namespace plan_detail {

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline Activation fused(PlanAct a) {
  return a == PlanAct::relu ? Activation::relu : Activation::none;
}

// The kernel-level function of an elementwise plan activation (false: none).
inline bool pointwise_of(PlanAct act, Pointwise* f) {
  const int a = static_cast<int>(act), first = static_cast<int>(PlanAct::elu);
  if (a < first || a > static_cast<int>(PlanAct::softsign)) return false;
  *f = static_cast<Pointwise>(a - first);  // the same order (op_spec.h, activation.h)
  return true;
}
static_assert(static_cast<int>(PlanAct::softsign) - static_cast<int>(PlanAct::elu) ==
                      static_cast<int>(Pointwise::softsign) &&
                  static_cast<int>(PlanAct::gelu) - static_cast<int>(PlanAct::elu) ==
                      static_cast<int>(Pointwise::gelu) &&
                  static_cast<int>(PlanAct::clip) - static_cast<int>(PlanAct::elu) ==
                      static_cast<int>(Pointwise::clip),
              "PlanAct's elementwise activations follow Pointwise's order");

// y = act(x) over n values (softmax over groups of k); none copies. y may be x.
// alpha, beta: the activation's parameters (op_spec.h).
inline void activation_forward(PlanAct act, float alpha, const float* x, float* y, int64_t n,
                               int64_t k, float beta) {
  Pointwise f;
  if (pointwise_of(act, &f)) {
    pointwise_forward(f, x, y, n, alpha, beta);
    return;
  }
  switch (act) {
    case PlanAct::none:
      if (x != y) std::copy(x, x + n, y);
      return;
    case PlanAct::relu: relu_forward(x, y, n); return;
    case PlanAct::leaky_relu: leaky_relu_forward(x, y, n, alpha); return;
    case PlanAct::sigmoid: sigmoid_forward(x, y, n); return;
    case PlanAct::tanh: tanh_forward(x, y, n); return;
    case PlanAct::softmax: softmax_forward(x, y, n / k, k, 1); return;
    case PlanAct::log_softmax: log_softmax_forward(x, y, n / k, k, 1); return;
    default: return;  // the pointwise ones, above
  }
}

// The activations a conv/dense epilogue cannot fuse, applied in place. beta
// has no default: clip's max lives there, and a forgotten one clipped to 0.
inline void apply_activation(PlanAct act, float alpha, float* y, int64_t n, int64_t k, float beta) {
  activation_forward(act, alpha, y, y, n, k, beta);
}

// Values per image a pool of this kind produces from one (h, w, c) image,
// after checking the geometry (throws std::invalid_argument). Strided pools
// write their output size into oh, ow; adaptive ones read it from there.
inline int64_t pool_output_values(PlanPool kind, const PoolShape& shape, const Pool2dParams& p,
                                  int64_t* oh, int64_t* ow) {
  PoolShape s = shape;
  s.n = 1;
  if (s.h < 1 || s.w < 1 || s.c < 1) throw std::invalid_argument("pool: empty input shape");
  switch (kind) {
    case PlanPool::max:
    case PlanPool::avg: pool2d_check(s, p, oh, ow); return *oh * *ow * s.c;
    case PlanPool::adaptive_avg:
    case PlanPool::adaptive_max:
      if (*oh < 1 || *ow < 1) throw std::invalid_argument("output_size: must be >= 1");
      return *oh * *ow * s.c;
    case PlanPool::global_avg: return s.c;
  }
  throw std::invalid_argument("pool: unknown kind");
}

// A whole pool over s.n images.
inline void pool_forward(PlanPool kind, const PoolShape& s, const Pool2dParams& p,
                         bool count_include_pad, int64_t oh, int64_t ow, const float* x, float* y) {
  switch (kind) {
    case PlanPool::max: max_pool2d_forward(s, p, x, y); return;
    case PlanPool::avg: avg_pool2d_forward(s, p, count_include_pad, x, y); return;
    case PlanPool::adaptive_avg: adaptive_avg_pool2d_forward(s, oh, ow, x, y); return;
    case PlanPool::adaptive_max: adaptive_max_pool2d_forward(s, oh, ow, x, y); return;
    case PlanPool::global_avg: global_avg_pool2d_forward(s, x, y); return;
  }
}

// A cooperative dense op with few rows splits its columns (then a softmax
// needs a second pass once every column is there); a classifier head of
// <= 64 columns is one block, not worth a split.
inline bool dense_by_columns(int64_t n, int parts, int64_t out_f) {
  return parts > 1 && n <= ops_detail::kDenseRowsMax && out_f > 64 && active_isa() == Isa::avx512;
}

// Part `part` of `parts` of [0, total), in units of `align`.
inline void part_range(int64_t total, int part, int parts, int64_t align, int64_t* b, int64_t* e) {
  const int64_t units = ceil_div(total, align);
  *b = std::min(total, units * part / parts * align);
  *e = std::min(total, units * (part + 1) / parts * align);
}

// Output rows [a, b) of one image as a convolution of their own: the band of
// input rows they read, padded only where the band meets the image border.
// Valid when no output row reads padding alone (see conv_bands_ok).
inline Conv2dShape conv_band(const Conv2dShape& s, int64_t a, int64_t b, int64_t* first_row) {
  Conv2dShape t = s;
  t.N = 1;
  const int64_t r0 = a * s.stride_h - s.pad_top;
  const int64_t r1 = (b - 1) * s.stride_h + (s.KH - 1) * s.dilation_h + 1 - s.pad_top;
  const int64_t c0 = std::max<int64_t>(r0, 0), c1 = std::min(r1, s.H);
  t.H = c1 - c0;
  t.pad_top = c0 - r0;
  t.pad_bottom = r1 - c1;
  *first_row = c0;
  return t;
}

inline bool conv_bands_ok(const Conv2dShape& s) {
  const int64_t reach = (s.KH - 1) * s.dilation_h;
  return s.pad_top <= reach && s.pad_bottom <= reach;
}

// The same for pooling windows (padding is at most half a window, so every
// band reads at least one real row).
inline void pool_band(const PoolShape& s, const Pool2dParams& p, int64_t a, int64_t b,
                      PoolShape* ts, Pool2dParams* tp, int64_t* first_row) {
  const int64_t r0 = a * p.stride_h - p.pad_top;
  const int64_t r1 = (b - 1) * p.stride_h + p.kernel_h - p.pad_top;
  const int64_t c0 = std::max<int64_t>(r0, 0), c1 = std::min(r1, s.h);
  *ts = s;
  ts->n = 1;
  ts->h = c1 - c0;
  *tp = p;
  tp->pad_top = c0 - r0;
  tp->pad_bottom = r1 - c1;
  *first_row = c0;
}

// Part `part` of `parts` of an int8 op (inference_plan_qops.cpp) over n
// images; n_out: values per image it writes.
void run_qop_part(const OpSpec& op, int64_t n_out, float* const* buf, int64_t n, int part,
                  int parts);

}  // namespace plan_detail
}  // namespace cnnx
