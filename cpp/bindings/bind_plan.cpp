// cnnx._core.OpSpec, InferencePlan and TrainPlan (cnnx/op_spec.h, plan.h,
// train_plan.h), and the enums every op kind is named by. python/cnnx/graph
// builds the specs from a model's op graph. Weights are NOT copied: the
// plans read the model's live arrays (so in-place updates are seen at once),
// and these wrappers keep a reference to each of them.
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bindings.h"
#include "cnnx/int8.h"
#include "cnnx/op_spec.h"
#include "cnnx/plan.h"
#include "cnnx/train_plan.h"

namespace cnnx_py {
namespace {

using I15 = std::array<int64_t, 15>;
using I17 = std::array<int64_t, 17>;
using I4 = std::array<int64_t, 4>;
using I8 = std::array<int64_t, 8>;
using I3 = std::array<int64_t, 3>;
using OptArray = std::optional<py::array>;

// An op description plus the arrays it refers to (checked when a plan takes it).
struct PyOpSpec {
  cnnx::OpSpec s;
  OptArray kernel, bias, dkernel, dbias;
  OptArray gamma, beta, mean, var, dgamma, dbeta;
  OptArray seed;   // augment: a uint64 array of one value, the current step's seed
  OptArray qbias;  // int8 ops: a bias in accumulator units (int32)
};

// What a plan keeps alive: every array it points into.
struct Keep {
  std::vector<py::object> arrays;

  // A live float32 C-contiguous array of exactly n values (never a copy: a
  // copy would freeze the weights the plan sees).
  float* live(const py::array& a, int64_t n, const std::string& name, bool writeable = false) {
    require(is_f32(a), name + ": expected a float32 array");
    require((a.flags() & py::array::c_style) != 0, name + ": expected a C-contiguous array");
    require(a.size() == n,
            name + ": expected " + std::to_string(n) + " values, got " + std::to_string(a.size()));
    require(!writeable || a.writeable(), name + ": must be writeable");
    arrays.push_back(a);
    return static_cast<float*>(const_cast<void*>(a.data()));
  }
  float* opt(const OptArray& a, int64_t n, const std::string& name, bool writeable = false) {
    return a ? live(*a, n, name, writeable) : nullptr;
  }
};

// The spec with its pointers set, after checking each array's size against
// the geometry. `training`: gradient slots and writeable running statistics.
// An int8 op's bias arrays (float in real units, int32 in accumulator units).
cnnx::OpSpec resolve_int8(const PyOpSpec& p, Keep& keep) {
  cnnx::OpSpec s = p.s;
  if (s.kind != cnnx::OpKind::qconv2d && s.kind != cnnx::OpKind::qdense) {
    require(!p.bias && !p.qbias, "bias: only qconv2d and qdense take a bias");
    return s;
  }
  require(!s.qw.empty(), "w: the op needs its packed int8 weights (set_qweights)");
  const int64_t c = s.qw.n();
  s.bias = keep.opt(p.bias, c, "bias");
  if (p.qbias) {
    const py::array& a = *p.qbias;
    require(a.dtype().is(py::dtype::of<int32_t>()), "bias_acc: expected an int32 array");
    require((a.flags() & py::array::c_style) != 0, "bias_acc: expected a C-contiguous array");
    require(a.size() == c,
            "bias_acc: expected " + std::to_string(c) + " values, got " + std::to_string(a.size()));
    keep.arrays.push_back(a);
    s.qbias = static_cast<const int32_t*>(a.data());
  }
  return s;
}

cnnx::OpSpec resolve(const PyOpSpec& p, Keep& keep, bool training) {
  if (cnnx::op_is_int8(p.s.kind)) {
    require(!training, "op: int8 ops run in inference plans only");
    return resolve_int8(p, keep);
  }
  cnnx::OpSpec s = p.s;
  if (s.kind == cnnx::OpKind::conv2d || s.kind == cnnx::OpKind::dense ||
      s.kind == cnnx::OpKind::conv_transpose2d) {
    try {
      cnnx::op_output_size(s);  // the geometry first: the sizes below rely on it
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }
  int64_t wn = 0, c = 0;
  if (s.kind == cnnx::OpKind::conv2d) {
    cnnx::Conv2dShape one = s.conv;
    one.N = 1;
    wn = one.weight_size();
    c = s.conv.C_out;
  } else if (s.kind == cnnx::OpKind::dense) {
    wn = s.in_f * s.out_f;
    c = s.out_f;
  } else if (s.kind == cnnx::OpKind::conv_transpose2d) {
    cnnx::ConvTranspose2dShape one = s.convt;
    one.N = 1;
    wn = one.weight_size();
    c = s.convt.C_out;
  }
  if (wn) {
    require(p.kernel.has_value(), "kernel: the op needs its weights");
    s.w = keep.live(*p.kernel, wn, "kernel");
    s.bias = keep.opt(p.bias, c, "bias");
    if (training) {
      s.dw = keep.opt(p.dkernel, wn, "dkernel", true);
      s.db = p.bias ? keep.opt(p.dbias, c, "dbias", true) : nullptr;
    }
  }
  if (s.kind == cnnx::OpKind::rescale) {
    require(p.kernel && p.bias, "rescale: scale and offset are needed");
    require(s.channels >= 1, "rescale: channels must be >= 1");
    s.w = keep.live(*p.kernel, s.channels, "scale");
    s.bias = keep.live(*p.bias, s.channels, "offset");
  }
  if (s.kind == cnnx::OpKind::normalize) {
    require(p.mean && p.var, "normalize: mean and variance are needed");
    require(s.channels >= 1, "normalize: channels must be >= 1");
    s.bn.mean = keep.live(*p.mean, s.channels, "mean");
    s.bn.var = keep.live(*p.var, s.channels, "variance");
  }
  if (s.kind == cnnx::OpKind::augment) {
    s.aug_training = training;
    if (training) {
      require(p.seed.has_value(), "augment: a training step needs the seed array");
      const py::array& a = *p.seed;
      require(py::isinstance<py::array_t<uint64_t>>(a) && a.size() == 1 &&
                  (a.flags() & py::array::c_style) != 0,
              "seed: expected a uint64 array of one value");
      keep.arrays.push_back(a);
      s.seed = static_cast<const uint64_t*>(a.data());
    }
  }
  if (s.kind == cnnx::OpKind::prelu) {
    require(s.channels >= 1, "prelu: channels (the slope count) must be >= 1");
    require(p.kernel.has_value(), "slope: the op needs its slopes");
    s.w = keep.live(*p.kernel, s.channels, "slope");
    if (training) s.dw = keep.opt(p.dkernel, s.channels, "dslope", true);
  }
  if (s.kind == cnnx::OpKind::group_norm || s.kind == cnnx::OpKind::layer_norm) {
    require(s.channels >= 1, "norm: channels must be >= 1");
    s.w = keep.opt(p.gamma, s.channels, "gamma");
    s.bias = keep.opt(p.beta, s.channels, "beta");
    if (training) {
      s.dw = p.gamma ? keep.opt(p.dgamma, s.channels, "dgamma", true) : nullptr;
      s.db = p.beta ? keep.opt(p.dbeta, s.channels, "dbeta", true) : nullptr;
    }
  }
  if (s.kind == cnnx::OpKind::batch_norm || s.has_bn) {
    const int64_t bc = s.kind == cnnx::OpKind::batch_norm ? s.channels : c;
    require(p.mean && p.var, "batch norm: moving_mean and moving_var are needed");
    s.bn.gamma = keep.opt(p.gamma, bc, "gamma");
    s.bn.beta = keep.opt(p.beta, bc, "beta");
    s.bn.mean = keep.live(*p.mean, bc, "moving_mean", training);
    s.bn.var = keep.live(*p.var, bc, "moving_var", training);
    if (training) {
      s.bn.dgamma = p.gamma ? keep.opt(p.dgamma, bc, "dgamma", true) : nullptr;
      s.bn.dbeta = p.beta ? keep.opt(p.dbeta, bc, "dbeta", true) : nullptr;
    }
  }
  return s;
}

cnnx::Conv2dShape conv_shape(const I15& g) {
  cnnx::Conv2dShape s;
  s.N = 1;
  s.H = g[0];
  s.W = g[1];
  s.C_in = g[2];
  s.KH = g[3];
  s.KW = g[4];
  s.C_out = g[5];
  s.stride_h = g[6];
  s.stride_w = g[7];
  s.dilation_h = g[8];
  s.dilation_w = g[9];
  s.pad_top = g[10];
  s.pad_bottom = g[11];
  s.pad_left = g[12];
  s.pad_right = g[13];
  s.groups = g[14];
  const char* msg = cnnx::conv2d_check(s);
  require(msg[0] == 0, msg);
  return s;
}

I15 conv_tuple(const cnnx::Conv2dShape& s) {
  return {s.H,       s.W,          s.C_in,     s.KH,         s.KW,
          s.C_out,   s.stride_h,   s.stride_w, s.dilation_h, s.dilation_w,
          s.pad_top, s.pad_bottom, s.pad_left, s.pad_right,  s.groups};
}

template <class Plan>
struct Wrapped {
  std::unique_ptr<Plan> plan;
  Keep keep;
};

using PyInference = Wrapped<cnnx::InferencePlan>;

struct Batch {
  std::vector<farray> x;
  std::vector<const float*> xp;
  std::vector<py::array> tkeep;
  std::vector<const void*> tp;
  farray wkeep;
  const float* w = nullptr;
  int64_t N = 0;
};

std::vector<farray> batches(const py::object& xs, const std::vector<int64_t>& per_image,
                            int64_t* N);

struct PyTrain {
  std::unique_ptr<cnnx::TrainPlan> plan;
  Keep keep;
  std::vector<int64_t> sizes;
  int n_inputs = 1;
  std::vector<farray> pending_x;  // a forward() awaiting its backward()
  py::list pending_out;

  // The inputs, each loss's target (int64 labels or float rows of its
  // value's size) and the sample weights, checked.
  Batch batch(const py::object& xs, const py::list& targets, const py::object& sample_weight,
              bool external_ok = false) {
    Batch b;
    std::vector<int64_t> per(sizes.begin(), sizes.begin() + n_inputs);
    b.x = batches(xs, per, &b.N);
    require(b.N >= 1, "x: expected a non-empty batch");
    for (auto& a : b.x) b.xp.push_back(a.data());
    b.tp.assign(targets.size(), nullptr);
    for (const cnnx::LossSpec& L : plan->losses()) {
      if (L.kind == cnnx::LossKind::external) {
        require(external_ok, "loss: a plan with an external loss runs forward() and backward()");
        continue;
      }
      require(L.target < static_cast<int>(targets.size()),
              "targets: expected " + std::to_string(L.target + 1) + " or more arrays");
      const int64_t K = sizes[L.value];
      if (L.kind == cnnx::LossKind::softmax_cross_entropy) {
        auto t = py::array_t<int64_t, py::array::c_style>::ensure(targets[L.target]);
        const int64_t rows = b.N * (L.classes > 0 ? K / L.classes : 1);
        require(t && t.ndim() >= 1 && t.shape(0) == b.N && t.size() == rows,
                "labels: expected " + std::to_string(rows) + " integer labels");
        b.tp[L.target] = t.data();
        b.tkeep.push_back(t);
      } else {
        farray t = farray::ensure(targets[L.target]);
        require(t && t.size() == b.N * K, "targets: expected " + std::to_string(b.N) + " rows of " +
                                              std::to_string(K) + " values");
        b.tp[L.target] = t.data();
        b.tkeep.push_back(t);
      }
    }
    if (!sample_weight.is_none()) {
      b.wkeep = farray::ensure(sample_weight);
      require(b.wkeep && b.wkeep.ndim() == 1 && b.wkeep.shape(0) == b.N,
              "sample_weight: expected " + std::to_string(b.N) + " weights");
      b.w = b.wkeep.data();
    }
    return b;
  }

  std::vector<float*> new_outputs(int64_t N, py::list& outs) {
    std::vector<float*> op;
    for (int v : plan->outputs()) {
      farray y = new_array({N, sizes[v]});
      op.push_back(y.mutable_data());
      outs.append(y);
    }
    return op;
  }
};

// A list of float32 batches, one per input of the given sizes; all hold N images.
std::vector<farray> batches(const py::object& xs, const std::vector<int64_t>& per_image,
                            int64_t* N) {
  std::vector<farray> out;
  if (py::isinstance<py::list>(xs) || py::isinstance<py::tuple>(xs)) {
    for (auto h : xs) out.push_back(farray::ensure(h));
  } else {
    out.push_back(farray::ensure(xs));
  }
  require(out.size() == per_image.size(), "x: expected " + std::to_string(per_image.size()) +
                                              " input arrays, got " + std::to_string(out.size()));
  *N = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    require(out[i] && out[i].ndim() >= 1, "x: expected a batch per input");
    const int64_t n = out[i].shape(0);
    if (*N < 0) *N = n;
    require(n == *N, "x: every input needs the same batch size");
    require(n == 0 || out[i].size() / n == per_image[i],
            "x: input " + std::to_string(i) + " expects " + std::to_string(per_image[i]) +
                " values per image");
    require(out[i].size() == n * per_image[i], "x: wrong number of values");
  }
  return out;
}

}  // namespace

void bind_plan(py::module_& m) {
  py::enum_<cnnx::OpKind>(m, "OpKind", "what a graph op computes (cnnx/op_spec.h)")
      .value("conv2d", cnnx::OpKind::conv2d)
      .value("dense", cnnx::OpKind::dense)
      .value("pool", cnnx::OpKind::pool)
      .value("batch_norm", cnnx::OpKind::batch_norm)
      .value("activation", cnnx::OpKind::activation)
      .value("eltwise", cnnx::OpKind::eltwise)
      .value("concat", cnnx::OpKind::concat)
      .value("reshape", cnnx::OpKind::reshape)
      .value("dropout", cnnx::OpKind::dropout)
      .value("python", cnnx::OpKind::python)
      .value("rescale", cnnx::OpKind::rescale)
      .value("normalize", cnnx::OpKind::normalize)
      .value("augment", cnnx::OpKind::augment)
      .value("conv_transpose2d", cnnx::OpKind::conv_transpose2d)
      .value("pad2d", cnnx::OpKind::pad2d)
      .value("upsample2d", cnnx::OpKind::upsample2d)
      .value("depth_to_space", cnnx::OpKind::depth_to_space)
      .value("space_to_depth", cnnx::OpKind::space_to_depth)
      .value("channel_shuffle", cnnx::OpKind::channel_shuffle)
      .value("transpose", cnnx::OpKind::transpose)
      .value("prelu", cnnx::OpKind::prelu)
      .value("lrn", cnnx::OpKind::lrn)
      .value("group_norm", cnnx::OpKind::group_norm)
      .value("layer_norm", cnnx::OpKind::layer_norm)
      .value("quantize", cnnx::OpKind::quantize)
      .value("dequantize", cnnx::OpKind::dequantize)
      .value("qconv2d", cnnx::OpKind::qconv2d)
      .value("qdense", cnnx::OpKind::qdense)
      .value("qpool", cnnx::OpKind::qpool)
      .value("qadd", cnnx::OpKind::qadd)
      .value("qconcat", cnnx::OpKind::qconcat);
  py::enum_<cnnx::PlanAct>(m, "Act", "activations a plan applies (alone or in a store)")
      .value("none", cnnx::PlanAct::none)
      .value("relu", cnnx::PlanAct::relu)
      .value("leaky_relu", cnnx::PlanAct::leaky_relu)
      .value("sigmoid", cnnx::PlanAct::sigmoid)
      .value("tanh", cnnx::PlanAct::tanh)
      .value("softmax", cnnx::PlanAct::softmax)
      .value("elu", cnnx::PlanAct::elu)
      .value("selu", cnnx::PlanAct::selu)
      .value("gelu", cnnx::PlanAct::gelu)
      .value("gelu_tanh", cnnx::PlanAct::gelu_tanh)
      .value("silu", cnnx::PlanAct::silu)
      .value("hardswish", cnnx::PlanAct::hardswish)
      .value("hardsigmoid", cnnx::PlanAct::hardsigmoid)
      .value("clip", cnnx::PlanAct::clip)
      .value("softplus", cnnx::PlanAct::softplus)
      .value("softsign", cnnx::PlanAct::softsign)
      .value("log_softmax", cnnx::PlanAct::log_softmax);
  py::enum_<cnnx::PlanPool>(m, "PoolKind")
      .value("max", cnnx::PlanPool::max)
      .value("avg", cnnx::PlanPool::avg)
      .value("adaptive_avg", cnnx::PlanPool::adaptive_avg)
      .value("adaptive_max", cnnx::PlanPool::adaptive_max)
      .value("global_avg", cnnx::PlanPool::global_avg);
  py::enum_<cnnx::EltwiseKind>(m, "EltwiseKind")
      .value("add", cnnx::EltwiseKind::add)
      .value("sub", cnnx::EltwiseKind::sub)
      .value("mul", cnnx::EltwiseKind::mul)
      .value("avg", cnnx::EltwiseKind::avg);
  py::enum_<cnnx::LossKind>(m, "LossKind", "losses the training step computes (cnnx/op_spec.h)")
      .value("softmax_cross_entropy", cnnx::LossKind::softmax_cross_entropy)
      .value("mean_squared_error", cnnx::LossKind::mean_squared_error)
      .value("mean_absolute_error", cnnx::LossKind::mean_absolute_error)
      .value("huber", cnnx::LossKind::huber)
      .value("softmax_cross_entropy_soft", cnnx::LossKind::softmax_cross_entropy_soft)
      .value("sigmoid_binary_cross_entropy", cnnx::LossKind::sigmoid_binary_cross_entropy)
      .value("binary_cross_entropy", cnnx::LossKind::binary_cross_entropy)
      .value("external", cnnx::LossKind::external);

  py::class_<PyOpSpec>(m, "OpSpec", "one op of a compiled plan (cnnx/op_spec.h)")
      .def(py::init([](cnnx::OpKind kind, std::vector<int> inputs, int output) {
             auto p = std::make_unique<PyOpSpec>();
             p->s.kind = kind;
             p->s.in = std::move(inputs);
             p->s.out = output;
             return p;
           }),
           py::arg("kind"), py::arg("inputs"), py::arg("output"))
      .def_property_readonly("kind", [](const PyOpSpec& p) { return p.s.kind; })
      .def_property(
          "inputs", [](const PyOpSpec& p) { return p.s.in; },
          [](PyOpSpec& p, std::vector<int> v) { p.s.in = std::move(v); })
      .def_property(
          "output", [](const PyOpSpec& p) { return p.s.out; },
          [](PyOpSpec& p, int v) { p.s.out = v; })
      .def_property(
          "conv", [](const PyOpSpec& p) { return conv_tuple(p.s.conv); },
          [](PyOpSpec& p, const I15& g) { p.s.conv = conv_shape(g); },
          "(H, W, C_in, KH, KW, C_out, stride_h, stride_w, dilation_h, dilation_w, pad_top, "
          "pad_bottom, pad_left, pad_right, groups)")
      .def_property(
          "dense", [](const PyOpSpec& p) { return std::make_pair(p.s.in_f, p.s.out_f); },
          [](PyOpSpec& p, std::pair<int64_t, int64_t> v) {
            p.s.in_f = v.first;
            p.s.out_f = v.second;
          },
          "(in_features, out_features)")
      .def_property(
          "pool_kind", [](const PyOpSpec& p) { return p.s.pool; },
          [](PyOpSpec& p, cnnx::PlanPool v) { p.s.pool = v; })
      .def_property(
          "pool_input", [](const PyOpSpec& p) { return I3{p.s.ps.h, p.s.ps.w, p.s.ps.c}; },
          [](PyOpSpec& p, const I3& v) { p.s.ps = cnnx::PoolShape{1, v[0], v[1], v[2]}; },
          "(h, w, c) of one image")
      .def_property(
          "pool_window",
          [](const PyOpSpec& p) {
            const cnnx::Pool2dParams& q = p.s.pp;
            return I8{q.kernel_h, q.kernel_w,   q.stride_h, q.stride_w,
                      q.pad_top,  q.pad_bottom, q.pad_left, q.pad_right};
          },
          [](PyOpSpec& p, const I8& g) {
            cnnx::Pool2dParams q{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]};
            q.dilation_h = p.s.pp.dilation_h;  // set on their own (pool_dilation, pool_ceil_mode)
            q.dilation_w = p.s.pp.dilation_w;
            q.ceil_mode = p.s.pp.ceil_mode;
            p.s.pp = q;
          },
          "(kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right)")
      .def_property(
          "pool_dilation",
          [](const PyOpSpec& p) { return std::make_pair(p.s.pp.dilation_h, p.s.pp.dilation_w); },
          [](PyOpSpec& p, std::pair<int64_t, int64_t> v) {
            p.s.pp.dilation_h = v.first;
            p.s.pp.dilation_w = v.second;
          },
          "(dilation_h, dilation_w) of a max pool")
      .def_property(
          "pool_ceil_mode", [](const PyOpSpec& p) { return p.s.pp.ceil_mode; },
          [](PyOpSpec& p, bool v) { p.s.pp.ceil_mode = v; })
      .def_property(
          "pool_output", [](const PyOpSpec& p) { return std::make_pair(p.s.oh, p.s.ow); },
          [](PyOpSpec& p, std::pair<int64_t, int64_t> v) {
            p.s.oh = v.first;
            p.s.ow = v.second;
          },
          "(out_h, out_w) of an adaptive pool")
      .def_property(
          "count_include_pad", [](const PyOpSpec& p) { return p.s.count_include_pad; },
          [](PyOpSpec& p, bool v) { p.s.count_include_pad = v; })
      .def_property(
          "act", [](const PyOpSpec& p) { return p.s.act; },
          [](PyOpSpec& p, cnnx::PlanAct v) { p.s.act = v; })
      .def_property(
          "alpha", [](const PyOpSpec& p) { return p.s.alpha; },
          [](PyOpSpec& p, float v) { p.s.alpha = v; })
      .def_property(
          "beta", [](const PyOpSpec& p) { return p.s.beta; },
          [](PyOpSpec& p, float v) { p.s.beta = v; },
          "the activation's second parameter (clip's max, hard sigmoid's offset, selu's scale)")
      .def_property(
          "groups", [](const PyOpSpec& p) { return p.s.groups; },
          [](PyOpSpec& p, int64_t v) { p.s.groups = v; })
      .def_property(
          "eps", [](const PyOpSpec& p) { return p.s.eps; },
          [](PyOpSpec& p, float v) { p.s.eps = v; })
      .def_property(
          "lrn",
          [](const PyOpSpec& p) {
            return std::make_tuple(p.s.lrn_size, p.s.lrn_alpha, p.s.lrn_beta, p.s.lrn_bias);
          },
          [](PyOpSpec& p, std::tuple<int64_t, float, float, float> v) {
            p.s.lrn_size = std::get<0>(v);
            p.s.lrn_alpha = std::get<1>(v);
            p.s.lrn_beta = std::get<2>(v);
            p.s.lrn_bias = std::get<3>(v);
          },
          "(size, alpha, beta, bias) of local response normalisation")
      .def_property(
          "k", [](const PyOpSpec& p) { return p.s.k; }, [](PyOpSpec& p, int64_t v) { p.s.k = v; },
          "softmax group: values of the last axis")
      .def_property(
          "eltwise", [](const PyOpSpec& p) { return p.s.eltwise; },
          [](PyOpSpec& p, cnnx::EltwiseKind v) { p.s.eltwise = v; })
      .def_property(
          "outer", [](const PyOpSpec& p) { return p.s.outer; },
          [](PyOpSpec& p, int64_t v) { p.s.outer = v; })
      .def_property(
          "inner", [](const PyOpSpec& p) { return p.s.inner; },
          [](PyOpSpec& p, std::vector<int64_t> v) { p.s.inner = std::move(v); })
      .def_property(
          "channels", [](const PyOpSpec& p) { return p.s.channels; },
          [](PyOpSpec& p, int64_t v) { p.s.channels = v; })
      .def_property(
          "count", [](const PyOpSpec& p) { return p.s.count; },
          [](PyOpSpec& p, int64_t v) { p.s.count = v; })
      .def_property(
          "relu_mask_applied_later", [](const PyOpSpec& p) { return p.s.relu_mask_applied_later; },
          [](PyOpSpec& p, bool v) { p.s.relu_mask_applied_later = v; })
      .def_property(
          "mask_grad_by_output", [](const PyOpSpec& p) { return p.s.mask_grad_by_output; },
          [](PyOpSpec& p, bool v) { p.s.mask_grad_by_output = v; })
      .def(
          "set_weights",
          [](PyOpSpec& p, py::array kernel, OptArray bias, OptArray dkernel, OptArray dbias) {
            p.kernel = kernel;
            p.bias = bias;
            p.dkernel = dkernel;
            p.dbias = dbias;
          },
          py::arg("kernel"), py::arg("bias") = py::none(), py::arg("dkernel") = py::none(),
          py::arg("dbias") = py::none(), "the weights (and, for training, their gradient slots)")
      .def(
          "set_batch_norm",
          [](PyOpSpec& p, OptArray gamma, OptArray beta, py::array mean, py::array var, float eps,
             float momentum, OptArray dgamma, OptArray dbeta) {
            p.gamma = gamma;
            p.beta = beta;
            p.mean = mean;
            p.var = var;
            p.dgamma = dgamma;
            p.dbeta = dbeta;
            p.s.bn.eps = eps;
            p.s.bn.momentum = momentum;
            if (p.s.kind != cnnx::OpKind::batch_norm) p.s.has_bn = true;
          },
          py::arg("gamma"), py::arg("beta"), py::arg("moving_mean"), py::arg("moving_var"),
          py::arg("epsilon"), py::arg("momentum") = 0.01f, py::arg("dgamma") = py::none(),
          py::arg("dbeta") = py::none(),
          "a batch norm op's arrays, or (inference) a batch norm folded into conv2d / dense")
      .def(
          "set_affine",
          [](PyOpSpec& p, OptArray gamma, OptArray beta, OptArray dgamma, OptArray dbeta) {
            p.gamma = gamma;
            p.beta = beta;
            p.dgamma = dgamma;
            p.dbeta = dbeta;
          },
          py::arg("gamma") = py::none(), py::arg("beta") = py::none(),
          py::arg("dgamma") = py::none(), py::arg("dbeta") = py::none(),
          "a group / layer norm's gamma and beta (and, for training, their gradient slots)")
      .def_property_readonly("has_bn", [](const PyOpSpec& p) { return p.s.has_bn; })
      .def_property(
          "chan_inner", [](const PyOpSpec& p) { return p.s.chan_inner; },
          [](PyOpSpec& p, int64_t v) { p.s.chan_inner = v; },
          "rescale / normalize: value i uses constant (i // chan_inner) % channels")
      .def(
          "set_normalization",
          [](PyOpSpec& p, py::array mean, py::array var, float eps) {
            p.mean = mean;
            p.var = var;
            p.s.bn.eps = eps;
          },
          py::arg("mean"), py::arg("variance"), py::arg("epsilon"),
          "a normalize op's live mean and variance (read at every run)")
      .def(
          "set_augment",
          [](PyOpSpec& p, const cnnx::AugmentSpec& spec, OptArray seed) {
            p.s.aug = spec;
            p.seed = seed;
          },
          py::arg("spec"), py::arg("seed") = py::none(),
          "an augment op's transform and its seed cell (uint64[1], rewritten before each step)")
      // the layout ops and the transposed convolution (issue 19, part b)
      .def_property(
          "conv_transpose",
          [](const PyOpSpec& p) {
            const cnnx::ConvTranspose2dShape& s = p.s.convt;
            return I17{s.H,        s.W,         s.C_in,       s.KH,         s.KW,      s.C_out,
                       s.stride_h, s.stride_w,  s.dilation_h, s.dilation_w, s.pad_top, s.pad_bottom,
                       s.pad_left, s.pad_right, s.out_pad_h,  s.out_pad_w,  s.groups};
          },
          [](PyOpSpec& p, const I17& g) {
            cnnx::ConvTranspose2dShape s;
            s.N = 1;
            s.H = g[0];
            s.W = g[1];
            s.C_in = g[2];
            s.KH = g[3];
            s.KW = g[4];
            s.C_out = g[5];
            s.stride_h = g[6];
            s.stride_w = g[7];
            s.dilation_h = g[8];
            s.dilation_w = g[9];
            s.pad_top = g[10];
            s.pad_bottom = g[11];
            s.pad_left = g[12];
            s.pad_right = g[13];
            s.out_pad_h = g[14];
            s.out_pad_w = g[15];
            s.groups = g[16];
            const char* msg = cnnx::conv_transpose2d_check(s);
            require(msg[0] == 0, msg);
            p.s.convt = s;
          },
          "(H, W, C_in, KH, KW, C_out, stride_h, stride_w, dilation_h, dilation_w, pad_top, "
          "pad_bottom, pad_left, pad_right, output_padding_h, output_padding_w, groups)")
      .def(
          "set_pad",
          [](PyOpSpec& p, const I3& hwc, cnnx::PadMode mode, const I4& pads, float value) {
            cnnx::LayoutSpec& l = p.s.layout;
            l.h = hwc[0];
            l.w = hwc[1];
            l.c = hwc[2];
            l.pad_mode = mode;
            for (int i = 0; i < 4; ++i) l.pads[i] = pads[i];
            l.value = value;
          },
          py::arg("image"), py::arg("mode"), py::arg("pads"), py::arg("value") = 0.0f,
          "pad2d: (h, w, c) in, (top, bottom, left, right) pads (constant: negative crops)")
      .def(
          "set_upsample",
          [](PyOpSpec& p, const I3& hwc, cnnx::UpsampleMode mode, int64_t fh, int64_t fw) {
            cnnx::LayoutSpec& l = p.s.layout;
            l.h = hwc[0];
            l.w = hwc[1];
            l.c = hwc[2];
            l.up_mode = mode;
            l.fh = fh;
            l.fw = fw;
          },
          py::arg("image"), py::arg("mode"), py::arg("fh"), py::arg("fw"))
      .def(
          "set_space_depth",
          [](PyOpSpec& p, const I3& hwc, int64_t block, cnnx::DepthOrder order) {
            cnnx::LayoutSpec& l = p.s.layout;
            l.h = hwc[0];
            l.w = hwc[1];
            l.c = hwc[2];
            l.block = block;
            l.order = order;
          },
          py::arg("image"), py::arg("block_size"), py::arg("order"),
          "depth_to_space / space_to_depth of an (h, w, c) image")
      .def(
          "set_channel_shuffle",
          [](PyOpSpec& p, int64_t pixels, int64_t channels, int64_t groups) {
            cnnx::LayoutSpec& l = p.s.layout;
            l.h = pixels;
            l.w = 1;
            l.c = channels;
            l.groups = groups;
          },
          py::arg("pixels"), py::arg("channels"), py::arg("groups"))
      .def(
          "set_transpose",
          [](PyOpSpec& p, std::vector<int64_t> shape, std::vector<int> perm) {
            p.s.layout.shape = std::move(shape);
            p.s.layout.perm = std::move(perm);
          },
          py::arg("shape"), py::arg("perm"),
          "per-example input shape; output axis a = input axis perm[a]")
      .def(
          "set_quant",
          [](PyOpSpec& p, std::vector<std::pair<float, int32_t>> inputs,
             std::pair<float, int32_t> output, cnnx::QOutput store, cnnx::QActivation act) {
            p.s.qin.clear();
            for (const auto& q : inputs) p.s.qin.push_back(cnnx::QuantParams{q.first, q.second});
            p.s.qout = cnnx::QuantParams{output.first, output.second};
            p.s.qstore = store;
            p.s.qact = act;
          },
          py::arg("inputs"), py::arg("output") = std::make_pair(1.0f, 0),
          py::arg("store") = cnnx::QOutput::u8, py::arg("activation") = cnnx::QActivation::none,
          "int8 ops: (scale, zero_point) of each uint8 input and of the uint8 output, what "
          "qconv2d / qdense store, and their clamp")
      .def(
          "set_qweights",
          [](PyOpSpec& p, const cnnx::QPackedWeights& w, OptArray bias, OptArray bias_acc) {
            p.s.qw = w;
            p.bias = bias;
            p.qbias = bias_acc;
          },
          py::arg("w"), py::arg("bias") = py::none(), py::arg("bias_acc") = py::none(),
          "qconv2d / qdense: packed int8 weights, a float bias (real units) and/or an int32 "
          "bias in accumulator units")
      .def_property_readonly("qin",
                             [](const PyOpSpec& p) {
                               std::vector<std::pair<float, int32_t>> v;
                               for (const auto& q : p.s.qin) v.emplace_back(q.scale, q.zero_point);
                               return v;
                             })
      .def_property_readonly(
          "qout",
          [](const PyOpSpec& p) { return std::make_pair(p.s.qout.scale, p.s.qout.zero_point); })
      .def("__repr__", [](const PyOpSpec& p) {
        std::string r = std::string("OpSpec(") + cnnx::op_kind_name(p.s.kind) + ", in=[";
        for (size_t i = 0; i < p.s.in.size(); ++i) r += (i ? ", " : "") + std::to_string(p.s.in[i]);
        return r + "], out=" + std::to_string(p.s.out) + ")";
      });

  py::class_<PyInference>(m, "InferencePlan")
      .def(py::init([](std::vector<int64_t> sizes, int n_inputs, int n_outputs) {
             auto p = std::make_unique<PyInference>();
             try {
               p->plan =
                   std::make_unique<cnnx::InferencePlan>(std::move(sizes), n_inputs, n_outputs);
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
             return p;
           }),
           py::arg("sizes"), py::arg("n_inputs") = 1, py::arg("n_outputs") = 1)
      .def(
          "add",
          [](PyInference& p, const PyOpSpec& spec) { p.plan->add(resolve(spec, p.keep, false)); },
          py::arg("spec"))
      .def(
          "run",
          [](PyInference& p, const py::object& xs) {
            const int ni = p.plan->n_inputs(), no = p.plan->n_outputs();
            std::vector<int64_t> per(ni);
            for (int i = 0; i < ni; ++i) per[i] = p.plan->buffer_size(i);
            int64_t N;
            std::vector<farray> in = batches(xs, per, &N);
            std::vector<const float*> xp(ni);
            for (int i = 0; i < ni; ++i) xp[i] = in[i].data();
            py::list outs;
            std::vector<float*> yp(no);
            for (int o = 0; o < no; ++o) {
              farray y = new_array({N, p.plan->buffer_size(ni + o)});
              yp[o] = y.mutable_data();
              outs.append(y);
            }
            {
              py::gil_scoped_release release;
              p.plan->run(xp.data(), N, yp.data());
            }
            return outs;
          },
          py::arg("x"), "a batch per input -> [a batch per output] (rows of values)")
      .def(
          "profile",
          [](PyInference& p, const py::object& xs, int reps, int parts) {
            require(reps >= 1, "reps: must be >= 1");
            require(parts >= 1, "parts: must be >= 1");
            const int ni = p.plan->n_inputs(), no = p.plan->n_outputs();
            std::vector<int64_t> per(ni);
            for (int i = 0; i < ni; ++i) per[i] = p.plan->buffer_size(i);
            int64_t N;
            std::vector<farray> in = batches(xs, per, &N);
            std::vector<const float*> xp(ni);
            for (int i = 0; i < ni; ++i) xp[i] = in[i].data();
            std::vector<farray> outs;
            std::vector<float*> yp(no);
            for (int o = 0; o < no; ++o) {
              outs.push_back(new_array({N, p.plan->buffer_size(ni + o)}));
              yp[o] = outs.back().mutable_data();
            }
            std::vector<double> t;
            {
              py::gil_scoped_release release;
              t = p.plan->profile(xp.data(), N, yp.data(), reps, parts);
            }
            py::list rows;
            for (size_t i = 0; i < t.size(); ++i)
              rows.append(py::make_tuple(p.plan->op_name(i), t[i] / reps));
            return rows;
          },
          py::arg("x"), py::arg("reps") = 10, py::arg("parts") = 1,
          "[(op name, seconds per run)] on the calling thread alone; parts > 1: each op's "
          "parts of a cooperative run one after another, the slowest counted")
      .def(
          "set_small_batch_mode",
          [](PyInference& p, int mode) { p.plan->set_small_batch_mode(mode); }, py::arg("mode"),
          "-1: measure and choose; 0: one thread; 1: all threads on every op")
      .def_property_readonly("flops_per_image",
                             [](const PyInference& p) { return p.plan->flops_per_image(); })
      .def_property_readonly("op_count", [](const PyInference& p) { return p.plan->op_count(); });

  py::class_<PyTrain>(m, "TrainPlan")
      .def(py::init([](std::vector<int64_t> sizes, int n_inputs, py::array grads) {
             auto p = std::make_unique<PyTrain>();
             float* g = p->keep.live(grads, grads.size(), "grads", true);
             p->sizes = sizes;
             p->n_inputs = n_inputs;
             try {
               p->plan = std::make_unique<cnnx::TrainPlan>(std::move(sizes), n_inputs, g,
                                                           static_cast<int64_t>(grads.size()));
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
             return p;
           }),
           py::arg("sizes"), py::arg("n_inputs"), py::arg("grads"))
      .def(
          "add", [](PyTrain& p, const PyOpSpec& spec) { p.plan->add(resolve(spec, p.keep, true)); },
          py::arg("spec"))
      .def(
          "add_loss",
          [](PyTrain& p, cnnx::LossKind kind, int value, int target, float weight, float param,
             int64_t classes) {
            p.plan->add_loss(cnnx::LossSpec{kind, value, target, weight, param, classes});
          },
          py::arg("kind"), py::arg("value"), py::arg("target"), py::arg("weight") = 1.0f,
          py::arg("param") = 0.0f, py::arg("classes") = 0)
      .def(
          "set_outputs", [](PyTrain& p, std::vector<int> values) { p.plan->set_outputs(values); },
          py::arg("values"))
      .def(
          "step",
          [](PyTrain& p, const py::object& xs, py::list targets, const py::object& sample_weight) {
            Batch b = p.batch(xs, targets, sample_weight);
            py::list outs;
            std::vector<float*> op = p.new_outputs(b.N, outs);
            std::vector<double> parts(p.plan->losses().size(), 0.0);
            double total;
            {
              py::gil_scoped_release release;
              total = p.plan->step(b.xp.data(), b.tp.data(), b.w, b.N, op.data(), parts.data());
            }
            return py::make_tuple(total, parts, outs);
          },
          py::arg("x"), py::arg("targets"), py::arg("sample_weight") = py::none(),
          "forward, the losses and backward: -> (total loss, [each loss before its weight], "
          "[each output])")
      .def(
          "forward",
          [](PyTrain& p, const py::object& xs) {
            std::vector<int64_t> per(p.sizes.begin(), p.sizes.begin() + p.n_inputs);
            int64_t N;
            p.pending_x = batches(xs, per, &N);
            require(N >= 1, "x: expected a non-empty batch");
            std::vector<const float*> xp;
            for (auto& a : p.pending_x) xp.push_back(a.data());
            py::list outs;
            std::vector<float*> op = p.new_outputs(N, outs);
            p.pending_out = outs;
            {
              py::gil_scoped_release release;
              p.plan->forward(xp.data(), N, op.data());
            }
            return outs;
          },
          py::arg("x"), "the first half of a step with external losses: -> [each output]")
      .def(
          "backward",
          [](PyTrain& p, py::list targets, py::list grads, const py::object& sample_weight) {
            require(!p.pending_x.empty(), "x: call forward first");
            const int64_t N = p.pending_x[0].shape(0);
            Batch b = p.batch(py::cast(p.pending_x), targets, sample_weight, true);
            std::vector<farray> gkeep;
            std::vector<const float*> gp(grads.size(), nullptr);
            for (const cnnx::LossSpec& L : p.plan->losses()) {
              if (L.kind != cnnx::LossKind::external) continue;
              require(L.target < static_cast<int>(grads.size()),
                      "grads: expected a gradient for every external loss");
              farray g = farray::ensure(grads[L.target]);
              require(g && g.size() == N * p.sizes[L.value],
                      "grads: expected " + std::to_string(N) + " rows of " +
                          std::to_string(p.sizes[L.value]) + " values");
              gp[L.target] = g.data();
              gkeep.push_back(g);
            }
            std::vector<float*> op;
            for (auto h : p.pending_out) op.push_back(py::cast<farray>(h).mutable_data());
            std::vector<double> parts(p.plan->losses().size(), 0.0);
            double total;
            {
              py::gil_scoped_release release;
              total = p.plan->backward(b.xp.data(), op.data(), b.tp.data(), b.w, gp.data(), N,
                                       parts.data());
            }
            p.pending_x.clear();
            p.pending_out = py::list();
            return py::make_tuple(total, parts);
          },
          py::arg("targets"), py::arg("grads"), py::arg("sample_weight") = py::none(),
          "the second half: targets of the C++ losses, gradients of the external ones -> "
          "(total of the C++ terms, [each term before its weight; external: 0])")
      .def_property_readonly("flops_per_image",
                             [](const PyTrain& p) { return p.plan->flops_per_image(); });
}

}  // namespace cnnx_py
