// The compiled inference pass (see cnnx/plan.h): building the op list,
// batch-norm folding, the per-thread activation arena and the choice of how
// a run is split (image chunks per thread, or cooperative). How each op runs
// is in inference_plan_ops.cpp, the cooperative mode in inference_plan_coop.cpp.
#include <algorithm>
#include <chrono>
#include <cmath>
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

void check_act(PlanAct act, int64_t n, int64_t k) {
  if (static_cast<int>(act) < 0 || static_cast<int>(act) > 5)
    throw std::invalid_argument("act: unknown activation");
  if (act == PlanAct::softmax && (k < 1 || n % k))
    throw std::invalid_argument("act: the softmax axis must divide the values per image");
}

}  // namespace

InferencePlan::InferencePlan(std::vector<int64_t> buffer_sizes) : sizes_(std::move(buffer_sizes)) {
  if (sizes_.size() < 2) throw std::invalid_argument("buffers: need at least the input and output");
  offset_.assign(sizes_.size(), 0);
  int64_t off = 0;
  for (size_t i = 0; i < sizes_.size(); ++i) {
    if (sizes_[i] < 0) throw std::invalid_argument("buffers: sizes must be >= 0");
    if (i < 2) continue;  // input and output are the caller's arrays
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

void InferencePlan::add_conv(int in, int out, const Conv2dShape& shape, const float* w,
                             const float* bias, PlanAct act, float alpha,
                             const PlanBatchNorm* bn, int residual) {
  Conv2dShape s = shape;
  s.N = 1;
  const char* msg = conv2d_check(s);
  if (msg[0]) throw std::invalid_argument(msg);
  check_buffer(in, s.input_size(), "conv input");
  check_buffer(out, s.output_size(), "conv output");
  if (in == out || out == 0) throw std::invalid_argument("conv: output must be a fresh buffer");
  const int64_t n_out = s.output_size();
  if (residual >= 0) {
    check_buffer(residual, n_out, "conv residual");
    if (residual == out) throw std::invalid_argument("conv: residual must not be the output");
  }
  check_act(act, n_out, s.C_out);
  Op op;
  op.kind = Kind::conv;
  op.in = in;
  op.in2 = residual;
  op.out = out;
  op.conv = s;
  op.w = w;
  op.bias = bias;
  op.act = act;
  op.alpha = alpha;
  op.n = n_out;
  op.k = s.C_out;
  op.channels = s.C_out;
  if (bn) {
    op.has_bn = true;
    op.bn = *bn;
    op.wf.resize(s.weight_size());
    op.bf.resize(s.C_out);
    op.scale.resize(s.C_out);
  }
  flops_ += 2.0 * s.out_h() * s.out_w() * s.C_out * s.KH * s.KW * s.cin_per_group();
  ops_.push_back(std::move(op));
}

void InferencePlan::add_dense(int in, int out, int64_t in_f, int64_t out_f, const float* w,
                              const float* bias, PlanAct act, float alpha,
                              const PlanBatchNorm* bn) {
  if (in_f < 1 || out_f < 1) throw std::invalid_argument("dense: sizes must be >= 1");
  check_buffer(in, in_f, "dense input");
  check_buffer(out, out_f, "dense output");
  if (in == out || out == 0) throw std::invalid_argument("dense: output must be a fresh buffer");
  check_act(act, out_f, out_f);
  Op op;
  op.kind = Kind::dense;
  op.in = in;
  op.out = out;
  op.in_f = in_f;
  op.out_f = out_f;
  op.w = w;
  op.bias = bias;
  op.act = act;
  op.alpha = alpha;
  op.n = out_f;
  op.k = out_f;
  op.channels = out_f;
  if (bn) {
    op.has_bn = true;
    op.bn = *bn;
    op.wf.resize(in_f * out_f);
    op.bf.resize(out_f);
    op.scale.resize(out_f);
  }
  flops_ += 2.0 * in_f * out_f;
  ops_.push_back(std::move(op));
}

void InferencePlan::add_pool(int in, int out, PlanPool kind, const PoolShape& shape,
                             const Pool2dParams& p, bool count_include_pad, int64_t oh,
                             int64_t ow) {
  PoolShape s = shape;
  s.n = 1;
  const int64_t out_n = plan_detail::pool_output_values(kind, s, p, &oh, &ow);
  check_buffer(in, s.h * s.w * s.c, "pool input");
  check_buffer(out, out_n, "pool output");
  if (in == out || out == 0) throw std::invalid_argument("pool: output must be a fresh buffer");
  Op op;
  op.kind = Kind::pool;
  op.in = in;
  op.out = out;
  op.pool = kind;
  op.ps = s;
  op.pp = p;
  op.count_include_pad = count_include_pad;
  op.oh = oh;
  op.ow = ow;
  op.n = out_n;
  flops_ += static_cast<double>(s.h * s.w * s.c);
  ops_.push_back(std::move(op));
}

void InferencePlan::add_batch_norm(int in, int out, int64_t c, int64_t n,
                                   const PlanBatchNorm& bn) {
  if (c < 1 || !bn.mean || !bn.var)
    throw std::invalid_argument("batch_norm: needs c >= 1 and statistics");
  if (n < 1 || n % c) throw std::invalid_argument("batch_norm: c must divide the values per image");
  check_buffer(in, n, "batch_norm input");
  check_buffer(out, n, "batch_norm output");
  if (out == 0) throw std::invalid_argument("batch_norm: cannot write the input");
  Op op;
  op.kind = Kind::batch_norm;
  op.in = in;
  op.out = out;
  op.bn = bn;
  op.channels = c;
  op.inv_std.resize(c);
  op.n = n;
  flops_ += 2.0 * n;
  ops_.push_back(std::move(op));
}

void InferencePlan::add_activation(int in, int out, PlanAct act, float alpha, int64_t n,
                                   int64_t k) {
  check_buffer(in, n, "activation input");
  check_buffer(out, n, "activation output");
  if (out == 0) throw std::invalid_argument("activation: cannot write the input");
  check_act(act, n, k);
  Op op;
  op.kind = Kind::activation;
  op.in = in;
  op.out = out;
  op.act = act;
  op.alpha = alpha;
  op.n = n;
  op.k = k;
  flops_ += 4.0 * n;
  ops_.push_back(std::move(op));
}

void InferencePlan::add_add(int a, int b, int out, PlanAct act, float alpha, int64_t n,
                            int64_t k) {
  check_buffer(a, n, "add input");
  check_buffer(b, n, "add input");
  check_buffer(out, n, "add output");
  if (out == 0) throw std::invalid_argument("add: cannot write the input");
  check_act(act, n, k);
  Op op;
  op.kind = Kind::add;
  op.in = a;
  op.in2 = b;
  op.out = out;
  op.act = act;
  op.alpha = alpha;
  op.n = n;
  op.k = k;
  flops_ += 2.0 * n;
  ops_.push_back(std::move(op));
}

// Batch norm into the layer before it: scale s = gamma / sqrt(var + eps) per
// output channel, w' = w * s, b' = (b - mean) * s + beta. Recomputed on every
// run from the live arrays (a few microseconds), so nothing can go stale.
void InferencePlan::fold(int64_t max_n) {
  for (Op& op : ops_) {
    if (op.kind == Kind::batch_norm) {
      for (int64_t c = 0; c < op.channels; ++c)
        op.inv_std[c] = 1.0f / std::sqrt(op.bn.var[c] + op.bn.eps);
      continue;
    }
    if (!op.has_bn) continue;
    const int64_t C = op.channels;
    float* scale = op.scale.data();
    for (int64_t c = 0; c < C; ++c)
      scale[c] = (op.bn.gamma ? op.bn.gamma[c] : 1.0f) / std::sqrt(op.bn.var[c] + op.bn.eps);
    for (int64_t c = 0; c < C; ++c) {
      const float b = op.bias ? op.bias[c] : 0.0f;
      op.bf[c] = (b - op.bn.mean[c]) * scale[c] + (op.bn.beta ? op.bn.beta[c] : 0.0f);
    }
    // The plan's direct kernel applies the scale in its store; only other
    // kernels need the scaled weights (a copy of them per run: at batch 1 on
    // the small ResNet that copy was 7 % of the run).
    const bool direct = op.kind == Kind::conv && plan_detail::conv_direct_padded_ok(op.conv, 1) &&
                        plan_detail::conv_direct_padded_ok(op.conv, max_n);
    if (direct) continue;
    const int64_t rows = static_cast<int64_t>(op.wf.size()) / C;
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = op.w + r * C;
      float* dst = op.wf.data() + r * C;
      for (int64_t c = 0; c < C; ++c) dst[c] = src[c] * scale[c];
    }
  }
}


void InferencePlan::run_chunk(const float* x, int64_t n, float* y, float* arena, int64_t chunk) {
  std::vector<float*> buf(sizes_.size());
  buf[0] = const_cast<float*>(x);  // never written: every add_* refuses out == 0
  buf[1] = y;
  for (size_t i = 2; i < sizes_.size(); ++i) buf[i] = arena + offset_[i] * chunk;
  for (Op& op : ops_) run_op_part(op, buf.data(), n, 0, 1);
}

void InferencePlan::run(const float* x, int64_t N, float* y) {
  std::lock_guard<std::mutex> lock(mu_);
  if (N <= 0) return;
  const int64_t in_n = sizes_[0], out_n = sizes_[1];
  const int64_t per_image = std::max<int64_t>(arena_per_image_, 1) * 4;
  const int64_t cap = std::max<int64_t>(1, kArenaBytes / per_image);
  fold(std::min(cap, N));
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
      float* arena =
          thread_scratch(ScratchSlot::plan, static_cast<size_t>(arena_per_image_ * std::min(cap, N)));
      for (int64_t i = 0; i < N; i += cap) {
        const int64_t n = std::min(cap, N - i);
        run_chunk(x + i * in_n, n, y + i * out_n, arena, std::min(cap, N));
      }
    }
    if (small_batch_mode_ < 0)
      chooser_.record(coop, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                              .count() / static_cast<double>(N));
    return;
  }
  if (workers > 1) workers = threads_for_flops(flops_ * N);
  if (workers <= 1) {
    // One image (or too little work for two threads): layer after layer,
    // each kernel free to use threads for its own work.
    const int64_t chunk = std::min(cap, N);
    float* arena = thread_scratch(ScratchSlot::plan, static_cast<size_t>(arena_per_image_ * chunk));
    for (int64_t i = 0; i < N; i += chunk) {
      const int64_t n = std::min(chunk, N - i);
      run_chunk(x + i * in_n, n, y + i * out_n, arena, chunk);
    }
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
        run_chunk(x + i * in_n, n, y + i * out_n, arena, chunk);
      } catch (...) {
        std::lock_guard<std::mutex> g(error_mu);
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
#endif
}

std::vector<double> InferencePlan::profile(const float* x, int64_t N, float* y, int reps) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<double> t(ops_.size(), 0.0);
  if (N <= 0) return t;
  const int64_t per_image = std::max<int64_t>(arena_per_image_, 1) * 4;
  const int64_t chunk = std::min(std::max<int64_t>(1, kArenaBytes / per_image), N);
  fold(chunk);
  float* arena = thread_scratch(ScratchSlot::plan, static_cast<size_t>(arena_per_image_ * chunk));
  std::vector<float*> buf(sizes_.size());
  // The calling thread's CPU time: robust to other processes on the machine.
  auto now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  for (int r = 0; r < reps; ++r) {
    for (int64_t i = 0; i < N; i += chunk) {
      const int64_t n = std::min(chunk, N - i);
      buf[0] = const_cast<float*>(x + i * sizes_[0]);
      buf[1] = y + i * sizes_[1];
      for (size_t b = 2; b < sizes_.size(); ++b) buf[b] = arena + offset_[b] * chunk;
      for (size_t k = 0; k < ops_.size(); ++k) {
        const double t0 = now();
        run_op_part(ops_[k], buf.data(), n, 0, 1);
        t[k] += now() - t0;
      }
    }
  }
  return t;
}

const char* InferencePlan::op_name(size_t i) const {
  switch (ops_.at(i).kind) {
    case Kind::conv: return "conv";
    case Kind::dense: return "dense";
    case Kind::pool: return "pool";
    case Kind::batch_norm: return "batch_norm";
    case Kind::activation: return "activation";
    case Kind::add: return "add";
  }
  return "?";
}

}  // namespace cnnx
