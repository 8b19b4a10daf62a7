// A compiled training step: forward, the losses and backward of a whole
// graph model in one call, weight gradients written straight into the
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
// Values are numbered by the caller (python/cnnx/graph): the first
// n_inputs are the step's inputs, every other value is written by exactly
// one op, and ops come in an order where each reads only values written
// before it. A value read by several ops gets the sum of their gradients.
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "cnnx/op_spec.h"

namespace cnnx {

class TrainPlan {
 public:
  // value_sizes[v]: floats per image of value v. grads/n_grads: the model's
  // flat gradient buffer, which every gradient slot of an op must point into.
  TrainPlan(std::vector<int64_t> value_sizes, int n_inputs, float* grads, int64_t n_grads);

  // Appends an op (kinds: conv2d without residual, dense, pool, activation,
  // batch_norm, eltwise, concat). Null gradient slots: a frozen layer (no
  // weight gradients; the gradient still flows to its input). A plan with a
  // batch norm runs its steps serially (the kernels thread themselves): the
  // statistics are over the whole batch.
  void add(const OpSpec& op);
  // A loss term on a value; the step's loss is the sum of the weighted terms.
  void add_loss(const LossSpec& loss);
  // The values step() writes to the caller's arrays (e.g. the model's outputs).
  void set_outputs(std::vector<int> values);

  // One forward + losses + backward over N images.
  //   x[i]        N rows of input i;
  //   targets[j]  the target of loss j: N int64 labels (cross-entropy) or N
  //               rows of floats of the value's size (squared error);
  //   sample_weight  N weights of the samples, or null (all 1);
  //   out[o]      N rows of output value o (see set_outputs);
  //   loss_parts  null, or one entry per loss: its term before the weight.
  // Each term is weight * sum_i(w_i * loss_i) / N (Keras's
  // "sum over batch size"). Returns the total. Throws
  // std::invalid_argument("labels: ...") for a label out of range.
  double step(const float* const* x, const void* const* targets, const float* sample_weight,
              int64_t N, float* const* out, double* loss_parts);

  // The same step in two calls, for losses computed by the caller (kind
  // external): forward() writes the outputs; the caller computes the
  // gradient of each external loss w.r.t. its value (the loss's mean over
  // the batch, before its weight); backward() takes them (given[target]: N
  // rows), computes the other losses and runs backward. x and out must be
  // the arrays forward() had. Returns the total of the C++-computed terms.
  void forward(const float* const* x, int64_t N, float* const* out);
  double backward(const float* const* x, float* const* out, const void* const* targets,
                  const float* sample_weight, const float* const* given, int64_t N,
                  double* loss_parts);

  double flops_per_image() const { return flops_; }
  // Floats per image the step keeps (values needed by backward, gradients in
  // flight), after the first step planned them.
  int64_t arena_floats_per_image() const { return val_per_image_ + grad_per_image_; }
  int n_inputs() const { return n_in_; }
  int64_t value_size(int v) const { return sizes_.at(static_cast<size_t>(v)); }
  const std::vector<LossSpec>& losses() const { return losses_; }
  const std::vector<int>& outputs() const { return outputs_; }

 private:
  struct Op {
    OpSpec s;
    int64_t dw_off = -1, db_off = -1;  // offsets into the gradient buffer, -1 none
    std::vector<char> first_grad;      // per input: this op's backward writes its gradient first
    std::vector<char> need_dx;         // per input: some parameter upstream needs the gradient
    bool run_backward = true;          // some loss depends on this op's output
    bool relu_in_place = false;        // a ReLU writing over its input (which nothing else reads)
    std::vector<float> save_mean, save_inv_std;  // batch norm (serial steps)
  };

  void check_value(int v, int64_t floats, const char* what) const;
  void finalize();
  // i0: the batch index of the slice's first image (per-image random draws)
  void forward_op(Op& op, float* const* val, int64_t n, int64_t i0);
  void backward_op(Op& op, float* const* val, float* const* grad, int64_t n, float* dgrads,
                   int64_t i0);
  void slice_pointers(const float* const* x, float* const* out, int64_t i0, int64_t n,
                      std::vector<float*>& val, std::vector<float*>& grad);
  void forward_slice(const float* const* x, float* const* out, int64_t i0, int64_t n);
  double backward_slice(const float* const* x, float* const* out, const void* const* targets,
                        const float* sample_weight, const float* const* given, int64_t i0,
                        int64_t n, int64_t N, float* dgrads, double* parts);
  void check_targets(const void* const* targets, int64_t N) const;
  int prepare(int64_t N);
  template <class F>
  void in_slices(int workers, int64_t N, bool reduce, F f);

  void plan_memory();

  std::vector<int64_t> sizes_;
  // Memory plan (finalize): per value, the per-image offset of its slot in
  // the value arena / the gradient arena, or -1 (an input, an output written
  // to the caller's array, or no gradient). Slots are shared by values whose
  // lifetimes do not overlap.
  std::vector<int64_t> val_off_, grad_off_;
  int n_in_ = 1;
  int64_t val_per_image_ = 0, grad_per_image_ = 0;
  std::vector<Op> ops_;
  std::vector<LossSpec> losses_;
  std::vector<char> loss_first_;  // per loss: it writes its value's gradient first
  std::vector<int> outputs_;
  std::vector<int> producer_;  // value -> op index (-1: an input)
  float* grads_;
  int64_t n_grads_;
  double flops_ = 0.0;
  bool finalized_ = false;
  bool has_batch_norm_ = false;
  int64_t pending_n_ = 0;  // the batch of a forward() awaiting its backward()
  int pending_workers_ = 1;
  std::vector<float> values_, value_grads_;        // N * val_per_image_ / N * grad_per_image_
  std::vector<std::vector<float>> private_grads_;  // threads > 0
  std::mutex mu_;
};

}  // namespace cnnx
