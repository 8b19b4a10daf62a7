// A compiled inference pass: a fixed list of layer ops over per-image
// buffers, run by one call. Small networks lose most of their time between
// kernels (a Python call, an allocation, a fork/join per layer); a plan
// removes all three:
//   - one call runs every layer;
//   - activations live in a thread-local arena that is reused across calls;
//   - with several images, each thread runs the WHOLE network on its own
//     chunk of images (no fork/join per layer, and a chunk's activations
//     stay in the core's L2); with one image the kernels thread themselves.
// Batch norm is folded into the preceding convolution or dense layer on every
// run, from the live parameter arrays, so a plan never serves stale weights.
//
// Buffers are numbered by the caller: 0 is the plan's input, 1 its output,
// the others scratch; sizes are floats per image. Ops read and write them by
// number (a Flatten is simply the same buffer seen as rows).
//
// The plan keeps raw pointers to the weights it was given: the caller keeps
// them alive (the Python binding holds references).
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/pool.h"

namespace cnnx {

enum class PlanAct : int { none = 0, relu = 1, leaky_relu = 2, sigmoid = 3, tanh = 4, softmax = 5 };

// Inference-form batch norm: y = gamma * (x - mean) / sqrt(var + eps) + beta.
// gamma or beta may be null (scale = 1 / shift = 0).
struct PlanBatchNorm {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  const float* mean = nullptr;
  const float* var = nullptr;
  float eps = 1e-3f;
};

enum class PlanPool : int { max = 0, avg = 1, adaptive_avg = 2, adaptive_max = 3, global_avg = 4 };

class InferencePlan {
 public:
  explicit InferencePlan(std::vector<int64_t> buffer_sizes);

  // s.N is ignored (set per chunk). bn (optional) is folded into w and bias.
  // residual >= 0: that buffer (the output's shape) is added before act, the
  // sum of a residual block fused into its last convolution.
  void add_conv(int in, int out, const Conv2dShape& s, const float* w, const float* bias,
                PlanAct act, float alpha, const PlanBatchNorm* bn, int residual = -1);
  // x (rows, in_f) @ w (in_f, out_f) + bias.
  void add_dense(int in, int out, int64_t in_f, int64_t out_f, const float* w, const float* bias,
                 PlanAct act, float alpha, const PlanBatchNorm* bn);
  // x (h, w, c) per image; p used by max/avg, (oh, ow) by the adaptive ones.
  void add_pool(int in, int out, PlanPool kind, const PoolShape& s, const Pool2dParams& p,
                bool count_include_pad, int64_t oh, int64_t ow);
  // Batch norm on its own over n values per image (channels = the last axis, c of them).
  void add_batch_norm(int in, int out, int64_t c, int64_t n, const PlanBatchNorm& bn);
  // act over n values per image; softmax runs over groups of k (the last axis).
  void add_activation(int in, int out, PlanAct act, float alpha, int64_t n, int64_t k);
  // out = act(a + b), n values per image (the residual sum).
  void add_add(int a, int b, int out, PlanAct act, float alpha, int64_t n, int64_t k);

  // x: N images of buffer 0's size; y: N outputs of buffer 1's size.
  void run(const float* x, int64_t N, float* y);

  // CPU seconds of the calling thread spent in each op, per run, averaged
  // over `reps` runs of x chunk by chunk as run() does on one thread (for
  // profiles; CPU time so that other processes do not distort it).
  std::vector<double> profile(const float* x, int64_t N, float* y, int reps);
  // "conv", "dense", ... for op i (profiles).
  const char* op_name(size_t i) const;

  // For batches too small to split by images: -1 measure and choose (the
  // default), 0 one thread, 1 cooperative (tests pin each).
  void set_small_batch_mode(int mode) { small_batch_mode_ = mode < 0 ? -1 : (mode > 0 ? 1 : 0); }

  double flops_per_image() const { return flops_; }
  size_t op_count() const { return ops_.size(); }

 private:
  enum class Kind { conv, dense, pool, batch_norm, activation, add };
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
    bool has_bn = false;
    PlanBatchNorm bn;
    int64_t channels = 0;          // the channel count of w's last axis / of a bn
    std::vector<float> wf, bf;     // folded weights and bias (with bn)
    std::vector<float> scale;      // the bn's per-channel scale
    std::vector<float> inv_std;    // standalone bn
    PlanAct act = PlanAct::none;
    float alpha = 0.0f;
    int64_t n = 0, k = 1;          // values per image; softmax group
  };

  void check_buffer(int id, int64_t floats, const char* what) const;
  void fold(int64_t max_n);  // max_n: the largest chunk of this run
  void run_chunk(const float* x, int64_t n, float* y, float* arena, int64_t chunk);
  void run_op_part(Op& op, float* const* buf, int64_t n, int part, int parts);
  void run_cooperative(const float* x, int64_t N, float* y, int workers, int64_t cap);

  std::vector<int64_t> sizes_;   // floats per image, per buffer
  std::vector<int64_t> offset_;  // per-image offset of each scratch buffer in the arena
  int64_t arena_per_image_ = 0;
  std::vector<Op> ops_;
  double flops_ = 0.0;
  // Serial or cooperative for batches too small to split by images: chosen
  // by measurement (see run()).
  struct ModeChooser {
    double best[2] = {0.0, 0.0};  // fastest per-image time: [0] one thread, [1] cooperative
    int seen[2] = {0, 0};         // runs measured in this window
    int64_t calls = 0, next_probe = 0, interval = 32;
    bool probing = false;
    bool pick();
    void record(bool coop, double secs);
  } chooser_;
  int small_batch_mode_ = -1;
  std::mutex mu_;  // fold() writes the op's folded weights: one run at a time
};

}  // namespace cnnx
