// The per-ISA loops of the fused optimiser step (optim_step*.cpp) and the
// float constants they share, derived once per step from OptimStepArgs.
#pragma once
#include <cstdint>

#include "cnnx/optim_step.h"

namespace cnnx {

struct StepConsts {
  OptimRule rule = OptimRule::sgd;
  // gradient: g = clip(gscale * g) (+ weight_decay * p unless decoupled)
  bool clip_value = false;
  float clip = 0.0f;
  bool l2 = false;
  float wd = 0.0f;
  // sgd
  float lr = 0.0f, mom = 0.0f;
  bool has_mom = false, nesterov = false;
  // adam
  bool decoupled = false;
  float decay = 1.0f;  // 1 - lr * weight_decay (AdamW)
  float om1 = 0.0f, b2 = 0.0f, om2 = 0.0f, bc2_sqrt = 1.0f, eps = 0.0f, step_size = 0.0f;
  // rmsprop: alpha, 1 - alpha, centered; adagrad: clr = lr / (1 + (step - 1) lr_decay)
  float alpha = 0.0f, om_alpha = 0.0f, clr = 0.0f;
  bool centered = false;
  // ema
  bool ema = false, ema_overwrite = false;
  float ema_m = 0.0f, ema_om = 1.0f;
};

struct StepKernels {
  // One range [b, e) of the buffers; gscale multiplies the gradient (clipping by norm).
  void (*update)(const StepConsts& c, float gscale, float* p, const float* g, float* s0, float* s1,
                 float* s2, float* ema, int64_t b, int64_t e);
  // sum of g[i]^2 over [b, e)
  double (*sumsq)(const float* g, int64_t b, int64_t e);
};

namespace optstep_generic {
extern const StepKernels kernels;
}
namespace optstep_avx2 {
extern const StepKernels kernels;
}
namespace optstep_avx512 {
extern const StepKernels kernels;
}

}  // namespace cnnx
