// One optimiser step over a model's flat parameter buffer, everything fused:
// gradient clipping (Keras's clipnorm / global_clipnorm / clipvalue), the
// update rule (torch.optim's SGD, Adam / AdamW, RMSprop, Adagrad) and an
// exponential moving average of the weights (Keras's use_ema). At most two
// passes over memory: one for the gradient norms when clipping by norm, one
// for everything else.
//
// The buffer is updated only inside `segments`: [begin, end) ranges of
// element indices (the trainable parameters; frozen layers lie outside).
// With clip = per_segment_norm each segment is one parameter tensor and is
// clipped on its own; with global_norm the norm is over all segments.
#pragma once
#include <cstdint>

namespace cnnx {

enum class OptimRule : int { sgd = 0, adam = 1, rmsprop = 2, adagrad = 3 };

enum class ClipMode : int {
  none = 0,
  per_segment_norm = 1,  // g *= c / max(||g_segment||, c)     (Keras clipnorm)
  global_norm = 2,       // g *= c / max(||g_all||, c)         (Keras global_clipnorm)
  value = 3,             // g = min(max(g, -c), c)             (Keras clipvalue)
};

// Hyper-parameters are doubles so that derived constants (1 - beta, bias
// corrections) are rounded to float once, as PyTorch does with Python floats.
struct OptimStepArgs {
  OptimRule rule = OptimRule::sgd;
  double lr = 0.01;
  double weight_decay = 0.0;                      // L2 added to the gradient (AdamW: decoupled)
  double momentum = 0.0;                          // sgd, rmsprop
  bool nesterov = false;                          // sgd
  bool decoupled = false;                         // adam -> AdamW
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam; eps also rmsprop, adagrad
  double alpha = 0.99;                            // rmsprop: smoothing of the squared gradients
  bool centered = false;                          // rmsprop
  double lr_decay = 0.0;                          // adagrad
  int64_t step = 1;                               // the step being taken, from 1 (adam, adagrad)
  ClipMode clip = ClipMode::none;
  double clip_value = 0.0;  // > 0 when clip != none
  // EMA of the weights, after the update: ema = m * ema + (1 - m) * param;
  // then param = ema when ema_overwrite.
  bool ema = false;
  double ema_momentum = 0.99;
  bool ema_overwrite = false;
};

// State buffers by rule (each n floats, null when unused):
//   sgd:     s0 = velocity (momentum > 0)
//   adam:    s0 = m, s1 = v
//   rmsprop: s0 = square_avg, s1 = momentum buffer (momentum > 0), s2 = grad_avg (centered)
//   adagrad: s0 = sum of squared gradients
// Throws std::invalid_argument for a buffer the rule needs that is null, or
// segments outside [0, n) / overlapping / unsorted.
void optimizer_step(const OptimStepArgs& a, float* param, const float* grad, float* s0, float* s1,
                    float* s2, float* ema, int64_t n, const int64_t* segments, int64_t n_segments);

// The L2 norm of grad over each segment (segments as above; double sums).
void segment_norms(const float* grad, const int64_t* segments, int64_t n_segments, double* norms);

}  // namespace cnnx
