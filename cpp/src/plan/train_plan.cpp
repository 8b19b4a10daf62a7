// The compiled training step (see cnnx/train_plan.h).
#include "cnnx/train_plan.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <set>
#include <stdexcept>
#include <string>

#include "cnnx/activation.h"
#include "cnnx/dense.h"
#include "cnnx/loss.h"
#include "cnnx/norm.h"
#include "cnnx/threading.h"
#include "common/scratch.h"
#include "plan/conv_direct_padded.h"
#include "plan/plan_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace {

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

void add_into(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

TrainPlan::TrainPlan(std::vector<int64_t> value_sizes, float* grads, int64_t n_grads)
    : sizes_(std::move(value_sizes)), grads_(grads), n_grads_(n_grads) {
  if (sizes_.size() < 2) throw std::invalid_argument("values: need the input and the logits");
  if (!grads_ || n_grads_ < 0) throw std::invalid_argument("grads: a gradient buffer is needed");
  offset_.assign(sizes_.size(), 0);
  int64_t off = 0;
  for (size_t v = 0; v < sizes_.size(); ++v) {
    if (sizes_[v] < 1) throw std::invalid_argument("values: sizes must be >= 1");
    if (v == 0) continue;  // the input is the caller's array
    offset_[v] = off;
    off += round16(sizes_[v]);
  }
  per_image_ = off;
}

void TrainPlan::check_value(int v, int64_t floats, const char* what) const {
  if (v < 0 || v >= static_cast<int>(sizes_.size()))
    throw std::invalid_argument(std::string(what) + ": value " + std::to_string(v) +
                                " does not exist");
  if (sizes_[v] != floats)
    throw std::invalid_argument(std::string(what) + ": value " + std::to_string(v) + " holds " +
                                std::to_string(sizes_[v]) + " floats per image, the op needs " +
                                std::to_string(floats));
  if (finalized_) throw std::invalid_argument("plan: ops cannot be added after the first step");
}

namespace {
int64_t grad_offset(const float* p, const float* base, int64_t n, int64_t count, const char* name) {
  if (!p) return -1;
  const int64_t off = p - base;
  if (off < 0 || off + count > n)
    throw std::invalid_argument(std::string(name) + ": must lie inside the gradient buffer");
  return off;
}
}  // namespace

void TrainPlan::add_conv(int in, int out, const Conv2dShape& shape, const float* w,
                         const float* bias, bool relu, float* dw, float* db) {
  Conv2dShape s = shape;
  s.N = 1;
  const char* msg = conv2d_check(s);
  if (msg[0]) throw std::invalid_argument(msg);
  check_value(in, s.input_size(), "conv input");
  check_value(out, s.output_size(), "conv output");
  if (out <= in) throw std::invalid_argument("conv: values must be numbered in order");
  Op op;
  op.kind = Kind::conv;
  op.in = in;
  op.out = out;
  op.conv = s;
  op.w = w;
  op.bias = bias;
  op.act = relu ? PlanAct::relu : PlanAct::none;
  op.dw_off = grad_offset(dw, grads_, n_grads_, s.weight_size(), "dw");
  op.db_off = grad_offset(db, grads_, n_grads_, s.C_out, "db");
  flops_ += 2.0 * s.out_h() * s.out_w() * s.C_out * s.KH * s.KW * s.cin_per_group();
  ops_.push_back(op);
}

void TrainPlan::add_dense(int in, int out, int64_t in_f, int64_t out_f, const float* w,
                          const float* bias, bool relu, float* dw, float* db) {
  check_value(in, in_f, "dense input");
  check_value(out, out_f, "dense output");
  if (out <= in) throw std::invalid_argument("dense: values must be numbered in order");
  Op op;
  op.kind = Kind::dense;
  op.in = in;
  op.out = out;
  op.in_f = in_f;
  op.out_f = out_f;
  op.w = w;
  op.bias = bias;
  op.act = relu ? PlanAct::relu : PlanAct::none;
  op.dw_off = grad_offset(dw, grads_, n_grads_, in_f * out_f, "dw");
  op.db_off = grad_offset(db, grads_, n_grads_, out_f, "db");
  flops_ += 2.0 * in_f * out_f;
  ops_.push_back(op);
}

void TrainPlan::add_pool(int in, int out, PlanPool kind, const PoolShape& shape,
                         const Pool2dParams& p, bool count_include_pad, int64_t oh, int64_t ow) {
  PoolShape s = shape;
  s.n = 1;
  const int64_t out_n = plan_detail::pool_output_values(kind, s, p, &oh, &ow);
  check_value(in, s.h * s.w * s.c, "pool input");
  check_value(out, out_n, "pool output");
  if (out <= in) throw std::invalid_argument("pool: values must be numbered in order");
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
  // Max pooling right after a conv/dense with a fused ReLU whose output only
  // it reads: the ReLU mask is applied to the pooled gradient instead (exact,
  // and k*k times fewer values).
  if (kind == PlanPool::max && !ops_.empty()) {
    Op& prev = ops_.back();
    if ((prev.kind == Kind::conv || prev.kind == Kind::dense) && prev.out == in &&
        prev.act == PlanAct::relu) {
      prev.relu_masked_later = true;
      op.mask_output_grad = true;
    }
  }
  flops_ += static_cast<double>(s.h * s.w * s.c);
  ops_.push_back(op);
}

void TrainPlan::add_activation(int in, int out, PlanAct act, float alpha, int64_t k) {
  if (in < 0 || in >= static_cast<int>(sizes_.size()))
    throw std::invalid_argument("activation input: no such value");
  check_value(in, sizes_[in], "activation input");
  check_value(out, sizes_[in], "activation output");
  if (out <= in) throw std::invalid_argument("activation: values must be numbered in order");
  if (act != PlanAct::relu && act != PlanAct::leaky_relu && act != PlanAct::sigmoid &&
      act != PlanAct::tanh && act != PlanAct::softmax)
    throw std::invalid_argument("act: expected relu, leaky_relu, sigmoid, tanh or softmax");
  if (act == PlanAct::softmax && (k < 1 || sizes_[in] % k))
    throw std::invalid_argument("act: the softmax axis must divide the values per image");
  Op op;
  op.kind = Kind::activation;
  op.in = in;
  op.out = out;
  op.act = act;
  op.alpha = alpha;
  op.k = k;
  flops_ += 4.0 * sizes_[in];
  ops_.push_back(op);
}

void TrainPlan::add_add(int a, int b, int out, PlanAct act) {
  if (a < 0 || a >= static_cast<int>(sizes_.size()))
    throw std::invalid_argument("add input: no such value");
  check_value(a, sizes_[a], "add input");
  check_value(b, sizes_[a], "add input");
  check_value(out, sizes_[a], "add output");
  if (out <= a || out <= b) throw std::invalid_argument("add: values must be numbered in order");
  if (act != PlanAct::none && act != PlanAct::relu)
    throw std::invalid_argument("act: expected none or relu");
  Op op;
  op.kind = Kind::add;
  op.in = a;
  op.in2 = b;
  op.out = out;
  op.act = act;
  flops_ += 2.0 * sizes_[a];
  ops_.push_back(op);
}

void TrainPlan::add_batch_norm(int in, int out, int64_t c, const float* gamma, const float* beta,
                               float* running_mean, float* running_var, float momentum,
                               float eps, float* dgamma, float* dbeta) {
  if (in < 0 || in >= static_cast<int>(sizes_.size()))
    throw std::invalid_argument("batch_norm input: no such value");
  check_value(in, sizes_[in], "batch_norm input");
  check_value(out, sizes_[in], "batch_norm output");
  if (out <= in) throw std::invalid_argument("batch_norm: values must be numbered in order");
  if (c < 1 || sizes_[in] % c)
    throw std::invalid_argument("batch_norm: c must divide the values per image");
  if (!running_mean || !running_var)
    throw std::invalid_argument("batch_norm: running statistics are needed");
  if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
    throw std::invalid_argument("batch_norm: eps > 0 and momentum in [0, 1]");
  Op op;
  op.kind = Kind::batch_norm;
  op.in = in;
  op.out = out;
  op.w = gamma;  // the scale, read like a weight
  op.beta = beta;
  op.running_mean = running_mean;
  op.running_var = running_var;
  op.momentum = momentum;
  op.eps = eps;
  op.channels = c;
  op.dw_off = grad_offset(dgamma, grads_, n_grads_, c, "dgamma");
  op.db_off = grad_offset(dbeta, grads_, n_grads_, c, "dbeta");
  op.save_mean.resize(c);
  op.save_inv_std.resize(c);
  flops_ += 8.0 * sizes_[in];
  has_batch_norm_ = true;
  ops_.push_back(std::move(op));
}

// Which backward write of a value's gradient comes first (it overwrites; the
// later ones add). Backward runs the ops in reverse.
void TrainPlan::finalize() {
  if (finalized_) return;
  if (ops_.empty() || ops_.back().out != static_cast<int>(sizes_.size()) - 1)
    throw std::invalid_argument("plan: the last op must produce the logits (the last value)");
  std::set<int> written;
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    const int ins[2] = {it->in, it->in2};
    for (int j = 0; j < 2; ++j) {
      if (ins[j] <= 0) continue;
      it->first_grad[j] = written.insert(ins[j]).second;
    }
  }
  finalized_ = true;
}

void TrainPlan::forward_op(Op& op, float* const* val, int64_t n) {
  const float* x = val[op.in];
  float* y = val[op.out];
  const Activation fused = op.act == PlanAct::relu ? Activation::relu : Activation::none;
  switch (op.kind) {
    case Kind::conv: {
      Conv2dShape s = op.conv;
      s.N = n;
      if (plan_detail::conv_direct_padded_ok(s, n)) {  // the inference plan's narrow kernel
        plan_detail::DirectEpilogue ep;
        ep.bias = op.bias;
        ep.relu = op.act == PlanAct::relu;
        for (int64_t img = 0; img < n; ++img)
          plan_detail::conv_direct_padded(s, x, op.w, ep, y, img, 0, s.out_h());
        return;
      }
      conv2d_forward(s, x, op.w, op.bias, y, fused);
      return;
    }
    case Kind::dense:
      dense_forward(x, op.w, op.bias, y, n, op.in_f, op.out_f, fused);
      return;
    case Kind::pool: {
      PoolShape s = op.ps;
      s.n = n;
      plan_detail::pool_forward(op.pool, s, op.pp, op.count_include_pad, op.oh, op.ow, x, y);
      return;
    }
    case Kind::activation:
      plan_detail::activation_forward(op.act, op.alpha, x, y, n * sizes_[op.in], op.k);
      return;
    case Kind::batch_norm: {
      const int64_t rows = n * sizes_[op.in] / op.channels;
      batch_norm_forward_train(x, op.w, op.beta, y, rows, op.channels, op.eps, op.momentum,
                               op.running_mean, op.running_var, op.save_mean.data(),
                               op.save_inv_std.data());
      return;
    }
    case Kind::add: {
      const float* b = val[op.in2];
      const int64_t total = n * sizes_[op.out];
      if (op.act == PlanAct::relu) {
        for (int64_t i = 0; i < total; ++i) y[i] = std::max(x[i] + b[i], 0.0f);
      } else {
        for (int64_t i = 0; i < total; ++i) y[i] = x[i] + b[i];
      }
      return;
    }
  }
}

void TrainPlan::backward_op(const Op& op, float* const* val, float* const* grad, int64_t n,
                            float* dgrads) {
  float* gy = grad[op.out];
  const int64_t out_total = n * sizes_[op.out];
  // Where dx goes: straight into the input's gradient if this op writes it
  // first, else into a temporary that is then added.
  const bool need_dx = op.in > 0;
  const int64_t in_total = n * sizes_[op.in];
  float* dx = nullptr;
  if (need_dx)
    dx = op.first_grad[0] ? grad[op.in]
                          : thread_scratch(ScratchSlot::plan, static_cast<size_t>(in_total));
  auto finish_dx = [&] {
    if (need_dx && !op.first_grad[0]) add_into(grad[op.in], dx, in_total);
  };
  float* dw = op.dw_off >= 0 ? dgrads + op.dw_off : nullptr;
  float* db = op.db_off >= 0 ? dgrads + op.db_off : nullptr;
  switch (op.kind) {
    case Kind::conv: {
      if (op.act == PlanAct::relu && !op.relu_masked_later) relu_backward(gy, val[op.out], gy, out_total);
      Conv2dShape s = op.conv;
      s.N = n;
      if (dw) conv2d_backward_weights(s, gy, val[op.in], dw, db);
      if (need_dx) {
        conv2d_backward_data(s, gy, op.w, dx);
        finish_dx();
      }
      return;
    }
    case Kind::dense:
      if (op.act == PlanAct::relu && !op.relu_masked_later) relu_backward(gy, val[op.out], gy, out_total);
      if (dw || need_dx) {
        dense_backward(gy, val[op.in], op.w, dx, dw, db, n, op.in_f, op.out_f);
        finish_dx();
      }
      return;
    case Kind::pool: {
      if (op.mask_output_grad) relu_backward(gy, val[op.out], gy, out_total);
      if (!need_dx) return;
      PoolShape s = op.ps;
      s.n = n;
      const float* x = val[op.in];
      switch (op.pool) {
        case PlanPool::max: max_pool2d_backward(s, op.pp, x, gy, dx); break;
        case PlanPool::avg: avg_pool2d_backward(s, op.pp, op.count_include_pad, gy, dx); break;
        case PlanPool::adaptive_avg: adaptive_avg_pool2d_backward(s, op.oh, op.ow, gy, dx); break;
        case PlanPool::adaptive_max: adaptive_max_pool2d_backward(s, op.oh, op.ow, x, gy, dx); break;
        case PlanPool::global_avg: global_avg_pool2d_backward(s, gy, dx); break;
      }
      finish_dx();
      return;
    }
    case Kind::activation:
      if (!need_dx) return;
      switch (op.act) {
        case PlanAct::relu: relu_backward(gy, val[op.in], dx, in_total); break;
        case PlanAct::leaky_relu: leaky_relu_backward(gy, val[op.in], dx, in_total, op.alpha); break;
        case PlanAct::sigmoid: sigmoid_backward(gy, val[op.out], dx, in_total); break;
        case PlanAct::tanh: tanh_backward(gy, val[op.out], dx, in_total); break;
        case PlanAct::softmax: softmax_backward(gy, val[op.out], dx, in_total / op.k, op.k, 1); break;
        default: break;
      }
      finish_dx();
      return;
    case Kind::batch_norm: {
      if (!dw && !db && !need_dx) return;
      const int64_t rows = n * sizes_[op.in] / op.channels;
      batch_norm_backward(gy, val[op.in], op.w, op.save_mean.data(), op.save_inv_std.data(),
                          need_dx ? dx : nullptr, dw, db, rows, op.channels, true);
      finish_dx();
      return;
    }
    case Kind::add: {
      if (op.act == PlanAct::relu) relu_backward(gy, val[op.out], gy, out_total);
      const int ins[2] = {op.in, op.in2};
      for (int j = 0; j < 2; ++j) {
        if (ins[j] <= 0) continue;
        if (op.first_grad[j])
          std::memcpy(grad[ins[j]], gy, sizeof(float) * out_total);
        else
          add_into(grad[ins[j]], gy, out_total);
      }
      return;
    }
  }
}

// Images [i0, i0 + n) of the batch of N: forward, loss, backward. Returns the
// slice's summed loss; weight gradients go to dgrads (overwritten).
double TrainPlan::run_slice(const float* x, const int64_t* labels, int64_t i0, int64_t n,
                            int64_t N, float* logits, float* dgrads) {
  const size_t V = sizes_.size();
  const int L = static_cast<int>(V) - 1;
  const int64_t K = sizes_[L];
  std::vector<float*> val(V), grad(V);
  val[0] = const_cast<float*>(x + i0 * sizes_[0]);  // read only
  grad[0] = nullptr;
  for (size_t v = 1; v < V; ++v) {
    val[v] = values_.data() + offset_[v] * N + i0 * sizes_[v];
    grad[v] = value_grads_.data() + offset_[v] * N + i0 * sizes_[v];
  }
  val[L] = logits + i0 * K;
  for (Op& op : ops_) forward_op(op, val.data(), n);
  const double loss = softmax_cross_entropy(val[L], labels + i0, n, K, grad[L]);
  // The kernel averages over its n rows; the batch's mean is over N.
  const float scale = static_cast<float>(n) / static_cast<float>(N);
  if (scale != 1.0f)
    for (int64_t i = 0; i < n * K; ++i) grad[L][i] *= scale;
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it)
    backward_op(*it, val.data(), grad.data(), n, dgrads);
  return loss * static_cast<double>(n);
}

double TrainPlan::step(const float* x, const int64_t* labels, int64_t N, float* logits) {
  std::lock_guard<std::mutex> lock(mu_);
  finalize();
  if (N <= 0) throw std::invalid_argument("x: the batch is empty");
  const int64_t K = sizes_.back();
  for (int64_t i = 0; i < N; ++i)
    if (labels[i] < 0 || labels[i] >= K)
      throw std::invalid_argument("labels: expected integers in [0, " + std::to_string(K) +
                                  "), got " + std::to_string(labels[i]));
  const size_t need = static_cast<size_t>(per_image_ * N);
  if (values_.size() < need) {
    values_.resize(need);
    value_grads_.resize(need);
  }
  int workers = 1;
#ifdef CNNX_HAVE_OPENMP
  if (!omp_in_parallel()) workers = threads_for_flops(3.0 * flops_ * N);
#endif
  workers = static_cast<int>(std::min<int64_t>(workers, N / 2));  // at least 2 images each
  if (has_batch_norm_) workers = 1;  // batch statistics: the kernels split the work instead
  if (workers <= 1) return run_slice(x, labels, 0, N, N, logits, grads_) / N;

  if (private_grads_.size() < static_cast<size_t>(workers - 1))
    private_grads_.resize(workers - 1);
  for (int t = 0; t < workers - 1; ++t)
    if (private_grads_[t].size() != static_cast<size_t>(n_grads_))
      private_grads_[t].assign(n_grads_, 0.0f);  // slots no op writes stay zero
  std::vector<double> part(workers, 0.0);
  std::exception_ptr error;
  std::mutex error_mu;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(workers)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t i0 = N * t / T, i1 = N * (t + 1) / T;
    float* dg = t == 0 ? grads_ : private_grads_[t - 1].data();
    try {
      part[t] = run_slice(x, labels, i0, i1 - i0, N, logits, dg);
    } catch (...) {
      std::lock_guard<std::mutex> g(error_mu);
      if (!error) error = std::current_exception();
    }
#pragma omp barrier
    // Sum the private weight gradients into the model's buffer, threads
    // splitting the buffer.
    const int64_t j0 = n_grads_ * t / T / 16 * 16, j1 = t + 1 == T ? n_grads_ : n_grads_ * (t + 1) / T / 16 * 16;
    if (!error)
      for (int s = 0; s < T - 1; ++s) add_into(grads_ + j0, private_grads_[s].data() + j0, j1 - j0);
  }
#endif
  if (error) std::rethrow_exception(error);
  double total = 0.0;
  for (double p : part) total += p;
  return total / N;
}

}  // namespace cnnx
