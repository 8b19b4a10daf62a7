// The compiled inference pass (see cnnx/plan.h): op list, batch-norm
// folding, the per-thread activation arena and the batch-chunk scheduler.
#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <ctime>
#include <cmath>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cnnx/activation.h"
#include "cnnx/dense.h"
#include "cnnx/norm.h"
#include "cnnx/plan.h"
#include "cnnx/threading.h"
#include "cnnx/cpu.h"
#include "common/scratch.h"
#include "ops/dense_rows.h"
#include "plan/conv_direct_padded.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
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

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

Activation fused(PlanAct a) { return a == PlanAct::relu ? Activation::relu : Activation::none; }

// The activations a conv/dense epilogue cannot fuse, applied in place.
void apply_activation(PlanAct act, float alpha, float* y, int64_t n, int64_t k) {
  switch (act) {
    case PlanAct::none: return;
    case PlanAct::relu: relu_forward(y, y, n); return;
    case PlanAct::leaky_relu: leaky_relu_forward(y, y, n, alpha); return;
    case PlanAct::sigmoid: sigmoid_forward(y, y, n); return;
    case PlanAct::tanh: tanh_forward(y, y, n); return;
    case PlanAct::softmax: softmax_forward(y, y, n / k, k, 1); return;
  }
}

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
  if (s.h < 1 || s.w < 1 || s.c < 1) throw std::invalid_argument("pool: empty input shape");
  int64_t out_n = 0;
  switch (kind) {
    case PlanPool::max:
    case PlanPool::avg:
      pool2d_check(s, p, &oh, &ow);
      out_n = oh * ow * s.c;
      break;
    case PlanPool::adaptive_avg:
    case PlanPool::adaptive_max:
      if (oh < 1 || ow < 1) throw std::invalid_argument("output_size: must be >= 1");
      out_n = oh * ow * s.c;
      break;
    case PlanPool::global_avg:
      out_n = s.c;
      break;
    default:
      throw std::invalid_argument("pool: unknown kind");
  }
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

namespace {

// The barrier between the ops of a cooperative run. It spins briefly, then
// yields its core: when another process holds a core, the thread we wait
// for may be descheduled, and a waiter that keeps spinning (as OpenMP's own
// barrier does for up to its spin count) only delays it further: measured
// here at several milliseconds per barrier instead of microseconds.
class YieldingBarrier {
 public:
  explicit YieldingBarrier(int n) : n_(n) {}
  void wait() {
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int i = 0; gen_.load(std::memory_order_acquire) == gen; ++i) {
      if (i < 2000) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

// Part `part` of `parts` of [0, total), in units of `align`.
void part_range(int64_t total, int part, int parts, int64_t align, int64_t* b, int64_t* e) {
  const int64_t units = ceil_div(total, align);
  *b = std::min(total, units * part / parts * align);
  *e = std::min(total, units * (part + 1) / parts * align);
}

// Output rows [a, b) of one image as a convolution of their own: the band of
// input rows they read, padded only where the band meets the image border.
// Valid when no output row reads padding alone (see conv_bands_ok).
Conv2dShape conv_band(const Conv2dShape& s, int64_t a, int64_t b, int64_t* first_row) {
  Conv2dShape t = s;
  t.N = 1;
  const int64_t r0 = a * s.stride_h - s.pad_top;
  const int64_t r1 = (b - 1) * s.stride_h + (s.KH - 1) * s.dilation_h + 1 - s.pad_top;
  const int64_t c0 = std::max<int64_t>(r0, 0), c1 = std::min(r1, s.H);
  t.H = c1 - c0;
  t.pad_top = c0 - r0;
  t.pad_bottom = r1 - c1;
  *first_row = c0;
  return t;
}

// A cooperative dense op with few rows splits its columns (then a softmax
// needs a second pass once every column is there).
bool dense_by_columns(int64_t n, int parts, int64_t out_f) {
  // (a classifier head of <= 64 columns is one block: not worth a split)
  return parts > 1 && n <= ops_detail::kDenseRowsMax && out_f > 64 &&
         active_isa() == Isa::avx512;
}

bool conv_bands_ok(const Conv2dShape& s) {
  const int64_t reach = (s.KH - 1) * s.dilation_h;
  return s.pad_top <= reach && s.pad_bottom <= reach;
}

// The same for pooling windows (padding is at most half a window, so every
// band reads at least one real row).
void pool_band(const PoolShape& s, const Pool2dParams& p, int64_t a, int64_t b, PoolShape* ts,
               Pool2dParams* tp, int64_t* first_row) {
  const int64_t r0 = a * p.stride_h - p.pad_top;
  const int64_t r1 = (b - 1) * p.stride_h + p.kernel_h - p.pad_top;
  const int64_t c0 = std::max<int64_t>(r0, 0), c1 = std::min(r1, s.h);
  *ts = s;
  ts->n = 1;
  ts->h = c1 - c0;
  *tp = p;
  tp->pad_top = c0 - r0;
  tp->pad_bottom = r1 - c1;
  *first_row = c0;
}

}  // namespace

// Each mode is judged by the fastest run seen in the current window (other
// processes only ever make a run slower, so the minimum is what a mode costs
// on free cores); a window restarts every 1024 calls, so a lasting change is
// noticed. The slower mode is re-tried now and then, less and less often
// while it stays much slower (a cooperative run on a busy machine can cost
// milliseconds).
bool InferencePlan::ModeChooser::pick() {
  probing = false;
  if (seen[0] < 3) return false;
  if (seen[1] < 3) return probing = true;
  const bool fast = best[1] < best[0];
  if (calls >= next_probe) {
    probing = true;
    return !fast;
  }
  return fast;
}

void InferencePlan::ModeChooser::record(bool coop, double secs) {
  ++calls;
  const int m = coop ? 1 : 0;
  best[m] = seen[m] ? std::min(best[m], secs) : secs;
  ++seen[m];
  if (probing && seen[1 - m] > 0) {
    interval = secs > 1.5 * best[1 - m] ? std::min<int64_t>(interval * 2, 4096) : 32;
    next_probe = calls + interval;
  }
  if (calls % 1024 == 0) seen[0] = seen[1] = 0;  // a new window
}

// Part `part` of `parts` of op over n images; parts == 1 is the whole op.
// Threads of a cooperative run split convolutions and pools by output rows,
// dense layers by columns (few rows) or rows, elementwise ops by elements;
// ops too small to split run on part 0.
void InferencePlan::run_op_part(Op& op, float* const* buf, int64_t n, int part, int parts) {
  const float* x = buf[op.in];
  float* y = buf[op.out];
  const float* w = op.has_bn ? op.wf.data() : op.w;
  const float* b = op.has_bn ? op.bf.data() : op.bias;
  switch (op.kind) {
    case Kind::conv: {
      const Conv2dShape& s = op.conv;
      const float* res = op.in2 >= 0 ? buf[op.in2] : nullptr;  // a fused residual sum
      // After the kernel: the residual (unless the kernel added it) and the
      // activations no kernel fuses, on output values [o, o + count).
      auto finish = [&](int64_t o, int64_t count, bool res_done) {
        float* yo = y + o;
        if (res && !res_done) {
          const float* ro = res + o;
          if (op.act == PlanAct::relu) {
            for (int64_t i = 0; i < count; ++i) yo[i] = std::max(yo[i] + ro[i], 0.0f);
            return;
          }
          for (int64_t i = 0; i < count; ++i) yo[i] += ro[i];
        }
        if (op.act != PlanAct::none && (op.act != PlanAct::relu || (res && !res_done)))
          apply_activation(op.act, op.alpha, yo, count, op.k);
      };
      // With a residual to add, a kernel may fuse the ReLU only if it adds first.
      const Activation kernel_act = res ? Activation::none : fused(op.act);
      const int64_t OH = s.out_h(), row = s.out_w() * s.C_out, in_img = s.H * s.W * s.C_in;
      if (plan_detail::conv_direct_padded_ok(s, n)) {
        // Narrow 3x3 layers: the plan's own kernel on a padded copy, by rows;
        // it adds the residual before the ReLU itself.
        Conv2dShape t = s;
        t.N = n;
        // Batch norm as a per-channel scale in the kernel's store: the raw
        // weights, so no folded copy of them is needed (see fold()).
        plan_detail::DirectEpilogue ep;
        ep.bias = b;
        ep.scale = op.has_bn ? op.scale.data() : nullptr;
        ep.res = res;
        ep.relu = op.act == PlanAct::relu;
        int64_t u0, u1;
        part_range(n * OH, part, parts, 1, &u0, &u1);
        while (u0 < u1) {
          const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
          plan_detail::conv_direct_padded(t, x, op.w, ep, y, img, a, e);
          if (op.act != PlanAct::relu && op.act != PlanAct::none)
            apply_activation(op.act, op.alpha, y + img * op.n + a * row, (e - a) * row, op.k);
          u0 += e - a;
        }
        return;
      }
      if (parts == 1 || !conv_bands_ok(s)) {
        if (part != 0) return;
        Conv2dShape t = s;
        t.N = n;
        conv2d_forward(t, x, w, b, y, kernel_act);
        finish(0, n * op.n, false);
        return;
      }
      int64_t u0, u1;
      part_range(n * OH, part, parts, 1, &u0, &u1);
      while (u0 < u1) {
        const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
        int64_t first;
        const Conv2dShape t = conv_band(s, a, e, &first);
        const int64_t o = img * op.n + a * row;
        conv2d_forward(t, x + img * in_img + first * s.W * s.C_in, w, b, y + o, kernel_act);
        finish(o, (e - a) * row, false);
        u0 += e - a;
      }
      return;
    }
    case Kind::dense: {
      if (dense_by_columns(n, parts, op.out_f)) {
        int64_t c0, c1;
        part_range(op.out_f, part, parts, 64, &c0, &c1);
        if (c0 >= c1) return;
        ops_detail::dense_rows_avx512(x, w, b, y, n, op.in_f, op.out_f, c0, c1,
                                      op.act == PlanAct::relu);
        if (op.act != PlanAct::relu && op.act != PlanAct::none) {
          // softmax needs whole rows: leave it to a part that owns them all
          if (op.act == PlanAct::softmax) return;
          for (int64_t r = 0; r < n; ++r)
            apply_activation(op.act, op.alpha, y + r * op.out_f + c0, c1 - c0, c1 - c0);
        }
        return;
      }
      int64_t r0, r1;
      part_range(n, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      dense_forward(x + r0 * op.in_f, w, b, y + r0 * op.out_f, r1 - r0, op.in_f, op.out_f,
                    fused(op.act));
      if (op.act != PlanAct::relu)
        apply_activation(op.act, op.alpha, y + r0 * op.out_f, (r1 - r0) * op.n, op.k);
      return;
    }
    case Kind::pool: {
      if (parts == 1 || op.pool == PlanPool::adaptive_avg || op.pool == PlanPool::adaptive_max ||
          op.pool == PlanPool::global_avg) {
        if (part != 0) return;
        PoolShape s = op.ps;
        s.n = n;
        switch (op.pool) {
          case PlanPool::max: max_pool2d_forward(s, op.pp, x, y); return;
          case PlanPool::avg: avg_pool2d_forward(s, op.pp, op.count_include_pad, x, y); return;
          case PlanPool::adaptive_avg: adaptive_avg_pool2d_forward(s, op.oh, op.ow, x, y); return;
          case PlanPool::adaptive_max: adaptive_max_pool2d_forward(s, op.oh, op.ow, x, y); return;
          case PlanPool::global_avg: global_avg_pool2d_forward(s, x, y); return;
        }
        return;
      }
      const int64_t OH = op.oh, row = op.ow * op.ps.c, in_img = op.ps.h * op.ps.w * op.ps.c;
      int64_t u0, u1;
      part_range(n * OH, part, parts, 1, &u0, &u1);
      while (u0 < u1) {
        const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
        PoolShape ts;
        Pool2dParams tp;
        int64_t first;
        pool_band(op.ps, op.pp, a, e, &ts, &tp, &first);
        const float* xb = x + img * in_img + first * op.ps.w * op.ps.c;
        float* yb = y + img * op.n + a * row;
        if (op.pool == PlanPool::max)
          max_pool2d_forward(ts, tp, xb, yb);
        else
          avg_pool2d_forward(ts, tp, op.count_include_pad, xb, yb);
        u0 += e - a;
      }
      return;
    }
    case Kind::batch_norm: {
      const int64_t rows = n * op.n / op.channels;
      int64_t r0, r1;
      part_range(rows, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      batch_norm_forward_eval(x + r0 * op.channels, op.bn.gamma, op.bn.beta, op.bn.mean,
                              op.inv_std.data(), y + r0 * op.channels, r1 - r0, op.channels);
      return;
    }
    case Kind::activation: {
      // whole softmax groups per part (k divides every boundary)
      int64_t e0, e1;
      part_range(n * op.n, part, parts, op.act == PlanAct::softmax ? op.k : 16, &e0, &e1);
      const int64_t total = e1 - e0;
      if (total <= 0) return;
      const float* xs = x + e0;
      float* ys = y + e0;
      switch (op.act) {
        case PlanAct::none:
          if (xs != ys) std::copy(xs, xs + total, ys);
          return;
        case PlanAct::relu: relu_forward(xs, ys, total); return;
        case PlanAct::leaky_relu: leaky_relu_forward(xs, ys, total, op.alpha); return;
        case PlanAct::sigmoid: sigmoid_forward(xs, ys, total); return;
        case PlanAct::tanh: tanh_forward(xs, ys, total); return;
        case PlanAct::softmax: softmax_forward(xs, ys, total / op.k, op.k, 1); return;
      }
      return;
    }
    case Kind::add: {
      int64_t e0, e1;
      part_range(n * op.n, part, parts, op.act == PlanAct::softmax ? op.k : 16, &e0, &e1);
      const float* a = x + e0;
      const float* c = buf[op.in2] + e0;
      float* ys = y + e0;
      const int64_t total = e1 - e0;
      if (total <= 0) return;
      if (op.act == PlanAct::relu) {
        for (int64_t i = 0; i < total; ++i) ys[i] = std::max(a[i] + c[i], 0.0f);
      } else {
        for (int64_t i = 0; i < total; ++i) ys[i] = a[i] + c[i];
        apply_activation(op.act, op.alpha, ys, total, op.k);
      }
      return;
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

// All threads on the same images, op after op, each taking its part of every
// op, with a barrier between ops: one fork/join per call instead of one per
// layer. For one image (or a few) on several cores.
void InferencePlan::run_cooperative(const float* x, int64_t N, float* y, int workers,
                                    int64_t cap) {
  const int64_t chunk = std::min(cap, N);
  float* arena = thread_scratch(ScratchSlot::plan, static_cast<size_t>(arena_per_image_ * chunk));
  const int64_t in_n = sizes_[0], out_n = sizes_[1];
  std::exception_ptr error;
  std::mutex error_mu;
  YieldingBarrier* barrier = nullptr;
  std::unique_ptr<YieldingBarrier> barrier_owner;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(workers)
#endif
  {
#ifdef CNNX_HAVE_OPENMP
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
#pragma omp single
    {
      barrier_owner = std::make_unique<YieldingBarrier>(T);
      barrier = barrier_owner.get();
    }  // (implicit barrier: every thread sees it)
#else
    const int t = 0, T = 1;
#endif
    std::vector<float*> buf(sizes_.size());
    for (int64_t i = 0; i < N; i += chunk) {
      const int64_t n = std::min(chunk, N - i);
      buf[0] = const_cast<float*>(x + i * in_n);
      buf[1] = y + i * out_n;
      for (size_t b = 2; b < sizes_.size(); ++b) buf[b] = arena + offset_[b] * chunk;
      const bool last_chunk = i + chunk >= N;
      for (size_t k = 0; k < ops_.size(); ++k) {
        Op& op = ops_[k];
        try {
          run_op_part(op, buf.data(), n, t, T);
        } catch (...) {
          std::lock_guard<std::mutex> g(error_mu);
          if (!error) error = std::current_exception();
        }
        const bool split_softmax =
            op.kind == Kind::dense && op.act == PlanAct::softmax && dense_by_columns(n, T, op.out_f);
        // The region's own end is the last barrier.
        if (T > 1 && (!last_chunk || k + 1 < ops_.size() || split_softmax)) barrier->wait();
        if (split_softmax && t == 0) softmax_forward(buf[op.out], buf[op.out], n, op.out_f, 1);
        if (split_softmax && T > 1 && (!last_chunk || k + 1 < ops_.size())) barrier->wait();
      }
    }
  }
  if (error) std::rethrow_exception(error);
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
