// The compiled inference pass (see cnnx/plan.h): building the op list,
// batch-norm folding, the per-thread activation arena and the choice of how
// a run is split (image chunks per thread, or cooperative). How each op runs
// is in inference_plan_ops.cpp, the cooperative mode in inference_plan_coop.cpp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cnnx/plan.h"
#include "cnnx/threading.h"
#include "cnnx/cpu.h"
#include "common/scratch.h"
#include "plan/conv_direct_padded.h"
#include "plan/plan_internal.h"
#include "plan/weight_print.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {

using plan_detail::ceil_div;
using plan_detail::round16;

namespace {

// A chunk's activations should stay near the core (L2 is 1 MB on the
// machines we target); larger chunks also give the kernels more rows.
// Measured on one core (profile, CPU time, batch 64): 192 KB -> 22.5 / 36.5
// us per image (LeNet / small ResNet), 384 KB -> 22.6 / 33.3, 768 KB -> 21.6 /
// 32.5, 1536 KB -> 21.2 / 31.6.
constexpr int64_t kArenaBytes = 1024 * 1024;

// A cooperative run costs one barrier per op (well under a microsecond), not
// a fork/join per layer: it pays for work ~4x smaller than threads_for_flops
// assumes.
constexpr double kCooperativeGain = 4.0;

}  // namespace

InferencePlan::InferencePlan(std::vector<int64_t> buffer_sizes, int n_inputs, int n_outputs)
    : sizes_(std::move(buffer_sizes)), n_in_(n_inputs), n_out_(n_outputs) {
  if (n_in_ < 1 || n_out_ < 1 || sizes_.size() < static_cast<size_t>(n_in_ + n_out_))
    throw std::invalid_argument("buffers: need at least the inputs and outputs");
  offset_.assign(sizes_.size(), 0);
  int64_t off = 0;
  for (size_t i = 0; i < sizes_.size(); ++i) {
    if (sizes_[i] < 0) throw std::invalid_argument("buffers: sizes must be >= 0");
    if (i < static_cast<size_t>(n_in_ + n_out_)) continue;  // the caller's arrays
    offset_[i] = off;
    off += round16(sizes_[i]);
  }
  arena_per_image_ = off;
}

void InferencePlan::check_buffer(int id, int64_t floats, const char* what) const {
  if (id < 0 || id >= static_cast<int>(sizes_.size()))
    throw std::invalid_argument(std::string(what) + ": buffer " + std::to_string(id) +
                                " does not exist");
  if (sizes_[id] < floats)
    throw std::invalid_argument(std::string(what) + ": buffer " + std::to_string(id) + " holds " +
                                std::to_string(sizes_[id]) + " floats per image, the op needs " +
                                std::to_string(floats));
}

void InferencePlan::add(const OpSpec& spec) {
  const char* what = op_kind_name(spec.kind);
  const int64_t n_out = op_output_size(spec);
  const std::vector<int64_t> in_sizes = op_input_sizes(spec);
  // Buffers may be larger than the values they hold (they are reused); a
  // uint8 value needs a quarter of the floats.
  auto floats = [](int64_t n, bool u8) { return u8 ? (n + 3) / 4 : n; };
  for (size_t i = 0; i < spec.in.size(); ++i)
    check_buffer(spec.in[i], floats(in_sizes[i], op_input_is_u8(spec, i)), what);
  check_buffer(spec.out, floats(n_out, op_output_is_u8(spec)), what);
  if (spec.out < n_in_)
    throw std::invalid_argument(std::string(what) + ": cannot write an input buffer");
  // Elementwise ops may work in place on their first input; others need a fresh buffer.
  const bool elementwise = spec.kind == OpKind::activation || spec.kind == OpKind::eltwise ||
                           spec.kind == OpKind::batch_norm;
  for (size_t i = 0; i < spec.in.size(); ++i)
    if (spec.in[i] == spec.out && !(elementwise && i == 0))
      throw std::invalid_argument(std::string(what) + ": output must be a fresh buffer");
  Op op;
  op.s = spec;
  op.n = n_out;
  if (spec.kind == OpKind::conv2d || spec.kind == OpKind::qconv2d) op.s.conv.N = 1;
  if (spec.kind == OpKind::pool ||
      spec.kind == OpKind::qpool) {  // strided pools: their output size
    op.s.ps.n = 1;
    plan_detail::pool_output_values(op.s.pool, op.s.ps, op.s.pp, &op.s.oh, &op.s.ow);
  }
  if (spec.has_bn) {
    if (spec.kind != OpKind::conv2d && spec.kind != OpKind::dense)
      throw std::invalid_argument("batch norm: only conv2d and dense fold one");
    if (!spec.bn.mean || !spec.bn.var || !(spec.bn.eps > 0.0f))
      throw std::invalid_argument("batch norm: statistics and epsilon > 0 are needed");
    const int64_t C = spec.kind == OpKind::conv2d ? spec.conv.C_out : spec.out_f;
    const int64_t wn =
        spec.kind == OpKind::conv2d ? op.s.conv.weight_size() : spec.in_f * spec.out_f;
    op.wf.resize(wn);
    op.bf.resize(C);
    op.scale.resize(C);
    op.s.channels = C;
  }
  if (spec.kind == OpKind::batch_norm) op.inv_std.resize(spec.channels);
  flops_ += op_flops(op.s);
  ops_.push_back(std::move(op));
  tail_ = static_cast<size_t>(-1);  // found again at the next run
}

// Batch norm into the layer before it: scale s = gamma / sqrt(var + eps) per
// output channel, w' = w * s, b' = (b - mean) * s + beta. Recomputed on every
// run from the live arrays (a few microseconds), so nothing can go stale.
void InferencePlan::fold(int64_t max_n) {
  refresh_packed(max_n);
  for (Op& op : ops_) {
    const OpSpec& s = op.s;
    const BatchNormSpec& bn = s.bn;
    if (s.kind == OpKind::batch_norm) {
      for (int64_t c = 0; c < s.channels; ++c) op.inv_std[c] = 1.0f / std::sqrt(bn.var[c] + bn.eps);
      continue;
    }
    if (!s.has_bn) continue;
    const int64_t C = s.channels;
    float* scale = op.scale.data();
    for (int64_t c = 0; c < C; ++c)
      scale[c] = (bn.gamma ? bn.gamma[c] : 1.0f) / std::sqrt(bn.var[c] + bn.eps);
    for (int64_t c = 0; c < C; ++c) {
      const float b = s.bias ? s.bias[c] : 0.0f;
      op.bf[c] = (b - bn.mean[c]) * scale[c] + (bn.beta ? bn.beta[c] : 0.0f);
    }
    // The plan's direct kernel applies the scale in its store; only other
    // kernels need the scaled weights (a copy of them per run: at batch 1 on
    // the small ResNet that copy was 7 % of the run).
    const bool direct = s.kind == OpKind::conv2d && plan_detail::conv_direct_padded_ok(s.conv, 1) &&
                        plan_detail::conv_direct_padded_ok(s.conv, max_n);
    if (direct || op.packed == 1) continue;  // (ConvPacked scales in its store too)
    const int64_t rows = static_cast<int64_t>(op.wf.size()) / C;
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = s.w + r * C;
      float* dst = op.wf.data() + r * C;
      for (int64_t c = 0; c < C; ++c) dst[c] = src[c] * scale[c];
    }
  }
}

// Packs the weights of the convolutions that some image count of this run
// sends past the plan's own direct kernel, for ConvPacked, on their first run,
// and again whenever the live weights no longer match the fingerprints taken
// when they were packed (a user's in-place edit, a training step). The check
// is one read of the weights (ResNet-50 at batch 1, 2 threads: ~2.5 ms of a
// 38 ms run; comparing with a kept copy read twice as much, 5 ms, and held
// 100 MB), split over the threads in pieces of equal size, a fingerprint
// each. Layers that ConvPacked would only hand to conv2d_forward keep the
// plain path.
void InferencePlan::refresh_packed(int64_t max_n) {
  using plan_detail::kPrintWords;
  struct Piece {
    Op* op;
    size_t index, begin, end;
  };
  std::vector<Piece> pieces;
  constexpr size_t kPiece = 1 << 18;  // floats (1 MB)
  auto print_all = [](Op& op) {
    const size_t wn = static_cast<size_t>(op.s.conv.weight_size());
    op.wprint.resize(
        static_cast<size_t>(ceil_div(static_cast<int64_t>(wn), static_cast<int64_t>(kPiece))) *
        kPrintWords);
    for (size_t b = 0, i = 0; b < wn; b += kPiece, ++i)
      plan_detail::weight_print(op.s.w + b, static_cast<int64_t>(std::min(wn, b + kPiece) - b),
                                op.wprint.data() + i * kPrintWords);
  };
  for (Op& op : ops_) {
    const Conv2dShape& s = op.s.conv;
    if (op.s.kind != OpKind::conv2d || op.packed == 0) continue;
    if (plan_detail::conv_direct_padded_ok(s, 1) && plan_detail::conv_direct_padded_ok(s, max_n))
      continue;
    const size_t wn = static_cast<size_t>(s.weight_size());
    if (op.packed < 0) {
      ConvPacked cp(s, op.s.w);
      if (std::strcmp(cp.algorithm(), "conv2d") == 0) {
        op.packed = 0;
        continue;
      }
      op.cp = std::move(cp);
      print_all(op);
      op.packed = 1;
      continue;
    }
    for (size_t b = 0, i = 0; b < wn; b += kPiece, ++i)
      pieces.push_back({&op, i, b, std::min(wn, b + kPiece)});
  }
  if (pieces.empty()) return;
  std::vector<unsigned char> changed(pieces.size(), 0);
  const int64_t np = static_cast<int64_t>(pieces.size());
  auto check = [&](int64_t i) {
    const Piece& p = pieces[i];
    uint32_t now[kPrintWords];
    plan_detail::weight_print(p.op->s.w + p.begin, static_cast<int64_t>(p.end - p.begin), now);
    changed[i] = std::memcmp(now, p.op->wprint.data() + p.index * kPrintWords, sizeof(now)) != 0;
  };
  int nt = 1;
#ifdef CNNX_HAVE_OPENMP
  if (!omp_in_parallel()) nt = static_cast<int>(std::min<int64_t>(get_num_threads(), np));
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
  for (int64_t i = 0; i < np; ++i) check(i);
  Op* last = nullptr;
  for (int64_t i = 0; i < np; ++i) {
    Op* op = pieces[i].op;
    if (!changed[i] || op == last) continue;
    last = op;
    op->cp.repack(op->s.w);
    print_all(*op);
  }
}

// The buffers of images [i, i + chunk): the caller's inputs and outputs at
// image i, the scratch buffers in the arena.
void InferencePlan::set_buffers(std::vector<float*>& buf, const float* const* x, float* const* y,
                                int64_t i, float* arena, int64_t chunk) const {
  buf.resize(sizes_.size());
  for (int b = 0; b < n_in_; ++b) buf[b] = const_cast<float*>(x[b] + i * sizes_[b]);  // read only
  for (int o = 0; o < n_out_; ++o) buf[n_in_ + o] = y[o] + i * sizes_[n_in_ + o];
  for (size_t b = n_in_ + n_out_; b < sizes_.size(); ++b) buf[b] = arena + offset_[b] * chunk;
}

// Ops [0, last) on images [i, i + n).
void InferencePlan::run_chunk(const float* const* x, float* const* y, int64_t i, int64_t n,
                              float* arena, int64_t chunk, size_t last) {
  std::vector<float*> buf;
  set_buffers(buf, x, y, i, arena, chunk);
  if (last < ops_.size()) point_tail(buf, i);
  for (size_t k = 0; k < last; ++k) run_op_part(ops_[k], buf.data(), n, 0, 1);
}

// The tail: the longest run of last ops whose values are all small per
// image (at most kTailFloats), if it holds an op with weights worth reading
// once per batch (a dense layer or a convolution).
void InferencePlan::find_tail() {
  constexpr int64_t kTailFloats = 16384;
  size_t k = ops_.size();
  auto small = [&](const Op& op) {
    if (sizes_[op.s.out] > kTailFloats) return false;
    for (int b : op.s.in)
      if (sizes_[b] > kTailFloats) return false;
    return true;
  };
  while (k > 0 && small(ops_[k - 1])) --k;
  bool weighty = false;
  for (size_t j = k; j < ops_.size(); ++j)
    weighty = weighty || ops_[j].s.kind == OpKind::dense || ops_[j].s.kind == OpKind::conv2d;
  tail_ = weighty && k > 0 ? k : ops_.size();
  tail_off_.assign(sizes_.size(), -1);
  tail_per_image_ = 0;
  for (size_t j = tail_; j < ops_.size(); ++j) {
    std::vector<int> ids = ops_[j].s.in;
    ids.push_back(ops_[j].s.out);
    for (int b : ids)
      if (b >= n_in_ + n_out_ && tail_off_[b] < 0) {
        tail_off_[b] = tail_per_image_;
        tail_per_image_ += round16(sizes_[b]);
      }
  }
}

// The tail's scratch buffers at image i of their batch-wide copies.
void InferencePlan::point_tail(std::vector<float*>& buf, int64_t i) const {
  for (size_t b = n_in_ + n_out_; b < sizes_.size(); ++b)
    if (tail_off_[b] >= 0)
      buf[b] = const_cast<float*>(tail_arena_.data()) + tail_off_[b] * tail_batch_ + i * sizes_[b];
}

// Ops [tail_, end) once over all N images (the kernels thread themselves).
void InferencePlan::run_tail(const float* const* x, int64_t N, float* const* y) {
  std::vector<float*> buf(sizes_.size(), nullptr);
  for (int b = 0; b < n_in_; ++b) buf[b] = const_cast<float*>(x[b]);  // read only
  for (int o = 0; o < n_out_; ++o) buf[n_in_ + o] = y[o];
  point_tail(buf, 0);
  for (size_t k = tail_; k < ops_.size(); ++k) run_op_part(ops_[k], buf.data(), N, 0, 1);
}

void InferencePlan::run(const float* const* x, int64_t N, float* const* y) {
  std::lock_guard<std::mutex> lock(mu_);
  if (N <= 0) return;
  const int64_t per_image = std::max<int64_t>(arena_per_image_, 1) * 4;
  const int64_t cap = std::max<int64_t>(1, kArenaBytes / per_image);
  fold(std::min(cap, N));
  if (tail_ == static_cast<size_t>(-1)) find_tail();
  int workers = 1;
#ifdef CNNX_HAVE_OPENMP
  if (!omp_in_parallel()) workers = threads_for_flops(flops_ * N * kCooperativeGain);
#endif
  // Whole images per thread when they divide evenly or are many; otherwise
  // (one image, or an awkward few) every thread works on every op.
  if (workers > 1 && N % workers != 0 && N < 4 * workers) {
    // Cooperative runs win on idle cores but lose badly when another process
    // holds one (every barrier then waits for a time slice): measure both
    // ways and keep the faster, re-checking the other now and then.
    const bool coop = small_batch_mode_ < 0 ? chooser_.pick() : small_batch_mode_ == 1;
    const auto t0 = std::chrono::steady_clock::now();
    if (coop) {
      run_cooperative(x, N, y, workers, cap);
    } else {
      float* arena = thread_scratch(ScratchSlot::plan,
                                    static_cast<size_t>(arena_per_image_ * std::min(cap, N)));
      for (int64_t i = 0; i < N; i += cap)
        run_chunk(x, y, i, std::min(cap, N - i), arena, std::min(cap, N), ops_.size());
    }
    if (small_batch_mode_ < 0)
      chooser_.record(coop,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                          static_cast<double>(N));
    return;
  }
  if (workers > 1) workers = threads_for_flops(flops_ * N);
  // Chunks smaller than the batch: the tail runs once, after all of them.
  const size_t last = cap < N ? tail_ : ops_.size();
  if (last < ops_.size()) {
    tail_batch_ = N;
    tail_arena_.resize(static_cast<size_t>(tail_per_image_ * N));
  }
  if (workers <= 1) {
    // One image (or too little work for two threads): layer after layer,
    // each kernel free to use threads for its own work.
    const int64_t chunk = std::min(cap, N);
    float* arena = thread_scratch(ScratchSlot::plan, static_cast<size_t>(arena_per_image_ * chunk));
    for (int64_t i = 0; i < N; i += chunk)
      run_chunk(x, y, i, std::min(chunk, N - i), arena, chunk, last);
    if (last < ops_.size()) run_tail(x, N, y);
    return;
  }
  // Each thread runs the whole network on one chunk of images at a time. The
  // chunk count is a multiple of the thread count, so every thread gets the
  // same number of images (5 chunks on 2 threads left one thread a third of
  // the work more: 1.68x instead of 1.95x on the small ResNet at batch 64).
  // Among the first few such counts, the one whose busiest thread gets the
  // fewest images (64 on 2 threads: 8 chunks of 8, not 6 of 11 = 33 vs 31).
  int64_t chunks = ceil_div(ceil_div(N, cap), workers) * workers;
  {
    auto busiest = [&](int64_t c) {
      const int64_t ch = ceil_div(N, c), used = ceil_div(N, ch);
      int64_t most = 0;
      for (int t = 0; t < workers; ++t) {
        int64_t imgs = 0;
        for (int64_t k = t; k < used; k += workers) imgs += std::min(ch, N - k * ch);
        most = std::max(most, imgs);
      }
      return most;
    };
    int64_t best = busiest(chunks);
    for (int64_t c = chunks + workers; c <= 3 * chunks && c <= N; c += workers) {
      const int64_t b = busiest(c);
      if (b < best) {
        best = b;
        chunks = c;
      }
    }
  }
  const int64_t chunk = ceil_div(N, chunks);
#ifdef CNNX_HAVE_OPENMP
  // An exception must not leave a parallel region (it would terminate the
  // process): the first one is kept and rethrown after the join.
  std::exception_ptr error;
  std::mutex error_mu;
#pragma omp parallel num_threads(workers)
  {
    float* arena = nullptr;
    try {
      arena = thread_scratch(ScratchSlot::plan, static_cast<size_t>(arena_per_image_ * chunk));
    } catch (...) {
      std::lock_guard<std::mutex> g(error_mu);
      if (!error) error = std::current_exception();
    }
#pragma omp for schedule(static, 1)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t i = c * chunk, n = std::min(chunk, N - i);
      if (!arena || n <= 0) continue;
      try {
        run_chunk(x, y, i, n, arena, chunk, last);
      } catch (...) {
        std::lock_guard<std::mutex> g(error_mu);
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
#endif
  if (last < ops_.size()) run_tail(x, N, y);
}

std::vector<double> InferencePlan::profile(const float* const* x, int64_t N, float* const* y,
                                           int reps, int parts) {
  if (parts < 1) throw std::invalid_argument("parts: must be >= 1");
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<double> t(ops_.size(), 0.0);
  if (N <= 0) return t;
  const int64_t per_image = std::max<int64_t>(arena_per_image_, 1) * 4;
  const int64_t chunk = std::min(std::max<int64_t>(1, kArenaBytes / per_image), N);
  fold(chunk);
  float* arena = thread_scratch(ScratchSlot::plan, static_cast<size_t>(arena_per_image_ * chunk));
  std::vector<float*> buf;
  // The calling thread's CPU time: robust to other processes on the machine.
  auto now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  for (int r = 0; r < reps; ++r) {
    for (int64_t i = 0; i < N; i += chunk) {
      const int64_t n = std::min(chunk, N - i);
      set_buffers(buf, x, y, i, arena, chunk);
      for (size_t k = 0; k < ops_.size(); ++k) {
        // parts > 1: the parts one after another, the slowest one counted
        // (what a cooperative run on idle cores waits for at each barrier).
        double slowest = 0.0;
        for (int p = 0; p < parts; ++p) {
          const double t0 = now();
          run_op_part(ops_[k], buf.data(), n, p, parts);
          slowest = std::max(slowest, now() - t0);
        }
        t[k] += slowest;
      }
    }
  }
  return t;
}

const char* InferencePlan::op_name(size_t i) const { return op_kind_name(ops_.at(i).s.kind); }

}  // namespace cnnx
