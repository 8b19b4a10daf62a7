// A compiled inference pass: a fixed list of ops (cnnx/op_spec.h) over
// per-image buffers, run by one call. Small networks lose most of their
// time between kernels (a Python call, an allocation, a fork/join per
// layer); a plan removes all three:
//   - one call runs every op of the graph;
//   - activations live in a thread-local arena that is reused across calls;
//   - with several images, each thread runs the WHOLE network on its own
//     chunk of images (no fork/join per layer, and a chunk's activations
//     stay in the core's L2); with one image the kernels thread themselves,
//     or every thread takes a part of every op (the cooperative mode).
// Batch norm folded into a convolution or dense op is applied on every run
// from the live parameter arrays, so a plan never serves stale weights.
// Convolutions whose fastest kernel reads packed weights (ConvPacked) pack
// them on their first run and keep a copy of the raw weights: every run
// compares the live weights with that copy and repacks a layer that changed.
//
// Buffers are numbered by the caller (python/cnnx/graph assigns them by
// liveness): the first n_inputs are the plan's inputs, the next n_outputs its
// outputs (the caller's arrays), the others scratch; sizes are floats per
// image. A buffer may be larger than a value it holds (buffers are reused).
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "cnnx/op_spec.h"

namespace cnnx {

class InferencePlan {
 public:
  InferencePlan(std::vector<int64_t> buffer_sizes, int n_inputs = 1, int n_outputs = 1);

  // Appends an op (ops run in the order added). Checks the op's geometry and
  // buffers; throws std::invalid_argument naming what is wrong. A conv2d op
  // may take a second input: a residual added in its store before act.
  void add(const OpSpec& op);

  // x[i]: N images of input buffer i; y[o]: N outputs of output buffer o.
  void run(const float* const* x, int64_t N, float* const* y);
  void run(const float* x, int64_t N, float* y) { run(&x, N, &y); }

  // CPU seconds of the calling thread spent in each op, per run, summed over
  // `reps` runs of x chunk by chunk as run() does on one thread (profiles;
  // CPU time so that other processes do not distort it). parts > 1: each op
  // in the parts of a cooperative run, run one after another, the slowest
  // part counted (a busy machine's estimate of the run on idle cores).
  std::vector<double> profile(const float* const* x, int64_t N, float* const* y, int reps,
                              int parts = 1);
  const char* op_name(size_t i) const;

  // For batches too small to split by images: -1 measure and choose (the
  // default), 0 one thread, 1 cooperative (tests pin each).
  void set_small_batch_mode(int mode) { small_batch_mode_ = mode < 0 ? -1 : (mode > 0 ? 1 : 0); }

  double flops_per_image() const { return flops_; }
  size_t op_count() const { return ops_.size(); }
  int n_inputs() const { return n_in_; }
  int n_outputs() const { return n_out_; }
  int64_t buffer_size(int i) const { return sizes_.at(static_cast<size_t>(i)); }

 private:
  struct Op {
    OpSpec s;
    int64_t n = 0;               // values per image written
    std::vector<float> wf, bf;   // weights and bias with a batch norm folded in
    std::vector<float> scale;    // the folded batch norm's per-channel scale
    std::vector<float> inv_std;  // a standalone batch norm's 1/sqrt(var + eps)
    // conv2d: the weights packed for ConvPacked's kernels (packed == 1), the
    // fingerprints of the raw weights they were packed from, one per piece
    // (to notice edits), -1 not decided yet.
    ConvPacked cp;
    std::vector<uint32_t> wprint;
    int packed = -1;
  };

  void check_buffer(int id, int64_t floats, const char* what) const;
  void fold(int64_t max_n);  // max_n: the largest chunk of this run
  void refresh_packed(int64_t max_n);
  void set_buffers(std::vector<float*>& buf, const float* const* x, float* const* y, int64_t i,
                   float* arena, int64_t chunk) const;
  void run_chunk(const float* const* x, float* const* y, int64_t i, int64_t n, float* arena,
                 int64_t chunk, size_t last);
  void find_tail();
  void point_tail(std::vector<float*>& buf, int64_t i) const;
  void run_tail(const float* const* x, int64_t N, float* const* y);
  void run_op_part(Op& op, float* const* buf, int64_t n, int part, int parts);
  void run_cooperative(const float* const* x, int64_t N, float* const* y, int workers, int64_t cap);

  std::vector<int64_t> sizes_;   // floats per image, per buffer
  std::vector<int64_t> offset_;  // per-image offset of each scratch buffer in the arena
  int n_in_ = 1, n_out_ = 1;
  int64_t arena_per_image_ = 0;
  std::vector<Op> ops_;
  double flops_ = 0.0;
  // The batch-wide tail: when a batch runs in chunks smaller than itself,
  // ops [tail_, end) (small values per image: after the global pooling) run
  // once over the whole batch, so a classifier's weights are read once per
  // batch, not once per chunk. tail_off_[b]: buffer b's per-image offset in
  // tail_arena_ (-1: not used by the tail).
  size_t tail_ = static_cast<size_t>(-1);
  std::vector<int64_t> tail_off_;
  int64_t tail_per_image_ = 0, tail_batch_ = 0;
  std::vector<float> tail_arena_;
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
