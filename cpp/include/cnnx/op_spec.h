// One description of a graph op, shared by both compiled plans: the
// inference pass (cnnx/plan.h) and the training step (cnnx/train_plan.h).
//
// The Python side lowers every model into a typed op graph
// (python/cnnx/graph/), runs its fusion passes once, and hands each op to a
// plan as an OpSpec: what the op is (kind), which values it reads and
// writes, its geometry, the live weights it reads and, for training, the
// slots of the model's flat gradient buffer it writes. The enums below cross
// into Python once, through pybind11 (cnnx._core.OpKind, Act, PoolKind,
// EltwiseKind, LossKind), so no kind is a bare integer anywhere.
//
// Values are numbered by the caller; sizes are floats per image. A plan
// keeps raw pointers to the arrays it is given: the caller keeps them alive.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cnnx/augment.h"
#include "cnnx/conv.h"
#include "cnnx/conv_transpose.h"
#include "cnnx/eltwise.h"
#include "cnnx/layout.h"
#include "cnnx/int8.h"
#include "cnnx/pool.h"

namespace cnnx {

// What an op computes. The graph knows a few kinds no plan runs (a user's
// Python layer, dropout, a reshape that the graph resolves into a view);
// plans refuse those and the model then runs layer by layer.
enum class OpKind : int {
  conv2d = 0,      // in[0] -> out; in[1] (inference only): a residual added before act
  dense = 1,       // rows of in_f -> rows of out_f
  pool = 2,        // max / avg / adaptive / global average pooling
  batch_norm = 3,  // inference: running statistics; training: batch statistics
  activation = 4,  // elementwise (softmax over the last axis, k values)
  eltwise = 5,     // n inputs of the same size: add, sub (two), mul, avg
  concat = 6,      // n inputs along one axis
  reshape = 7,     // the same values seen with another shape (graph only)
  dropout = 8,     // identity at inference (graph only)
  python = 9,      // a layer without a lowering (graph only)
  // Preprocessing and augmentation (issue 21; numbered from 40 so that kinds
  // other branches append keep their numbers): cnnx/augment.h.
  rescale = 40,    // y = x * w[c] + bias[c] (Rescaling)
  normalize = 41,  // y = (x - bn.mean[c]) / max(sqrt(bn.var[c]), bn.eps) (Normalization)
  augment = 42,    // a random transform per image in training (aug, seed); inference:
                   // the identity, or a crop's centred resize
  // Layout ops and the transposed convolution (issue 19, part b; numbered
  // from 20 so that kinds added elsewhere meanwhile keep their numbers).
  conv_transpose2d = 20,  // in[0] -> out; weights as conv2d (cnnx/conv_transpose.h)
  pad2d = 21,             // constant / reflect / edge padding; constant crops too
  upsample2d = 22,        // nearest / bilinear by integer factors
  depth_to_space = 23,    // DCR / CRD (PixelShuffle)
  space_to_depth = 24,
  channel_shuffle = 25,  // over the last axis
  transpose = 26,        // per-example axes permuted
  // issue 19, layers-a (numbered from 30: the layout ops hold 20-26)
  prelu = 30,       // x > 0 ? x : slope * x; `channels` slopes repeat along the values
  lrn = 31,         // local response normalisation over the last axis (lrn_*)
  group_norm = 32,  // per example and group of channels; affine gamma / beta (w / bias)
  layer_norm = 33,  // over the last axis per row; affine gamma / beta (w / bias)

  // int8 inference (cnnx/int8.h; inference plans only). Numbered apart, so
  // that fp32 kinds added after `python` never collide with them. A uint8
  // value takes one byte per element in its buffer (see op_input_is_u8).
  quantize = 64,    // float -> uint8 (count values, qout)
  dequantize = 65,  // uint8 (qin[0]) -> float (count values)
  qconv2d = 66,     // uint8 -> qstore (uint8 with qout, or float): conv geometry, qw, bias, qact
  qdense = 67,      // uint8 rows of in_f -> rows of out_f, stored as qconv2d
  qpool = 68,       // uint8 pooling: max (the output keeps qin[0]), avg, global_avg (qout)
  qadd = 69,        // two uint8 inputs of count values -> uint8 (qout), qact none or relu
  qconcat = 70,     // uint8 inputs as concat; one whose qin differs from qout is requantised
};

enum class PlanAct : int {
  none = 0,
  relu = 1,
  leaky_relu = 2,
  sigmoid = 3,
  tanh = 4,
  softmax = 5,
  // issue 19 (cnnx/activation.h: Pointwise); alpha / beta are their parameters
  elu = 6,
  selu = 7,
  gelu = 8,
  gelu_tanh = 9,
  silu = 10,
  hardswish = 11,
  hardsigmoid = 12,
  clip = 13,
  softplus = 14,
  softsign = 15,
  log_softmax = 16,  // over groups of k values, as softmax
};
constexpr int kPlanActCount = 17;

// Activations over groups of k values (the last axis) rather than elementwise.
inline bool grouped_act(PlanAct a) { return a == PlanAct::softmax || a == PlanAct::log_softmax; }

enum class PlanPool : int { max = 0, avg = 1, adaptive_avg = 2, adaptive_max = 3, global_avg = 4 };

// Training heads (cnnx/train_plan.h).
enum class LossKind : int {
  softmax_cross_entropy = 0,         // logits and int64 labels in [0, K)
  mean_squared_error = 1,            // outputs and float targets of the same size
  mean_absolute_error = 2,           // (float targets)
  huber = 3,                         // param: delta (float targets)
  softmax_cross_entropy_soft = 4,    // logits and target distributions (float)
  sigmoid_binary_cross_entropy = 5,  // logits and targets in [0, 1] (float)
  binary_cross_entropy = 6,          // probabilities and targets in [0, 1] (float)
  external = 7,                      // the gradient comes from the caller (TrainPlan::backward)
};

const char* op_kind_name(OpKind k);

// Batch normalisation's arrays: gamma/beta may be null (scale 1 / shift 0).
// Training writes the running statistics in place (running = (1 - momentum)
// * running + momentum * batch) and the gradients to dgamma/dbeta (null: frozen).
struct BatchNormSpec {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float* mean = nullptr;
  float* var = nullptr;
  float eps = 1e-3f;
  float momentum = 0.01f;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
};

// The geometry of the layout ops (cnnx/layout.h): each reads one (h, w, c)
// image per example (channel_shuffle: h*w pixels of c channels; transpose:
// any per-example shape).
struct LayoutSpec {
  int64_t h = 0, w = 0, c = 0;
  PadMode pad_mode = PadMode::constant;  // pad2d: (top, bottom, left, right)
  int64_t pads[4] = {0, 0, 0, 0};
  float value = 0.0f;
  UpsampleMode up_mode = UpsampleMode::nearest;  // upsample2d
  int64_t fh = 1, fw = 1;
  int64_t block = 1;  // depth_to_space / space_to_depth
  DepthOrder order = DepthOrder::dcr;
  int64_t groups = 1;          // channel_shuffle
  std::vector<int64_t> shape;  // transpose: input shape and permutation
  std::vector<int> perm;
};

struct OpSpec {
  OpKind kind = OpKind::conv2d;
  std::vector<int> in;  // value ids read
  int out = -1;         // the value written

  Conv2dShape conv;               // conv2d (N ignored)
  int64_t in_f = 0, out_f = 0;    // dense
  PlanPool pool = PlanPool::max;  // pool: kind, input (n ignored), window,
  PoolShape ps{1, 0, 0, 0};       //   and the output size of adaptive pools
  Pool2dParams pp{1, 1, 1, 1, 0, 0, 0, 0};
  bool count_include_pad = false;
  int64_t oh = 0, ow = 0;

  // conv2d / dense weights (bias may be null) and their gradient slots
  // (training; null: a frozen layer, whose gradient still flows to its input)
  const float* w = nullptr;
  const float* bias = nullptr;
  float* dw = nullptr;
  float* db = nullptr;

  // batch_norm, or (inference) a batch norm folded into conv2d / dense
  bool has_bn = false;
  BatchNormSpec bn;

  // The activation: of an activation op, or in the store of conv2d, dense
  // and eltwise. Softmax runs over groups of k values (the last axis).
  PlanAct act = PlanAct::none;
  float alpha = 0.0f;
  int64_t k = 1;

  EltwiseKind eltwise = EltwiseKind::add;

  // concat (and its backward, a split): per image, `outer` blocks; input i
  // contributes inner[i] consecutive floats to each block.
  int64_t outer = 1;
  std::vector<int64_t> inner;

  // batch_norm: channels (the last axis; it divides the values per image)
  int64_t channels = 0;

  // activation, eltwise, batch_norm: values per image of each input and of
  // the output (an inference plan's buffers may be larger than the values)
  int64_t count = 0;

  // Training fusions decided by the graph's passes: a conv/dense whose ReLU
  // mask a following max pool applies (to the pooled gradient, k*k times
  // fewer values), and that max pool.
  bool relu_mask_applied_later = false;
  bool mask_grad_by_output = false;

  // ---- preprocessing and augmentation (issue 21) ----
  // rescale / normalize: `channels` constants (1: one for all values); value
  // i of an image uses constant (i / chan_inner) % channels. `count`: values
  // per image.
  int64_t chan_inner = 1;
  // augment: what it does, and the seed of the current step: a live value
  // the caller changes between steps (the plan reads it at each run, like
  // the weights). aug_training: the random transform (training plans) or
  // the inference form.
  AugmentSpec aug;
  const uint64_t* seed = nullptr;
  bool aug_training = false;
  // conv_transpose2d (N ignored; weights in w / bias / dw / db, act fused
  // like conv2d's) and the layout ops' geometry.
  ConvTranspose2dShape convt;
  LayoutSpec layout;
  // ---- issue 19 (layers-a) ----
  // The activation's second parameter: clip's max (alpha: its min), hard
  // sigmoid's offset (alpha: its slope), selu's scale (alpha: its alpha).
  float beta = 0.0f;
  // prelu: `channels` slopes in w (dw: their gradient). group_norm /
  // layer_norm: `channels` channels, gamma / beta in w / bias (either may be
  // null), gradients in dw / db, `groups` groups (group_norm), epsilon `eps`.
  // lrn: `channels` channels, an odd window `lrn_size`, lrn_alpha, lrn_beta
  // and lrn_bias as ONNX's LRN. `count`: values per image, as elementwise ops.
  int64_t groups = 1;
  float eps = 1e-5f;
  int64_t lrn_size = 5;
  float lrn_alpha = 1e-4f, lrn_beta = 0.75f, lrn_bias = 1.0f;
  // int8 ops: the quantisation of each uint8 input and of a uint8 output,
  // what qconv2d / qdense store (uint8 or float) with which clamp, their
  // packed weights (held, shared storage) and, besides the float `bias`, an
  // optional bias in accumulator units (cnnx/int8.h, QEpilogue::bias_acc).
  std::vector<QuantParams> qin;
  QuantParams qout;
  QOutput qstore = QOutput::u8;
  QActivation qact = QActivation::none;
  QPackedWeights qw;
  const int32_t* qbias = nullptr;
};

// What a loss op of the training step reads and how it is weighted.
struct LossSpec {
  LossKind kind = LossKind::softmax_cross_entropy;
  int value = -1;       // the value the loss reads (logits / outputs)
  int target = 0;       // index into the step's targets (external: into the given gradients)
  float weight = 1.0f;  // the loss's weight in the total
  float param = 0.0f;   // huber: delta
  // cross-entropies: the classes (the value's last axis); a value of several
  // rows per image (per-pixel classes) gives a loss per pixel, averaged per
  // image. 0: the whole value is one row.
  int64_t classes = 0;
};

// Values per image each input of the op holds, from its geometry.
std::vector<int64_t> op_input_sizes(const OpSpec& op);

// int8 kinds (quantize .. qconcat), which only inference plans run.
bool op_is_int8(OpKind k);
// Whether input i / the output holds uint8 values (one byte each) rather than floats.
bool op_input_is_u8(const OpSpec& op, size_t i);
bool op_output_is_u8(const OpSpec& op);

// Values per image the op writes. Checks the whole description (kind,
// input count, geometry, activation) and throws std::invalid_argument
// naming what is wrong.
int64_t op_output_size(const OpSpec& op);

// 2 * multiply-adds per image (for thread decisions and profiles).
double op_flops(const OpSpec& op);

// Convenience builders for C++ callers and tests.
OpSpec conv_op(int in, int out, const Conv2dShape& s, const float* w, const float* bias,
               PlanAct act = PlanAct::none);
OpSpec dense_op(int in, int out, int64_t in_f, int64_t out_f, const float* w, const float* bias,
                PlanAct act = PlanAct::none);
OpSpec pool_op(int in, int out, PlanPool kind, const PoolShape& s, const Pool2dParams& p,
               bool count_include_pad = false, int64_t oh = 0, int64_t ow = 0);
OpSpec activation_op(int in, int out, int64_t count, PlanAct act, float alpha = 0.0f,
                     int64_t k = 1);
OpSpec eltwise_op(std::vector<int> in, int out, int64_t count, EltwiseKind kind,
                  PlanAct act = PlanAct::none);
OpSpec batch_norm_op(int in, int out, int64_t count, int64_t channels, const BatchNormSpec& bn);
OpSpec concat_op(std::vector<int> in, int out, int64_t outer, std::vector<int64_t> inner);
OpSpec prelu_op(int in, int out, int64_t count, int64_t slopes, const float* slope);
OpSpec lrn_op(int in, int out, int64_t count, int64_t channels, int64_t size, float alpha,
              float beta, float bias);
OpSpec group_norm_op(int in, int out, int64_t count, int64_t channels, int64_t groups,
                     const float* gamma, const float* beta, float eps);
OpSpec layer_norm_op(int in, int out, int64_t count, int64_t channels, const float* gamma,
                     const float* beta, float eps);

}  // namespace cnnx
