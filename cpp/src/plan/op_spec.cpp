// Checking an op description once, for both plans (see cnnx/op_spec.h).
#include "cnnx/op_spec.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "int8/qgemm_ukernel.h"
#include "plan/plan_internal.h"

namespace cnnx {

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::conv2d: return "conv2d";
    case OpKind::dense: return "dense";
    case OpKind::pool: return "pool";
    case OpKind::batch_norm: return "batch_norm";
    case OpKind::activation: return "activation";
    case OpKind::eltwise: return "eltwise";
    case OpKind::concat: return "concat";
    case OpKind::reshape: return "reshape";
    case OpKind::dropout: return "dropout";
    case OpKind::python: return "python";
    case OpKind::rescale: return "rescale";
    case OpKind::normalize: return "normalize";
    case OpKind::augment: return "augment";
    case OpKind::conv_transpose2d: return "conv_transpose2d";
    case OpKind::pad2d: return "pad2d";
    case OpKind::upsample2d: return "upsample2d";
    case OpKind::depth_to_space: return "depth_to_space";
    case OpKind::space_to_depth: return "space_to_depth";
    case OpKind::channel_shuffle: return "channel_shuffle";
    case OpKind::transpose: return "transpose";
    case OpKind::prelu: return "prelu";
    case OpKind::lrn: return "lrn";
    case OpKind::group_norm: return "group_norm";
    case OpKind::layer_norm: return "layer_norm";
    case OpKind::quantize: return "quantize";
    case OpKind::dequantize: return "dequantize";
    case OpKind::qconv2d: return "qconv2d";
    case OpKind::qdense: return "qdense";
    case OpKind::qpool: return "qpool";
    case OpKind::qadd: return "qadd";
    case OpKind::qconcat: return "qconcat";
  }
  return "?";
}

namespace {

[[noreturn]] void fail(const OpSpec& op, const std::string& msg) {
  throw std::invalid_argument(std::string(op_kind_name(op.kind)) + ": " + msg);
}

void need_inputs(const OpSpec& op, size_t lo, size_t hi) {
  if (op.in.size() < lo || op.in.size() > hi)
    fail(op, "expected " + std::to_string(lo) + (lo == hi ? "" : " or more") + " input" +
                 (lo == 1 && hi == 1 ? "" : "s") + ", got " + std::to_string(op.in.size()));
}

void check_act(const OpSpec& op, int64_t n) {
  const int a = static_cast<int>(op.act);
  if (a < 0 || a >= kPlanActCount) fail(op, "unknown activation");
  if (grouped_act(op.act) && (op.k < 1 || n % op.k))
    fail(op, "the softmax axis must divide the values per image");
  if (op.act == PlanAct::clip && !(op.alpha <= op.beta)) fail(op, "clip needs min <= max");
}

Conv2dShape one_image(const Conv2dShape& c) {
  Conv2dShape s = c;
  s.N = 1;
  return s;
}

ConvTranspose2dShape one_image(const ConvTranspose2dShape& c) {
  ConvTranspose2dShape s = c;
  s.N = 1;
  return s;
}

int64_t image_values(const LayoutSpec& l) { return l.h * l.w * l.c; }

int64_t transpose_values(const LayoutSpec& l) {
  int64_t n = 1;
  for (int64_t d : l.shape) n *= d;
  return n;
}

// The layout ops' checks; returns the values per image they write.
int64_t layout_output_size(const OpSpec& op) {
  const LayoutSpec& l = op.layout;
  need_inputs(op, 1, 1);
  if (op.kind == OpKind::transpose) {
    const size_t r = l.shape.size();
    if (r < 1 || r > 8 || l.perm.size() != r) fail(op, "expected 1 to 8 axes and a perm for each");
    std::vector<int> seen(r, 0);
    for (int a : l.perm)
      if (a < 0 || a >= static_cast<int>(r) || seen[a]++) fail(op, "perm is not a permutation");
    for (int64_t d : l.shape)
      if (d < 1) fail(op, "axes must be >= 1");
    return transpose_values(l);
  }
  if (l.h < 1 || l.w < 1 || l.c < 1) fail(op, "the input image must be non-empty");
  switch (op.kind) {
    case OpKind::pad2d: {
      Pad2dShape p;
      p.N = 1;
      p.H = l.h;
      p.W = l.w;
      p.C = l.c;
      p.top = l.pads[0];
      p.bottom = l.pads[1];
      p.left = l.pads[2];
      p.right = l.pads[3];
      const char* msg = pad2d_check(l.pad_mode, p);
      if (msg[0]) throw std::invalid_argument(msg);
      return p.out_h() * p.out_w() * l.c;
    }
    case OpKind::upsample2d: {
      const int m = static_cast<int>(l.up_mode);
      if (m < 0 || m > 1) fail(op, "unknown upsampling mode");
      if (l.fh < 1 || l.fw < 1 || l.fh >= (int64_t{1} << 20) || l.fw >= (int64_t{1} << 20))
        fail(op, "factors must be in [1, 2^20)");
      return l.h * l.fh * l.w * l.fw * l.c;
    }
    case OpKind::depth_to_space:
    case OpKind::space_to_depth: {
      const int o = static_cast<int>(l.order);
      if (o < 0 || o > 1) fail(op, "unknown channel order");
      if (l.block < 1 || l.block >= (int64_t{1} << 20)) fail(op, "block size must be >= 1");
      if (op.kind == OpKind::depth_to_space && l.c % (l.block * l.block))
        fail(op, "the block size squared must divide the channels");
      if (op.kind == OpKind::space_to_depth && (l.h % l.block || l.w % l.block))
        fail(op, "the block size must divide the height and the width");
      return image_values(l);
    }
    case OpKind::channel_shuffle:
      if (l.groups < 1 || l.c % l.groups) fail(op, "groups must divide the channels");
      return image_values(l);
    default: break;
  }
  fail(op, "not a layout op");
}

void check_q(const OpSpec& op, const QuantParams& q, const std::string& what) {
  if (!(std::isfinite(q.scale) && q.scale > 0.0f))
    fail(op, what + " scale: expected a finite scale > 0, got " + std::to_string(q.scale));
  if (q.zero_point < 0 || q.zero_point > 255)
    fail(op, what + " zero point: expected 0..255, got " + std::to_string(q.zero_point));
}

void check_qin(const OpSpec& op) {
  if (op.qin.size() != op.in.size())
    fail(op, "one input quantisation per input is needed (" + std::to_string(op.in.size()) +
                 "), got " + std::to_string(op.qin.size()));
  for (size_t i = 0; i < op.qin.size(); ++i) check_q(op, op.qin[i], "input " + std::to_string(i));
}

// The store of qconv2d / qdense: uint8 (with the output's quantisation) or float.
void check_qstore(const OpSpec& op) {
  if (op.qstore == QOutput::u8)
    check_q(op, op.qout, "output");
  else if (op.qstore != QOutput::f32)
    fail(op, "the store writes uint8 or float");
  const int a = static_cast<int>(op.qact);
  if (a < 0 || a > 2) fail(op, "unknown activation");
}

// qpool's window on one image; writes the output size.
int64_t qpool_output_values(const OpSpec& op, int64_t* oh, int64_t* ow) {
  switch (op.pool) {
    case PlanPool::max:
    case PlanPool::avg:
    case PlanPool::global_avg:
      return plan_detail::pool_output_values(op.pool, op.ps, op.pp, oh, ow);
    default:
      fail(op,
           "int8 pooling is max, avg or global_avg (adaptive pools with whole windows "
           "become max / avg windows)");
  }
}

int64_t qop_output_size(const OpSpec& op) {
  switch (op.kind) {
    case OpKind::quantize:
      need_inputs(op, 1, 1);
      if (op.count < 1) fail(op, "count must be >= 1");
      check_q(op, op.qout, "output");
      return op.count;
    case OpKind::dequantize:
      need_inputs(op, 1, 1);
      if (op.count < 1) fail(op, "count must be >= 1");
      check_qin(op);
      return op.count;
    case OpKind::qconv2d: {
      need_inputs(op, 1, 1);
      const Conv2dShape s = one_image(op.conv);
      const char* msg = conv2d_check(s);
      if (msg[0]) throw std::invalid_argument(msg);
      check_qin(op);
      check_qstore(op);
      if (op.qw.empty()) fail(op, "packed int8 weights are needed");
      const auto& P = op.qw.impl();
      if (P.C_in == 0 || P.KH != s.KH || P.KW != s.KW || P.C_in != s.C_in || P.N != s.C_out ||
          P.groups != s.groups || P.depthwise != s.is_depthwise())
        fail(op, "the packed weights do not match the convolution's filter shape and groups");
      return s.output_size();
    }
    case OpKind::qdense:
      need_inputs(op, 1, 1);
      if (op.in_f < 1 || op.out_f < 1) fail(op, "sizes must be >= 1");
      check_qin(op);
      check_qstore(op);
      if (op.qw.empty()) fail(op, "packed int8 weights are needed");
      if (op.qw.impl().C_in != 0 || op.qw.groups() != 1 || op.qw.k() != op.in_f ||
          op.qw.n() != op.out_f)
        fail(op, "the packed weights are not a (" + std::to_string(op.in_f) + ", " +
                     std::to_string(op.out_f) + ") matrix");
      return op.out_f;
    case OpKind::qpool: {
      need_inputs(op, 1, 1);
      check_qin(op);
      if (op.pool != PlanPool::max) check_q(op, op.qout, "output");
      int64_t oh = op.oh, ow = op.ow;
      return qpool_output_values(op, &oh, &ow);
    }
    case OpKind::qadd:
      need_inputs(op, 2, 2);
      if (op.count < 1) fail(op, "count must be >= 1");
      check_qin(op);
      check_q(op, op.qout, "output");
      if (op.qact != QActivation::none && op.qact != QActivation::relu)
        fail(op, "an int8 add clamps with relu or not at all");
      return op.count;
    case OpKind::qconcat: {
      need_inputs(op, 1, 1 << 20);
      if (op.inner.size() != op.in.size()) fail(op, "one inner size per input is needed");
      if (op.outer < 1) fail(op, "outer must be >= 1");
      check_qin(op);
      check_q(op, op.qout, "output");
      int64_t total = 0;
      for (int64_t i : op.inner) {
        if (i < 1) fail(op, "inner sizes must be >= 1");
        total += i;
      }
      return op.outer * total;
    }
    default: break;
  }
  throw std::invalid_argument("op: unknown kind");
}

}  // namespace

bool op_is_int8(OpKind k) {
  switch (k) {
    case OpKind::quantize:
    case OpKind::dequantize:
    case OpKind::qconv2d:
    case OpKind::qdense:
    case OpKind::qpool:
    case OpKind::qadd:
    case OpKind::qconcat: return true;
    default: return false;
  }
}

bool op_input_is_u8(const OpSpec& op, size_t i) {
  (void)i;
  return op_is_int8(op.kind) && op.kind != OpKind::quantize;
}

bool op_output_is_u8(const OpSpec& op) {
  switch (op.kind) {
    case OpKind::quantize:
    case OpKind::qpool:
    case OpKind::qadd:
    case OpKind::qconcat: return true;
    case OpKind::qconv2d:
    case OpKind::qdense: return op.qstore == QOutput::u8;
    default: return false;
  }
}

std::vector<int64_t> op_input_sizes(const OpSpec& op) {
  switch (op.kind) {
    case OpKind::qconv2d: return {one_image(op.conv).input_size()};
    case OpKind::qdense: return {op.in_f};
    case OpKind::qpool: return {op.ps.h * op.ps.w * op.ps.c};
    case OpKind::qconcat: {
      std::vector<int64_t> v;
      for (int64_t i : op.inner) v.push_back(op.outer * i);
      return v;
    }
    case OpKind::conv2d: {
      const Conv2dShape s = one_image(op.conv);
      std::vector<int64_t> v{s.input_size()};
      if (op.in.size() > 1) v.push_back(s.output_size());  // the residual
      return v;
    }
    case OpKind::dense: return {op.in_f};
    case OpKind::pool: return {op.ps.h * op.ps.w * op.ps.c};
    case OpKind::concat: {
      std::vector<int64_t> v;
      for (int64_t i : op.inner) v.push_back(op.outer * i);
      return v;
    }
    case OpKind::augment: return {op.aug.h * op.aug.w * op.aug.c};
    case OpKind::conv_transpose2d: return {one_image(op.convt).input_size()};
    case OpKind::pad2d:
    case OpKind::upsample2d:
    case OpKind::depth_to_space:
    case OpKind::space_to_depth:
    case OpKind::channel_shuffle: return {image_values(op.layout)};
    case OpKind::transpose: return {transpose_values(op.layout)};
    default: return std::vector<int64_t>(op.in.size(), op.count);
  }
}

int64_t op_output_size(const OpSpec& op) {
  switch (op.kind) {
    case OpKind::conv2d: {
      need_inputs(op, 1, 2);
      const Conv2dShape s = one_image(op.conv);
      const char* msg = conv2d_check(s);
      if (msg[0]) throw std::invalid_argument(msg);
      if (grouped_act(op.act) && op.k != s.C_out) fail(op, "softmax runs over channels");
      check_act(op, s.output_size());
      return s.output_size();
    }
    case OpKind::dense:
      need_inputs(op, 1, 1);
      if (op.in_f < 1 || op.out_f < 1) fail(op, "sizes must be >= 1");
      if (grouped_act(op.act) && op.k != op.out_f) fail(op, "softmax runs over the row");
      check_act(op, op.out_f);
      return op.out_f;
    case OpKind::pool: {
      need_inputs(op, 1, 1);
      int64_t oh = op.oh, ow = op.ow;
      return plan_detail::pool_output_values(op.pool, op.ps, op.pp, &oh, &ow);
    }
    case OpKind::batch_norm:
      need_inputs(op, 1, 1);
      if (op.count < 1 || op.channels < 1 || op.count % op.channels)
        fail(op, "channels must divide the values per image");
      if (!op.bn.mean || !op.bn.var) fail(op, "running statistics are needed");
      if (!(op.bn.eps > 0.0f)) fail(op, "epsilon must be > 0");
      if (!(op.bn.momentum >= 0.0f && op.bn.momentum <= 1.0f))
        fail(op, "momentum must be in [0, 1]");
      return op.count;
    case OpKind::activation:
      need_inputs(op, 1, 1);
      if (op.count < 1) fail(op, "count must be >= 1");
      if (op.act == PlanAct::none) fail(op, "no activation given");
      check_act(op, op.count);
      return op.count;
    case OpKind::eltwise: {
      if (op.eltwise == EltwiseKind::sub)
        need_inputs(op, 2, 2);
      else
        need_inputs(op, 2, 1 << 20);
      const int e = static_cast<int>(op.eltwise);
      if (e < 0 || e > 3) fail(op, "unknown elementwise kind");
      if (op.count < 1) fail(op, "count must be >= 1");
      check_act(op, op.count);
      return op.count;
    }
    case OpKind::concat: {
      need_inputs(op, 1, 1 << 20);
      if (op.inner.size() != op.in.size()) fail(op, "one inner size per input is needed");
      if (op.outer < 1) fail(op, "outer must be >= 1");
      int64_t total = 0;
      for (int64_t i : op.inner) {
        if (i < 1) fail(op, "inner sizes must be >= 1");
        total += i;
      }
      return op.outer * total;
    }
    case OpKind::rescale:
    case OpKind::normalize:
      need_inputs(op, 1, 1);
      if (op.count < 1 || op.channels < 1 || op.chan_inner < 1 ||
          op.count % (op.channels * op.chan_inner))
        fail(op, "channels * chan_inner must divide the values per image");
      if (op.kind == OpKind::rescale && (!op.w || !op.bias))
        fail(op, "scale and offset are needed");
      if (op.kind == OpKind::normalize && (!op.bn.mean || !op.bn.var || !(op.bn.eps > 0.0f)))
        fail(op, "mean, variance and epsilon > 0 are needed");
      return op.count;
    case OpKind::augment:
      need_inputs(op, 1, 1);
      augment_check(op.aug);
      if (op.aug_training && !op.seed) fail(op, "a training step needs the seed's address");
      return op.aug.oh * op.aug.ow * op.aug.c;
    case OpKind::prelu:
    case OpKind::lrn:
    case OpKind::group_norm:
    case OpKind::layer_norm:
      need_inputs(op, 1, 1);
      if (op.count < 1 || op.channels < 1 || op.count % op.channels)
        fail(op, "channels must divide the values per image");
      if (op.kind == OpKind::prelu && !op.w) fail(op, "the slopes are needed");
      if (op.kind == OpKind::lrn && (op.lrn_size < 1 || op.lrn_size % 2 == 0))
        fail(op, "size must be odd and >= 1");
      if ((op.kind == OpKind::group_norm || op.kind == OpKind::layer_norm) && !(op.eps > 0.0f))
        fail(op, "epsilon must be > 0");
      if (op.kind == OpKind::group_norm && (op.groups < 1 || op.channels % op.groups))
        fail(op, "groups must divide the channels");
      return op.count;
    case OpKind::reshape:
    case OpKind::dropout:
    case OpKind::python: fail(op, "this op is resolved by the graph, no plan runs it");
    case OpKind::conv_transpose2d: {
      need_inputs(op, 1, 1);
      const ConvTranspose2dShape s = one_image(op.convt);
      const char* msg = conv_transpose2d_check(s);
      if (msg[0]) throw std::invalid_argument(msg);
      if (op.act == PlanAct::softmax && op.k != s.C_out) fail(op, "softmax runs over channels");
      check_act(op, s.output_size());
      return s.output_size();
    }
    case OpKind::pad2d:
    case OpKind::upsample2d:
    case OpKind::depth_to_space:
    case OpKind::space_to_depth:
    case OpKind::channel_shuffle:
    case OpKind::transpose: return layout_output_size(op);
    default:
      if (op_is_int8(op.kind)) return qop_output_size(op);
  }
  throw std::invalid_argument("op: unknown kind");
}

double op_flops(const OpSpec& op) {
  switch (op.kind) {
    case OpKind::qconv2d:
    case OpKind::conv2d: {
      const Conv2dShape& s = op.conv;
      return 2.0 * s.out_h() * s.out_w() * s.C_out * s.KH * s.KW * s.cin_per_group();
    }
    case OpKind::qdense:
    case OpKind::dense: return 2.0 * op.in_f * op.out_f;
    case OpKind::qpool:
    case OpKind::pool: return static_cast<double>(op.ps.h * op.ps.w * op.ps.c);
    case OpKind::quantize:
    case OpKind::dequantize: return static_cast<double>(op.count);
    case OpKind::qadd: return 2.0 * op.count;
    case OpKind::qconcat: {
      double n = 0;
      for (int64_t i : op.inner) n += static_cast<double>(op.outer * i);
      return n / 4;  // bytes
    }
    case OpKind::batch_norm: return 2.0 * op.count;
    case OpKind::activation: return 4.0 * op.count;
    case OpKind::eltwise: return static_cast<double>(op.count) * op.in.size();
    case OpKind::concat: {
      double n = 0;
      for (int64_t i : op.inner) n += static_cast<double>(op.outer * i);
      return n;
    }
    case OpKind::rescale:
    case OpKind::normalize: return 2.0 * op.count;
    case OpKind::augment: return 20.0 * op.aug.oh * op.aug.ow * op.aug.c;
    case OpKind::conv_transpose2d: {
      const ConvTranspose2dShape& s = op.convt;
      return 2.0 * s.H * s.W * s.KH * s.KW * (s.C_in / s.groups) * s.C_out;
    }
    case OpKind::pad2d:
    case OpKind::upsample2d:
    case OpKind::depth_to_space:
    case OpKind::space_to_depth:
    case OpKind::channel_shuffle:
    case OpKind::transpose: return static_cast<double>(op_output_size(op));  // one move per value
    case OpKind::prelu: return 2.0 * op.count;
    case OpKind::lrn: return (40.0 + 2.0 * op.lrn_size) * op.count;
    case OpKind::group_norm:
    case OpKind::layer_norm: return 8.0 * op.count;
    default: return 0.0;
  }
}

OpSpec conv_op(int in, int out, const Conv2dShape& s, const float* w, const float* bias,
               PlanAct act) {
  OpSpec op;
  op.kind = OpKind::conv2d;
  op.in = {in};
  op.out = out;
  op.conv = s;
  op.conv.N = 1;
  op.w = w;
  op.bias = bias;
  op.act = act;
  op.k = s.C_out;
  return op;
}

OpSpec dense_op(int in, int out, int64_t in_f, int64_t out_f, const float* w, const float* bias,
                PlanAct act) {
  OpSpec op;
  op.kind = OpKind::dense;
  op.in = {in};
  op.out = out;
  op.in_f = in_f;
  op.out_f = out_f;
  op.w = w;
  op.bias = bias;
  op.act = act;
  op.k = out_f;
  return op;
}

OpSpec pool_op(int in, int out, PlanPool kind, const PoolShape& s, const Pool2dParams& p,
               bool count_include_pad, int64_t oh, int64_t ow) {
  OpSpec op;
  op.kind = OpKind::pool;
  op.in = {in};
  op.out = out;
  op.pool = kind;
  op.ps = s;
  op.ps.n = 1;
  op.pp = p;
  op.count_include_pad = count_include_pad;
  op.oh = oh;
  op.ow = ow;
  return op;
}

OpSpec activation_op(int in, int out, int64_t count, PlanAct act, float alpha, int64_t k) {
  OpSpec op;
  op.count = count;
  op.kind = OpKind::activation;
  op.in = {in};
  op.out = out;
  op.act = act;
  op.alpha = alpha;
  op.k = k;
  return op;
}

OpSpec eltwise_op(std::vector<int> in, int out, int64_t count, EltwiseKind kind, PlanAct act) {
  OpSpec op;
  op.count = count;
  op.kind = OpKind::eltwise;
  op.in = std::move(in);
  op.out = out;
  op.eltwise = kind;
  op.act = act;
  return op;
}

OpSpec batch_norm_op(int in, int out, int64_t count, int64_t channels, const BatchNormSpec& bn) {
  OpSpec op;
  op.count = count;
  op.kind = OpKind::batch_norm;
  op.in = {in};
  op.out = out;
  op.channels = channels;
  op.bn = bn;
  return op;
}

OpSpec concat_op(std::vector<int> in, int out, int64_t outer, std::vector<int64_t> inner) {
  OpSpec op;
  op.kind = OpKind::concat;
  op.in = std::move(in);
  op.out = out;
  op.outer = outer;
  op.inner = std::move(inner);
  return op;
}

OpSpec prelu_op(int in, int out, int64_t count, int64_t slopes, const float* slope) {
  OpSpec op;
  op.kind = OpKind::prelu;
  op.in = {in};
  op.out = out;
  op.count = count;
  op.channels = slopes;
  op.w = slope;
  return op;
}

OpSpec lrn_op(int in, int out, int64_t count, int64_t channels, int64_t size, float alpha,
              float beta, float bias) {
  OpSpec op;
  op.kind = OpKind::lrn;
  op.in = {in};
  op.out = out;
  op.count = count;
  op.channels = channels;
  op.lrn_size = size;
  op.lrn_alpha = alpha;
  op.lrn_beta = beta;
  op.lrn_bias = bias;
  return op;
}

OpSpec group_norm_op(int in, int out, int64_t count, int64_t channels, int64_t groups,
                     const float* gamma, const float* beta, float eps) {
  OpSpec op;
  op.kind = OpKind::group_norm;
  op.in = {in};
  op.out = out;
  op.count = count;
  op.channels = channels;
  op.groups = groups;
  op.w = gamma;
  op.bias = beta;
  op.eps = eps;
  return op;
}

OpSpec layer_norm_op(int in, int out, int64_t count, int64_t channels, const float* gamma,
                     const float* beta, float eps) {
  OpSpec op = group_norm_op(in, out, count, channels, 1, gamma, beta, eps);
  op.kind = OpKind::layer_norm;
  return op;
}

}  // namespace cnnx
