// The compiled training step (see cnnx/train_plan.h).
#include "cnnx/train_plan.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include "cnnx/activation.h"
#include "cnnx/augment.h"
#include "cnnx/dense.h"
#include "cnnx/eltwise.h"
#include "cnnx/loss.h"
#include "cnnx/norm.h"
#include "cnnx/threading.h"
#include "common/scratch.h"
#include "ops/ops_common.h"
#include "plan/conv_direct_padded.h"
#include "plan/layout_ops.h"
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

// Threads for an elementwise pass over n values reading two arrays and
// writing one: a plan with batch norm runs the step as one slice, so its
// elementwise passes split here or run on one thread.
int pass_threads(int64_t n) { return ops_detail::threads_for_bytes(12.0 * static_cast<double>(n)); }

// dst += src, split over the threads.
void add_into_parallel(float* dst, const float* src, int64_t n) {
  ops_detail::parallel_range(n, pass_threads(n),
                             [=](int64_t b, int64_t e) { add_into(dst + b, src + b, e - b); });
}

int64_t grad_offset(const float* p, const float* base, int64_t n, int64_t count, const char* name) {
  if (!p) return -1;
  const int64_t off = p - base;
  if (off < 0 || off + count > n)
    throw std::invalid_argument(std::string(name) + ": must lie inside the gradient buffer");
  return off;
}

}  // namespace

TrainPlan::TrainPlan(std::vector<int64_t> value_sizes, int n_inputs, float* grads, int64_t n_grads)
    : sizes_(std::move(value_sizes)), n_in_(n_inputs), grads_(grads), n_grads_(n_grads) {
  if (n_in_ < 1 || sizes_.size() < static_cast<size_t>(n_in_) + 1)
    throw std::invalid_argument("values: need the inputs and at least one computed value");
  if (!grads_ || n_grads_ < 0) throw std::invalid_argument("grads: a gradient buffer is needed");
  producer_.assign(sizes_.size(), -1);
  for (int64_t s : sizes_)
    if (s < 1) throw std::invalid_argument("values: sizes must be >= 1");
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

void TrainPlan::add(const OpSpec& spec) {
  const char* what = op_kind_name(spec.kind);
  if (op_is_int8(spec.kind))
    throw std::invalid_argument(std::string(what) + ": int8 ops run in inference plans only");
  if (spec.kind == OpKind::conv2d && spec.in.size() != 1)
    throw std::invalid_argument("conv2d: the training step takes no fused residual");
  if (spec.has_bn) throw std::invalid_argument("batch norm: the training step runs it on its own");
  const int64_t n_out = op_output_size(spec);
  const std::vector<int64_t> in_sizes = op_input_sizes(spec);
  for (size_t i = 0; i < spec.in.size(); ++i) {
    check_value(spec.in[i], in_sizes[i], what);
    if (spec.in[i] >= n_in_ && producer_[spec.in[i]] < 0)
      throw std::invalid_argument(std::string(what) + ": reads value " +
                                  std::to_string(spec.in[i]) + " before any op writes it");
  }
  check_value(spec.out, n_out, what);
  if (spec.out < n_in_ || producer_[spec.out] >= 0)
    throw std::invalid_argument(std::string(what) + ": value " + std::to_string(spec.out) +
                                " is an input or already written");
  Op op;
  op.s = spec;
  if (spec.kind == OpKind::conv2d) op.s.conv.N = 1;
  if (spec.kind == OpKind::pool) {
    op.s.ps.n = 1;
    plan_detail::pool_output_values(op.s.pool, op.s.ps, op.s.pp, &op.s.oh, &op.s.ow);
  }
  switch (spec.kind) {
    case OpKind::conv2d:
      op.dw_off = grad_offset(spec.dw, grads_, n_grads_, op.s.conv.weight_size(), "dw");
      op.db_off = grad_offset(spec.db, grads_, n_grads_, spec.conv.C_out, "db");
      if (spec.act != PlanAct::none && spec.act != PlanAct::relu)
        throw std::invalid_argument("conv2d: the training step fuses only relu");
      break;
    case OpKind::dense:
      op.dw_off = grad_offset(spec.dw, grads_, n_grads_, spec.in_f * spec.out_f, "dw");
      op.db_off = grad_offset(spec.db, grads_, n_grads_, spec.out_f, "db");
      if (spec.act != PlanAct::none && spec.act != PlanAct::relu)
        throw std::invalid_argument("dense: the training step fuses only relu");
      break;
    case OpKind::conv_transpose2d: {
      ConvTranspose2dShape one = spec.convt;
      one.N = 1;
      op.dw_off = grad_offset(spec.dw, grads_, n_grads_, one.weight_size(), "dw");
      op.db_off = grad_offset(spec.db, grads_, n_grads_, one.C_out, "db");
      if (spec.act != PlanAct::none && spec.act != PlanAct::relu)
        throw std::invalid_argument("conv_transpose2d: the training step fuses only relu");
      break;
    }
    case OpKind::batch_norm:
      op.dw_off = grad_offset(spec.bn.dgamma, grads_, n_grads_, spec.channels, "dgamma");
      op.db_off = grad_offset(spec.bn.dbeta, grads_, n_grads_, spec.channels, "dbeta");
      op.save_mean.resize(spec.channels);
      op.save_inv_std.resize(spec.channels);
      has_batch_norm_ = true;
      break;
    case OpKind::eltwise:
      if (spec.act != PlanAct::none && spec.act != PlanAct::relu)
        throw std::invalid_argument("eltwise: the training step fuses only relu");
      break;
    case OpKind::prelu:
      op.dw_off = grad_offset(spec.dw, grads_, n_grads_, spec.channels, "dslope");
      break;
    case OpKind::group_norm:
    case OpKind::layer_norm:
      op.dw_off = grad_offset(spec.dw, grads_, n_grads_, spec.channels, "dgamma");
      op.db_off = grad_offset(spec.db, grads_, n_grads_, spec.channels, "dbeta");
      break;
    default: break;
  }
  if (spec.mask_grad_by_output) {
    // the max pool that applies the ReLU mask of the op before it
    const int p = spec.in[0] >= n_in_ ? producer_[spec.in[0]] : -1;
    if (spec.kind != OpKind::pool || spec.pool != PlanPool::max || p < 0 ||
        !ops_[p].s.relu_mask_applied_later || ops_[p].s.act != PlanAct::relu)
      throw std::invalid_argument(
          "pool: mask_grad_by_output needs a max pool after a relu op "
          "marked relu_mask_applied_later");
  }
  if (spec.relu_mask_applied_later && spec.act != PlanAct::relu)
    throw std::invalid_argument(std::string(what) + ": relu_mask_applied_later needs act relu");
  producer_[spec.out] = static_cast<int>(ops_.size());
  flops_ += op_flops(op.s);
  ops_.push_back(std::move(op));
}

void TrainPlan::add_loss(const LossSpec& loss) {
  if (finalized_) throw std::invalid_argument("plan: losses cannot be added after the first step");
  if (loss.value < n_in_ || loss.value >= static_cast<int>(sizes_.size()) ||
      producer_[loss.value] < 0)
    throw std::invalid_argument("loss: its value must be written by an op");
  const int k = static_cast<int>(loss.kind);
  if (k < 0 || k > static_cast<int>(LossKind::external))
    throw std::invalid_argument("loss: unknown kind");
  if (loss.kind == LossKind::huber && !(loss.param > 0.0f))
    throw std::invalid_argument("loss: huber needs delta > 0");
  if (loss.classes < 0 || (loss.classes > 0 && sizes_[loss.value] % loss.classes))
    throw std::invalid_argument("loss: classes must divide the value's size");
  if (loss.target < 0) throw std::invalid_argument("loss: target index must be >= 0");
  losses_.push_back(loss);
}

void TrainPlan::set_outputs(std::vector<int> values) {
  if (finalized_) throw std::invalid_argument("plan: outputs cannot change after the first step");
  for (int v : values)
    if (v < 0 || v >= static_cast<int>(sizes_.size()))
      throw std::invalid_argument("outputs: value " + std::to_string(v) + " does not exist");
  outputs_ = std::move(values);
}

// Which ops need a backward pass and which input gradients they must make,
// and which write of a value's gradient comes first (it overwrites; the
// later ones add). Backward runs the losses, then the ops in reverse.
void TrainPlan::finalize() {
  if (finalized_) return;
  if (losses_.empty()) throw std::invalid_argument("plan: no loss was added");
  const size_t V = sizes_.size();
  // wants[v]: some parameter at or before v's producer takes a gradient
  std::vector<char> wants(V, 0);
  for (Op& op : ops_) {
    bool w = op.dw_off >= 0 || op.db_off >= 0;
    op.need_dx.assign(op.s.in.size(), 0);
    for (size_t j = 0; j < op.s.in.size(); ++j) {
      const int v = op.s.in[j];
      op.need_dx[j] = v >= n_in_ && wants[v];
      w = w || op.need_dx[j];
    }
    wants[op.s.out] = w;
  }
  // has_grad[v]: a loss depends on v through ops that pass gradients back
  std::vector<char> has_grad(V, 0);
  for (const LossSpec& l : losses_) has_grad[l.value] = 1;
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    it->run_backward = has_grad[it->s.out] && wants[it->s.out];
    if (!it->run_backward) continue;
    for (size_t j = 0; j < it->s.in.size(); ++j)
      if (it->need_dx[j]) has_grad[it->s.in[j]] = 1;
  }
  std::set<int> written;
  loss_first_.assign(losses_.size(), 0);
  for (size_t l = 0; l < losses_.size(); ++l)
    loss_first_[l] = written.insert(losses_[l].value).second;
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    it->first_grad.assign(it->s.in.size(), 0);
    if (!it->run_backward) continue;
    for (size_t j = 0; j < it->s.in.size(); ++j)
      if (it->need_dx[j]) it->first_grad[j] = written.insert(it->s.in[j]).second;
  }
  plan_memory();
  finalized_ = true;
}

namespace {

// Slots of an arena handed out to values with disjoint lifetimes.
struct SlotPool {
  std::vector<int64_t> size;  // floats per image of each slot
  std::vector<char> free;
  int take(int64_t floats) {
    int best = -1;
    for (size_t s = 0; s < size.size(); ++s)  // the smallest free slot that fits
      if (free[s] && size[s] >= floats && (best < 0 || size[s] < size[best]))
        best = static_cast<int>(s);
    if (best < 0)
      for (size_t s = 0; s < size.size(); ++s)  // else grow the largest free one
        if (free[s] && (best < 0 || size[s] > size[best])) best = static_cast<int>(s);
    if (best < 0) {
      size.push_back(floats);
      free.push_back(0);
      return static_cast<int>(size.size()) - 1;
    }
    size[best] = std::max(size[best], floats);
    free[best] = 0;
    return best;
  }
  void give(int s) { free[s] = 1; }
  std::vector<int64_t> offsets(int64_t* total) const {
    std::vector<int64_t> off(size.size());
    int64_t o = 0;
    for (size_t s = 0; s < size.size(); ++s) {
      off[s] = o;
      o += round16(size[s]);
    }
    *total = o;
    return off;
  }
};

}  // namespace

// Keep only what backward reads, as autograd does: a value lives from its op
// to its last forward reader unless some backward formula needs it (then to
// the end of the step); a ReLU whose input nothing else needs writes over it
// (its backward needs only its output); a gradient lives from its first
// write to its producer's backward. Slots are reused between lifetimes.
void TrainPlan::plan_memory() {
  const int V = static_cast<int>(sizes_.size());
  const int K = static_cast<int>(ops_.size());
  std::vector<char> kept(V, 0), is_output(V, 0), is_loss(V, 0);
  std::vector<int> readers(V, 0);
  for (int v : outputs_) is_output[v] = 1;
  for (const LossSpec& l : losses_) kept[l.value] = is_loss[l.value] = 1;
  for (const Op& op : ops_)
    for (int v : op.s.in) ++readers[v];
  auto any_dx = [](const Op& op) {
    for (char c : op.need_dx)
      if (c) return true;
    return false;
  };
  for (const Op& op : ops_) {
    if (!op.run_backward) continue;
    const OpSpec& s = op.s;
    const int in0 = s.in[0];
    switch (s.kind) {
      case OpKind::conv2d:
      case OpKind::dense:
        if (op.dw_off >= 0 || op.db_off >= 0) kept[in0] = 1;
        if (s.act == PlanAct::relu && !s.relu_mask_applied_later) kept[s.out] = 1;
        break;
      case OpKind::pool:
        if (any_dx(op) && (s.pool == PlanPool::max || s.pool == PlanPool::adaptive_max))
          kept[in0] = 1;
        if (s.mask_grad_by_output) kept[s.out] = 1;
        break;
      case OpKind::activation: {
        if (!any_dx(op)) break;
        Pointwise f;
        // the elementwise ones differentiate from x; relu, sigmoid, tanh,
        // softmax and log-softmax from y (relu: y > 0 exactly where x > 0)
        if (s.act == PlanAct::leaky_relu || plan_detail::pointwise_of(s.act, &f))
          kept[in0] = 1;
        else
          kept[s.out] = 1;
        break;
      }
      case OpKind::prelu:
      case OpKind::lrn:
      case OpKind::group_norm:
      case OpKind::layer_norm:
        kept[in0] = 1;  // every backward here reads x
        break;
      case OpKind::batch_norm: kept[in0] = 1; break;
      case OpKind::augment:  // a contrast's backward masks what its output clipped
        if (any_dx(op) && s.aug.kind == AugmentKind::contrast) kept[s.out] = 1;
        break;
      case OpKind::conv_transpose2d:  // the layout ops' backward reads no value
        if (op.dw_off >= 0) kept[in0] = 1;
        if (s.act == PlanAct::relu) kept[s.out] = 1;
        break;
      case OpKind::eltwise:
        if (s.eltwise == EltwiseKind::mul && any_dx(op))
          for (int v : s.in) kept[v] = 1;
        if (s.act == PlanAct::relu) kept[s.out] = 1;
        break;
      default: break;
    }
  }
  // ReLU in place: out shares in's storage.
  std::vector<int> root(V);
  for (int v = 0; v < V; ++v) root[v] = v;
  for (Op& op : ops_) {
    const OpSpec& s = op.s;
    const int in0 = s.in.empty() ? -1 : s.in[0];
    if (s.kind == OpKind::activation && s.act == PlanAct::relu && in0 >= n_in_ &&
        readers[in0] == 1 && !kept[in0] && !is_output[in0] && !is_output[s.out] && !is_loss[in0]) {
      op.relu_in_place = true;
      root[s.out] = root[in0];
    }
  }
  // Values: forward lifetimes.
  std::vector<int> last_read(V, -1);
  std::vector<char> to_end(V, 0);
  for (int k = 0; k < K; ++k)
    for (int v : ops_[k].s.in) last_read[root[v]] = std::max(last_read[root[v]], k);
  for (int v = 0; v < V; ++v)
    if (kept[v]) to_end[root[v]] = 1;
  SlotPool vals;
  std::vector<int> val_slot(V, -1);
  for (int k = 0; k < K; ++k) {
    const int out = ops_[k].s.out;
    if (!is_output[out] && root[out] == out) val_slot[out] = vals.take(sizes_[out]);
    std::set<int> done;
    for (int v : ops_[k].s.in) done.insert(root[v]);
    done.insert(root[out]);
    for (int r : done)
      if (r >= n_in_ && val_slot[r] >= 0 && !to_end[r] && last_read[r] <= k) vals.give(val_slot[r]);
  }
  // Gradients: from the first write to the producer's backward. Events: the
  // losses (0..L-1), then the ops in reverse (op k at L + K - 1 - k).
  const int L = static_cast<int>(losses_.size());
  std::vector<int> g_start(V, -1), g_end(V, -1);
  for (int l = 0; l < L; ++l)
    if (g_start[losses_[l].value] < 0) g_start[losses_[l].value] = l;
  for (int k = K - 1; k >= 0; --k) {
    const Op& op = ops_[k];
    if (!op.run_backward) continue;
    const int e = L + K - 1 - k;
    for (size_t j = 0; j < op.s.in.size(); ++j)
      if (op.need_dx[j] && g_start[op.s.in[j]] < 0) g_start[op.s.in[j]] = e;
    if (g_start[op.s.out] >= 0) g_end[op.s.out] = e;
  }
  for (int v = 0; v < V; ++v)  // a loss value whose op runs no backward: read by the loss only
    if (g_start[v] >= 0 && g_end[v] < 0) g_end[v] = g_start[v];
  std::vector<int> by_start;
  for (int v = n_in_; v < V; ++v)
    if (g_start[v] >= 0) by_start.push_back(v);
  std::sort(by_start.begin(), by_start.end(),
            [&](int a, int b) { return g_start[a] < g_start[b]; });
  SlotPool grads;
  std::vector<int> grad_slot(V, -1);
  std::vector<int> active;
  for (int v : by_start) {
    for (size_t i = 0; i < active.size();) {  // lifetimes ended before v's starts
      if (g_end[active[i]] < g_start[v]) {
        grads.give(grad_slot[active[i]]);
        active.erase(active.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    grad_slot[v] = grads.take(sizes_[v]);
    active.push_back(v);
  }
  const std::vector<int64_t> voff = vals.offsets(&val_per_image_);
  const std::vector<int64_t> goff = grads.offsets(&grad_per_image_);
  val_off_.assign(V, -1);
  grad_off_.assign(V, -1);
  for (int v = n_in_; v < V; ++v) {
    if (val_slot[root[v]] >= 0) val_off_[v] = voff[val_slot[root[v]]];
    if (grad_slot[v] >= 0) grad_off_[v] = goff[grad_slot[v]];
  }
}

void TrainPlan::forward_op(Op& op, float* const* val, int64_t n, int64_t i0) {
  const OpSpec& s = op.s;
  const float* x = val[s.in[0]];
  float* y = val[s.out];
  const Activation fused = s.act == PlanAct::relu ? Activation::relu : Activation::none;
  switch (s.kind) {
    case OpKind::conv2d: {
      Conv2dShape c = s.conv;
      c.N = n;
      if (plan_detail::conv_direct_padded_ok(c, n)) {  // the inference plan's narrow kernel
        plan_detail::DirectEpilogue ep;
        ep.bias = s.bias;
        ep.relu = s.act == PlanAct::relu;
        // Images over the threads: a plan with batch norm runs the batch
        // as one slice (batch statistics), so this is its only split (on one
        // thread it left ResNet-20's 16- and 32-channel layers serial).
        int nt = 1;
        std::exception_ptr error;  // (an exception must not leave the parallel region)
        std::mutex error_mu;
#ifdef CNNX_HAVE_OPENMP
        if (!omp_in_parallel())
          nt = static_cast<int>(std::min<int64_t>(threads_for_flops(op_flops(s) * n), n));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
        for (int64_t img = 0; img < n; ++img) {
          try {
            plan_detail::conv_direct_padded(c, x, s.w, ep, y, img, 0, c.out_h());
          } catch (...) {
            std::lock_guard<std::mutex> g(error_mu);
            if (!error) error = std::current_exception();
          }
        }
        (void)nt;
        if (error) std::rethrow_exception(error);
        return;
      }
      conv2d_forward(c, x, s.w, s.bias, y, fused);
      return;
    }
    case OpKind::dense: dense_forward(x, s.w, s.bias, y, n, s.in_f, s.out_f, fused); return;
    case OpKind::pool: {
      PoolShape p = s.ps;
      p.n = n;
      plan_detail::pool_forward(s.pool, p, s.pp, s.count_include_pad, s.oh, s.ow, x, y);
      return;
    }
    case OpKind::activation:
      plan_detail::activation_forward(s.act, s.alpha, x, y, n * s.count, s.k, s.beta);
      return;
    case OpKind::prelu: prelu_forward(x, s.w, y, n * s.count / s.channels, s.channels); return;
    case OpKind::lrn:
      lrn_forward(x, y, n * s.count / s.channels, s.channels, s.lrn_size, s.lrn_alpha, s.lrn_beta,
                  s.lrn_bias);
      return;
    case OpKind::group_norm:
      group_norm_forward(x, s.w, s.bias, y, n, s.count, s.channels, s.groups, s.eps, nullptr,
                         nullptr);
      return;
    case OpKind::layer_norm:
      layer_norm_forward(x, s.w, s.bias, y, n * s.count / s.channels, s.channels, s.eps, nullptr,
                         nullptr);
      return;
    case OpKind::batch_norm: {
      const int64_t rows = n * s.count / s.channels;
      batch_norm_forward_train(x, s.bn.gamma, s.bn.beta, y, rows, s.channels, s.bn.eps,
                               s.bn.momentum, s.bn.mean, s.bn.var, op.save_mean.data(),
                               op.save_inv_std.data());
      return;
    }
    case OpKind::eltwise: {
      const int64_t total = n * s.count;
      if (s.eltwise == EltwiseKind::add && s.in.size() == 2 && s.act == PlanAct::relu) {
        const float* b = val[s.in[1]];  // the residual sum: one pass
        ops_detail::parallel_range(total, pass_threads(total), [=](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) y[i] = std::max(x[i] + b[i], 0.0f);
        });
        return;
      }
      std::vector<const float*> xs(s.in.size());
      for (size_t i = 0; i < xs.size(); ++i) xs[i] = val[s.in[i]];
      eltwise_forward(s.eltwise, xs.data(), static_cast<int>(xs.size()), y, total);
      if (s.act == PlanAct::relu) relu_forward(y, y, total);
      return;
    }
    case OpKind::concat: {
      std::vector<const float*> xs(s.in.size());
      for (size_t i = 0; i < xs.size(); ++i) xs[i] = val[s.in[i]];
      concat_forward(xs.data(), static_cast<int>(xs.size()), s.inner.data(), n * s.outer, y);
      return;
    }
    case OpKind::rescale:
      rescale_forward(x, y, n * s.count, s.channels, s.chan_inner, s.w, s.bias);
      return;
    case OpKind::normalize:
      normalize_forward(x, y, n * s.count, s.channels, s.chan_inner, s.bn.mean, s.bn.var, s.bn.eps);
      return;
    case OpKind::augment:
      augment_forward(s.aug, x, y, n, s.seed ? *s.seed : 0, i0, s.aug_training);
      return;
    case OpKind::conv_transpose2d:
    case OpKind::pad2d:
    case OpKind::upsample2d:
    case OpKind::depth_to_space:
    case OpKind::space_to_depth:
    case OpKind::channel_shuffle:
    case OpKind::transpose: plan_detail::layout_forward(s, n, x, y); return;
    default: throw std::invalid_argument(std::string(op_kind_name(s.kind)) + ": not run by a plan");
  }
}

void TrainPlan::backward_op(Op& op, float* const* val, float* const* grad, int64_t n, float* dgrads,
                            int64_t i0) {
  const OpSpec& s = op.s;
  float* dw = op.dw_off >= 0 ? dgrads + op.dw_off : nullptr;
  float* db = op.db_off >= 0 ? dgrads + op.db_off : nullptr;
  if (!op.run_backward) {
    // no loss depends on this op: its weight gradients are zero
    if (s.kind == OpKind::conv_transpose2d) {
      ConvTranspose2dShape one = s.convt;
      one.N = 1;
      if (dw) std::fill(dw, dw + one.weight_size(), 0.0f);
      if (db) std::fill(db, db + one.C_out, 0.0f);
      return;
    }
    if (s.kind == OpKind::conv2d && dw) std::fill(dw, dw + s.conv.weight_size(), 0.0f);
    if (s.kind == OpKind::dense && dw) std::fill(dw, dw + s.in_f * s.out_f, 0.0f);
    if (s.kind == OpKind::batch_norm && dw) std::fill(dw, dw + s.channels, 0.0f);
    if ((s.kind == OpKind::prelu || s.kind == OpKind::group_norm || s.kind == OpKind::layer_norm) &&
        dw)
      std::fill(dw, dw + s.channels, 0.0f);
    if (db)
      std::fill(db,
                db + (s.kind == OpKind::conv2d  ? s.conv.C_out
                      : s.kind == OpKind::dense ? s.out_f
                                                : s.channels),
                0.0f);
    return;
  }
  float* gy = grad[s.out];
  const int64_t out_total = n * sizes_[s.out];
  // Where input 0's gradient goes: straight into it if this op writes it
  // first, else into a temporary that is then added.
  const bool need_dx = op.need_dx[0] != 0;
  const int64_t in_total = n * sizes_[s.in[0]];
  float* dx = nullptr;
  if (need_dx)
    dx = op.first_grad[0] ? grad[s.in[0]]
                          : thread_scratch(ScratchSlot::plan, static_cast<size_t>(in_total));
  auto finish_dx = [&] {
    if (need_dx && !op.first_grad[0]) add_into_parallel(grad[s.in[0]], dx, in_total);
  };
  switch (s.kind) {
    case OpKind::conv2d: {
      if (s.act == PlanAct::relu && !s.relu_mask_applied_later)
        relu_backward(gy, val[s.out], gy, out_total);
      Conv2dShape c = s.conv;
      c.N = n;
      if (dw)
        conv2d_backward_weights(c, gy, val[s.in[0]], dw, db);
      else if (db) {  // a bias without a kernel gradient cannot happen (same layer)
      }
      if (need_dx) {
        conv2d_backward_data(c, gy, s.w, dx);
        finish_dx();
      }
      return;
    }
    case OpKind::dense:
      if (s.act == PlanAct::relu && !s.relu_mask_applied_later)
        relu_backward(gy, val[s.out], gy, out_total);
      if (dw || need_dx) {
        dense_backward(gy, val[s.in[0]], s.w, dx, dw, db, n, s.in_f, s.out_f);
        finish_dx();
      }
      return;
    case OpKind::pool: {
      if (s.mask_grad_by_output) relu_backward(gy, val[s.out], gy, out_total);
      if (!need_dx) return;
      PoolShape p = s.ps;
      p.n = n;
      const float* x = val[s.in[0]];
      switch (s.pool) {
        case PlanPool::max: max_pool2d_backward(p, s.pp, x, gy, dx); break;
        case PlanPool::avg: avg_pool2d_backward(p, s.pp, s.count_include_pad, gy, dx); break;
        case PlanPool::adaptive_avg: adaptive_avg_pool2d_backward(p, s.oh, s.ow, gy, dx); break;
        case PlanPool::adaptive_max: adaptive_max_pool2d_backward(p, s.oh, s.ow, x, gy, dx); break;
        case PlanPool::global_avg: global_avg_pool2d_backward(p, gy, dx); break;
      }
      finish_dx();
      return;
    }
    case OpKind::activation:
      if (!need_dx) return;
      switch (s.act) {
        case PlanAct::relu: relu_backward(gy, val[s.out], dx, in_total); break;  // y > 0 iff x > 0
        case PlanAct::leaky_relu:
          leaky_relu_backward(gy, val[s.in[0]], dx, in_total, s.alpha);
          break;
        case PlanAct::sigmoid: sigmoid_backward(gy, val[s.out], dx, in_total); break;
        case PlanAct::tanh: tanh_backward(gy, val[s.out], dx, in_total); break;
        case PlanAct::softmax: softmax_backward(gy, val[s.out], dx, in_total / s.k, s.k, 1); break;
        case PlanAct::log_softmax:
          log_softmax_backward(gy, val[s.out], dx, in_total / s.k, s.k, 1);
          break;
        default: {
          Pointwise f;
          if (plan_detail::pointwise_of(s.act, &f))
            pointwise_backward(f, gy, val[s.in[0]], dx, in_total, s.alpha, s.beta);
          break;
        }
      }
      finish_dx();
      return;
    case OpKind::prelu:
      if (!dw && !need_dx) return;
      prelu_backward(gy, val[s.in[0]], s.w, need_dx ? dx : nullptr, dw, in_total / s.channels,
                     s.channels);
      finish_dx();
      return;
    case OpKind::lrn:
      if (!need_dx) return;
      lrn_backward(gy, val[s.in[0]], dx, in_total / s.channels, s.channels, s.lrn_size, s.lrn_alpha,
                   s.lrn_beta, s.lrn_bias);
      finish_dx();
      return;
    case OpKind::group_norm:
      if (!dw && !db && !need_dx) return;
      group_norm_backward(gy, val[s.in[0]], s.w, nullptr, nullptr, need_dx ? dx : nullptr, dw, db,
                          n, s.count, s.channels, s.groups, s.eps);
      finish_dx();
      return;
    case OpKind::layer_norm:
      if (!dw && !db && !need_dx) return;
      layer_norm_backward(gy, val[s.in[0]], s.w, nullptr, nullptr, need_dx ? dx : nullptr, dw, db,
                          in_total / s.channels, s.channels, s.eps);
      finish_dx();
      return;
    case OpKind::batch_norm: {
      if (!dw && !db && !need_dx) return;
      const int64_t rows = n * s.count / s.channels;
      batch_norm_backward(gy, val[s.in[0]], s.bn.gamma, op.save_mean.data(), op.save_inv_std.data(),
                          need_dx ? dx : nullptr, dw, db, rows, s.channels, true);
      finish_dx();
      return;
    }
    case OpKind::eltwise: {
      if (s.act == PlanAct::relu) relu_backward(gy, val[s.out], gy, out_total);
      const size_t m = s.in.size();
      std::vector<const float*> xs(m);
      std::vector<float*> dxs(m);
      std::vector<char> acc(m);
      for (size_t j = 0; j < m; ++j) {
        xs[j] = val[s.in[j]];
        dxs[j] = op.need_dx[j] ? grad[s.in[j]] : nullptr;
        acc[j] = !op.first_grad[j];
      }
      // an input that appears twice (x + x): the second write must add
      for (size_t j = 0; j < m; ++j)
        for (size_t i = 0; i < j; ++i)
          if (dxs[j] && dxs[j] == dxs[i]) acc[j] = 1;
      eltwise_backward(s.eltwise, xs.data(), static_cast<int>(m), gy, dxs.data(),
                       reinterpret_cast<const bool*>(acc.data()), out_total);
      return;
    }
    case OpKind::concat: {
      const size_t m = s.in.size();
      std::vector<float*> dxs(m);
      std::vector<char> acc(m);
      for (size_t j = 0; j < m; ++j) {
        dxs[j] = op.need_dx[j] ? grad[s.in[j]] : nullptr;
        acc[j] = !op.first_grad[j];
      }
      for (size_t j = 0; j < m; ++j)
        for (size_t i = 0; i < j; ++i)
          if (dxs[j] && dxs[j] == dxs[i]) acc[j] = 1;
      concat_backward(gy, static_cast<int>(m), s.inner.data(), n * s.outer, dxs.data(),
                      reinterpret_cast<const bool*>(acc.data()));
      return;
    }
    case OpKind::rescale:
      if (!need_dx) return;
      rescale_backward(gy, dx, in_total, s.channels, s.chan_inner, s.w, false);
      finish_dx();
      return;
    case OpKind::normalize:
      if (!need_dx) return;
      normalize_backward(gy, dx, in_total, s.channels, s.chan_inner, s.bn.var, s.bn.eps, false);
      finish_dx();
      return;
    case OpKind::augment:
      if (!need_dx) return;
      augment_backward(s.aug, gy, val[s.out], dx, n, s.seed ? *s.seed : 0, i0, s.aug_training,
                       false);
      finish_dx();
      return;
    case OpKind::conv_transpose2d: {
      if (s.act == PlanAct::relu) relu_backward(gy, val[s.out], gy, out_total);
      ConvTranspose2dShape c = s.convt;
      c.N = n;
      if (dw || db) conv_transpose2d_backward_weights(c, gy, val[s.in[0]], dw, db);
      if (need_dx) {
        conv_transpose2d_backward_data(c, gy, s.w, dx);
        finish_dx();
      }
      return;
    }
    case OpKind::pad2d:
    case OpKind::upsample2d:
    case OpKind::depth_to_space:
    case OpKind::space_to_depth:
    case OpKind::channel_shuffle:
    case OpKind::transpose:
      if (!need_dx) return;
      plan_detail::layout_backward(s, n, gy, dx);
      finish_dx();
      return;
    default: return;
  }
}

void TrainPlan::slice_pointers(const float* const* x, float* const* out, int64_t i0, int64_t n,
                               std::vector<float*>& val, std::vector<float*>& grad) {
  const size_t V = sizes_.size();
  val.assign(V, nullptr);
  grad.assign(V, nullptr);
  for (int v = 0; v < n_in_; ++v) val[v] = const_cast<float*>(x[v] + i0 * sizes_[v]);  // read only
  // Each slice has its own part of the arenas (slots are shared by values of
  // different sizes, so slices must not interleave inside a slot).
  float* vbase = values_.data() + i0 * val_per_image_;
  float* gbase = value_grads_.data() + i0 * grad_per_image_;
  for (size_t v = n_in_; v < V; ++v) {
    if (val_off_[v] >= 0) val[v] = vbase + val_off_[v] * n;
    if (grad_off_[v] >= 0) grad[v] = gbase + grad_off_[v] * n;
  }
  // outputs that ops write go straight to the caller's arrays
  for (size_t o = 0; o < outputs_.size(); ++o)
    if (outputs_[o] >= n_in_) val[outputs_[o]] = out[o] + i0 * sizes_[outputs_[o]];
}

void TrainPlan::forward_slice(const float* const* x, float* const* out, int64_t i0, int64_t n) {
  std::vector<float*> val, grad;
  slice_pointers(x, out, i0, n, val, grad);
  for (Op& op : ops_) forward_op(op, val.data(), n, i0);
  for (size_t o = 0; o < outputs_.size(); ++o)
    if (outputs_[o] < n_in_)
      std::memcpy(out[o] + i0 * sizes_[outputs_[o]], val[outputs_[o]],
                  sizeof(float) * static_cast<size_t>(n * sizes_[outputs_[o]]));
}

// The losses of images [i0, i0 + n) (of the batch of N) and backward. Returns
// the slice's share of the total loss (parts: of each term before its
// weight); weight gradients go to dgrads (overwritten). External losses add
// weight * the given gradient.
double TrainPlan::backward_slice(const float* const* x, float* const* out,
                                 const void* const* targets, const float* sample_weight,
                                 const float* const* given, int64_t i0, int64_t n, int64_t N,
                                 float* dgrads, double* parts) {
  std::vector<float*> val, grad;
  slice_pointers(x, out, i0, n, val, grad);
  double total = 0.0;
  const float* w = sample_weight ? sample_weight + i0 : nullptr;
  for (size_t l = 0; l < losses_.size(); ++l) {
    const LossSpec& L = losses_[l];
    const int64_t K = sizes_[L.value];
    // The term is weight * sum(w_i loss_i) / N over the whole batch.
    const float scale = L.weight / static_cast<float>(N);
    const bool acc = !loss_first_[l];
    float* g = grad[L.value];
    const float* y = val[L.value];
    const float* t = L.kind == LossKind::softmax_cross_entropy || L.kind == LossKind::external
                         ? nullptr
                         : static_cast<const float*>(targets[L.target]) + i0 * K;
    double sum = 0.0;
    // Per-pixel classes: rows of `classes` values, R per image, each row's
    // loss averaged over the image's R rows (and weighted by the image's weight).
    const int64_t C = L.classes > 0 ? L.classes : K, R = K / C;
    std::vector<float> row_w;
    const float* rw = w;
    if (R > 1 && w) {
      row_w.resize(n * R);
      for (int64_t i = 0; i < n * R; ++i) row_w[i] = w[i / R];
      rw = row_w.data();
    }
    const float rscale = scale / static_cast<float>(R);
    switch (L.kind) {
      case LossKind::softmax_cross_entropy:
        sum = softmax_cross_entropy_sum(y, static_cast<const int64_t*>(targets[L.target]) + i0 * R,
                                        rw, n * R, C, rscale, g, acc) /
              R;
        break;
      case LossKind::softmax_cross_entropy_soft:
        sum = softmax_cross_entropy_soft_sum(y, t, rw, n * R, C, rscale, g, acc) / R;
        break;
      case LossKind::mean_squared_error:
        sum = squared_error_sum(y, t, w, n, K, scale, g, acc);
        break;
      case LossKind::mean_absolute_error:
        sum = absolute_error_sum(y, t, w, n, K, scale, g, acc);
        break;
      case LossKind::huber: sum = huber_sum(y, t, w, n, K, L.param, scale, g, acc); break;
      case LossKind::sigmoid_binary_cross_entropy:
        sum = sigmoid_binary_cross_entropy_sum(y, t, w, n, K, scale, g, acc);
        break;
      case LossKind::binary_cross_entropy:
        sum = binary_cross_entropy_sum(y, t, w, n, K, scale, g, acc);
        break;
      case LossKind::external: {
        const float* src = given[L.target] + i0 * K;
        for (int64_t i = 0; i < n * K; ++i)
          g[i] = acc ? g[i] + L.weight * src[i] : L.weight * src[i];
        continue;  // its value comes from the caller
      }
    }
    parts[l] += sum / static_cast<double>(N);  // the term before its weight
    total += static_cast<double>(L.weight) * sum / static_cast<double>(N);
  }
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it)
    backward_op(*it, val.data(), grad.data(), n, dgrads, i0);
  return total;
}

void TrainPlan::check_targets(const void* const* targets, int64_t N) const {
  for (const LossSpec& L : losses_) {
    if (L.kind != LossKind::softmax_cross_entropy) continue;
    const int64_t K = L.classes > 0 ? L.classes : sizes_[L.value];
    const int64_t rows = N * (sizes_[L.value] / K);
    const int64_t* labels = static_cast<const int64_t*>(targets[L.target]);
    for (int64_t i = 0; i < rows; ++i)
      if (labels[i] < 0 || labels[i] >= K)
        throw std::invalid_argument("labels: expected integers in [0, " + std::to_string(K) +
                                    "), got " + std::to_string(labels[i]));
  }
}

// Arenas for N images and the number of slices (threads) the batch is cut into.
int TrainPlan::prepare(int64_t N) {
  finalize();
  if (N <= 0) throw std::invalid_argument("x: the batch is empty");
  if (values_.size() < static_cast<size_t>(val_per_image_ * N))
    values_.resize(static_cast<size_t>(val_per_image_ * N));
  if (value_grads_.size() < static_cast<size_t>(grad_per_image_ * N))
    value_grads_.resize(static_cast<size_t>(grad_per_image_ * N));
  int workers = 1;
#ifdef CNNX_HAVE_OPENMP
  if (!omp_in_parallel()) workers = threads_for_flops(3.0 * flops_ * N);
#endif
  workers = static_cast<int>(std::min<int64_t>(workers, N / 2));  // at least 2 images each
  if (has_batch_norm_) workers = 1;  // batch statistics: the kernels split the work instead
  workers = std::max(workers, 1);
  if (private_grads_.size() < static_cast<size_t>(workers - 1)) private_grads_.resize(workers - 1);
  for (int t = 0; t < workers - 1; ++t)
    if (private_grads_[t].size() != static_cast<size_t>(n_grads_))
      private_grads_[t].assign(n_grads_, 0.0f);  // slots no op writes stay zero
  return workers;
}

// f(t, i0, n, dgrads) on each slice t of `workers` (slice t: images
// [N t / workers, N (t + 1) / workers), its own weight-gradient buffer), in
// parallel; then the slices' private gradients summed into the model's
// buffer (when `reduce`). The slicing depends only on N and `workers`, so a
// forward() and its backward() see the same slices.
template <class F>
void TrainPlan::in_slices(int workers, int64_t N, bool reduce, F f) {
  if (workers <= 1) {
    f(0, int64_t{0}, N, grads_);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mu;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(workers)
  {
#pragma omp for schedule(static, 1)
    for (int t = 0; t < workers; ++t) {
      const int64_t i0 = N * t / workers, i1 = N * (t + 1) / workers;
      float* dg = t == 0 ? grads_ : private_grads_[t - 1].data();
      try {
        f(t, i0, i1 - i0, dg);
      } catch (...) {
        std::lock_guard<std::mutex> g(error_mu);
        if (!error) error = std::current_exception();
      }
    }  // (implicit barrier)
    if (reduce && !error) {
      // Threads split the buffer to sum the private weight gradients into it.
      const int T = omp_get_num_threads(), r = omp_get_thread_num();
      const int64_t j0 = n_grads_ * r / T / 16 * 16,
                    j1 = r + 1 == T ? n_grads_ : n_grads_ * (r + 1) / T / 16 * 16;
      for (int s = 0; s < workers - 1; ++s)
        add_into(grads_ + j0, private_grads_[s].data() + j0, j1 - j0);
    }
  }
#else
  for (int t = 0; t < workers; ++t) {
    const int64_t i0 = N * t / workers, i1 = N * (t + 1) / workers;
    f(t, i0, i1 - i0, t == 0 ? grads_ : private_grads_[t - 1].data());
  }
  if (reduce)
    for (int s = 0; s < workers - 1; ++s) add_into(grads_, private_grads_[s].data(), n_grads_);
#endif
  if (error) std::rethrow_exception(error);
}

double TrainPlan::step(const float* const* x, const void* const* targets,
                       const float* sample_weight, int64_t N, float* const* out,
                       double* loss_parts) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const LossSpec& L : losses_)
    if (L.kind == LossKind::external)
      throw std::invalid_argument(
          "loss: a plan with an external loss runs forward() and backward()");
  const int workers = prepare(N);
  check_targets(targets, N);
  pending_n_ = 0;
  const size_t nl = losses_.size();
  std::vector<double> part(workers, 0.0);
  std::vector<std::vector<double>> parts(workers, std::vector<double>(nl, 0.0));
  in_slices(workers, N, true, [&](int t, int64_t i0, int64_t n, float* dg) {
    forward_slice(x, out, i0, n);
    part[t] =
        backward_slice(x, out, targets, sample_weight, nullptr, i0, n, N, dg, parts[t].data());
  });
  double total = 0.0;
  for (double p : part) total += p;
  if (loss_parts)
    for (size_t l = 0; l < nl; ++l) {
      loss_parts[l] = 0.0;
      for (int t = 0; t < workers; ++t) loss_parts[l] += parts[t][l];
    }
  return total;
}

void TrainPlan::forward(const float* const* x, int64_t N, float* const* out) {
  std::lock_guard<std::mutex> lock(mu_);
  const int workers = prepare(N);
  in_slices(workers, N, false,
            [&](int, int64_t i0, int64_t n, float*) { forward_slice(x, out, i0, n); });
  pending_n_ = N;
  pending_workers_ = workers;
}

double TrainPlan::backward(const float* const* x, float* const* out, const void* const* targets,
                           const float* sample_weight, const float* const* given, int64_t N,
                           double* loss_parts) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_n_ != N || N <= 0)
    throw std::invalid_argument("x: backward needs the batch of the last forward");
  check_targets(targets, N);
  const int workers = pending_workers_;
  pending_n_ = 0;
  const size_t nl = losses_.size();
  std::vector<double> part(workers, 0.0);
  std::vector<std::vector<double>> parts(workers, std::vector<double>(nl, 0.0));
  in_slices(workers, N, true, [&](int t, int64_t i0, int64_t n, float* dg) {
    part[t] = backward_slice(x, out, targets, sample_weight, given, i0, n, N, dg, parts[t].data());
  });
  double total = 0.0;
  for (double p : part) total += p;
  if (loss_parts)
    for (size_t l = 0; l < nl; ++l) {
      loss_parts[l] = 0.0;
      for (int t = 0; t < workers; ++t) loss_parts[l] += parts[t][l];
    }
  return total;
}

}  // namespace cnnx
