// A compiled training step: forward, softmax-cross-entropy and backward of a
// whole Sequential in one call, weight gradients written straight into the
// model's flat gradient buffer (the optimiser then runs one fused update).
//
// Why: at batch 1 the Python side of a layer-by-layer step (a call, an
// allocation and a gradient copy per layer) costs as much as the kernels;
// at larger batches each layer's fork/join and the activations' trips to
// memory do. Here activations and gradients live in arenas reused across
// steps, and with enough images each thread runs the whole step on its own
// slice of the batch (kernels on one thread, private weight gradients summed
// at the end): one fork/join per step, each slice's data in its core's cache.
//
// Values are numbered by the caller (0 is the input, the last one the
// logits); sizes are floats per image. A value read by two ops (a residual
// block's input) gets the sum of both gradients.
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/plan.h"
#include "cnnx/pool.h"

namespace cnnx {

class TrainPlan {
 public:
  // value_sizes[v]: floats per image of value v; the last value is the
  // logits (classes per image). grads/n_grads: the model's flat gradient
  // buffer, which every dw/db given below must point into.
  TrainPlan(std::vector<int64_t> value_sizes, float* grads, int64_t n_grads);

  // dw/db null: a frozen layer (no weight gradients; dx still flows).
  void add_conv(int in, int out, const Conv2dShape& s, const float* w, const float* bias,
                bool relu, float* dw, float* db);
  void add_dense(int in, int out, int64_t in_f, int64_t out_f, const float* w, const float* bias,
                 bool relu, float* dw, float* db);
  void add_pool(int in, int out, PlanPool kind, const PoolShape& s, const Pool2dParams& p,
                bool count_include_pad, int64_t oh, int64_t ow);
  // relu, leaky_relu, sigmoid, tanh; softmax over groups of k.
  void add_activation(int in, int out, PlanAct act, float alpha, int64_t k);
  // out = act(a + b), act none or relu.
  void add_add(int a, int b, int out, PlanAct act);
  // Batch norm in training form over the last axis (c channels): batch
  // statistics, running statistics updated in place (running = (1 - momentum)
  // * running + momentum * batch). gamma/beta (and dgamma/dbeta) may be null.
  // A plan with batch norm runs serially (kernels thread themselves): the
  // statistics are over the whole batch.
  void add_batch_norm(int in, int out, int64_t c, const float* gamma, const float* beta,
                      float* running_mean, float* running_var, float momentum, float eps,
                      float* dgamma, float* dbeta);

  // One forward + loss + backward over N images with integer labels in
  // [0, classes). Writes the logits (N x classes) and returns the mean loss.
  // Throws std::invalid_argument("labels: ...") for a label out of range.
  double step(const float* x, const int64_t* labels, int64_t N, float* logits);

  double flops_per_image() const { return flops_; }

 private:
  enum class Kind { conv, dense, pool, activation, add, batch_norm };
  struct Op {
    Kind kind;
    int in = -1, in2 = -1, out = -1;
    Conv2dShape conv;
    int64_t in_f = 0, out_f = 0;
    PlanPool pool = PlanPool::max;
    PoolShape ps{};
    Pool2dParams pp{};
    bool count_include_pad = false;
    int64_t oh = 0, ow = 0;
    const float* w = nullptr;
    const float* bias = nullptr;
    int64_t dw_off = -1, db_off = -1;  // offsets into the gradient buffer, -1 none
    PlanAct act = PlanAct::none;
    float alpha = 0.0f;
    int64_t k = 1;
    bool relu_masked_later = false;  // a following max pool applies this op's ReLU mask
    bool mask_output_grad = false;   // max pool: mask dy with y > 0 (the ReLU before it)
    bool first_grad[2] = {true, true};  // first backward writer of in / in2's gradient
    // batch norm
    const float* beta = nullptr;
    float *running_mean = nullptr, *running_var = nullptr;
    float momentum = 0.0f, eps = 0.0f;
    int64_t channels = 0;
    std::vector<float> save_mean, save_inv_std;
  };

  void check_value(int v, int64_t floats, const char* what) const;
  void finalize();
  void forward_op(Op& op, float* const* val, int64_t n);
  void backward_op(const Op& op, float* const* val, float* const* grad, int64_t n, float* dgrads);
  double run_slice(const float* x, const int64_t* labels, int64_t i0, int64_t n, int64_t N,
                   float* logits, float* dgrads);

  std::vector<int64_t> sizes_;
  std::vector<int64_t> offset_;  // per-image offset of each value in the arenas
  int64_t per_image_ = 0;
  std::vector<Op> ops_;
  float* grads_;
  int64_t n_grads_;
  double flops_ = 0.0;
  bool finalized_ = false;
  bool has_batch_norm_ = false;
  std::vector<float> values_, value_grads_;  // N * per_image_ each
  std::vector<std::vector<float>> private_grads_;  // threads > 0
  std::mutex mu_;
};

}  // namespace cnnx
