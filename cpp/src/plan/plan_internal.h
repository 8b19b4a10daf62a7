// Helpers shared by the inference plan's files (inference_plan.cpp: building
// and running; inference_plan_ops.cpp: each op, whole or in parts;
// inference_plan_coop.cpp: the cooperative mode). Internal to cpp/src/plan.
#pragma once
#include <cstdint>

#include "cnnx/activation.h"
#include "cnnx/cpu.h"
#include "cnnx/plan.h"
#include "ops/dense_rows.h"

namespace cnnx {
namespace plan_detail {

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline Activation fused(PlanAct a) {
  return a == PlanAct::relu ? Activation::relu : Activation::none;
}

// The activations a conv/dense epilogue cannot fuse, applied in place.
inline void apply_activation(PlanAct act, float alpha, float* y, int64_t n, int64_t k) {
  switch (act) {
    case PlanAct::none: return;
    case PlanAct::relu: relu_forward(y, y, n); return;
    case PlanAct::leaky_relu: leaky_relu_forward(y, y, n, alpha); return;
    case PlanAct::sigmoid: sigmoid_forward(y, y, n); return;
    case PlanAct::tanh: tanh_forward(y, y, n); return;
    case PlanAct::softmax: softmax_forward(y, y, n / k, k, 1); return;
  }
}

// A cooperative dense op with few rows splits its columns (then a softmax
// needs a second pass once every column is there); a classifier head of
// <= 64 columns is one block, not worth a split.
inline bool dense_by_columns(int64_t n, int parts, int64_t out_f) {
  return parts > 1 && n <= ops_detail::kDenseRowsMax && out_f > 64 &&
         active_isa() == Isa::avx512;
}

}  // namespace plan_detail
}  // namespace cnnx
