// cnnx._core.InferencePlan: the compiled inference pass (cnnx/plan.h).
// python/cnnx/_plan.py builds it from a model's layers. Weights are NOT
// copied: the plan reads the model's live arrays (so in-place updates are
// seen at once) and this wrapper keeps a reference to each of them.
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bindings.h"
#include "cnnx/plan.h"
#include "cnnx/train_plan.h"

namespace cnnx_py {
namespace {

using BnSpec = std::tuple<std::optional<py::array>, std::optional<py::array>, py::array, py::array,
                          float>;

struct PyPlan {
  std::unique_ptr<cnnx::InferencePlan> plan;
  std::vector<py::object> keep;  // the arrays the plan points into
  int64_t in_n = 0, out_n = 0;

  // A live float32 C-contiguous array of exactly n values (never a copy: a
  // copy would freeze the weights the plan sees).
  const float* live(const py::array& a, int64_t n, const std::string& name) {
    require(is_f32(a), name + ": expected a float32 array");
    require((a.flags() & py::array::c_style) != 0, name + ": expected a C-contiguous array");
    require(a.size() == n, name + ": expected " + std::to_string(n) + " values, got " +
                               std::to_string(a.size()));
    keep.push_back(a);
    return static_cast<const float*>(a.data());
  }
  const float* live_opt(const std::optional<py::array>& a, int64_t n, const std::string& name) {
    return a ? live(*a, n, name) : nullptr;
  }
  cnnx::PlanBatchNorm bn(const BnSpec& spec, int64_t c) {
    cnnx::PlanBatchNorm b;
    b.gamma = live_opt(std::get<0>(spec), c, "gamma");
    b.beta = live_opt(std::get<1>(spec), c, "beta");
    b.mean = live(std::get<2>(spec), c, "moving_mean");
    b.var = live(std::get<3>(spec), c, "moving_var");
    b.eps = std::get<4>(spec);
    require(b.eps > 0.0f, "epsilon: must be > 0");
    return b;
  }
};

struct PyTrainPlan {
  std::unique_ptr<cnnx::TrainPlan> plan;
  std::vector<py::object> keep;
  int64_t in_n = 0, classes = 0;
  float* grads = nullptr;
  int64_t n_grads = 0;

  const float* live(const py::array& a, int64_t n, const std::string& name) {
    require(is_f32(a), name + ": expected a float32 array");
    require((a.flags() & py::array::c_style) != 0, name + ": expected a C-contiguous array");
    require(a.size() == n, name + ": expected " + std::to_string(n) + " values, got " +
                               std::to_string(a.size()));
    keep.push_back(a);
    return static_cast<const float*>(a.data());
  }
  // A gradient slot: a writeable view into the plan's gradient buffer.
  float* slot(const std::optional<py::array>& a, int64_t n, const std::string& name) {
    if (!a) return nullptr;
    require(a->writeable(), name + ": must be writeable");
    float* p = const_cast<float*>(live(*a, n, name));
    require(p >= grads && p + n <= grads + n_grads, name + ": must be a view into grads");
    return p;
  }
};

using I15 = std::array<int64_t, 15>;
using I8 = std::array<int64_t, 8>;
using I3 = std::array<int64_t, 3>;

// (H, W, C_in, KH, KW, C_out, strides, dilations, 4 pads, groups) as checked
// by conv2d_check, for one image.
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

cnnx::PlanPool pool_kind(int kind) {
  require(kind >= 0 && kind <= 4, "kind: expected 0..4");
  return static_cast<cnnx::PlanPool>(kind);
}

cnnx::Pool2dParams pool_params(const I8& g) {
  return cnnx::Pool2dParams{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]};
}

cnnx::PlanAct act_of(int a) {
  require(a >= 0 && a <= 5, "act: expected 0..5");
  return static_cast<cnnx::PlanAct>(a);
}


}  // namespace

void bind_plan(py::module_& m) {
  py::class_<PyPlan>(m, "InferencePlan")
      .def(py::init([](std::vector<int64_t> sizes) {
             auto p = std::make_unique<PyPlan>();
             require(sizes.size() >= 2, "sizes: need the input and output buffers");
             p->in_n = sizes[0];
             p->out_n = sizes[1];
             p->plan = std::make_unique<cnnx::InferencePlan>(std::move(sizes));
             return p;
           }),
           py::arg("sizes"))
      .def(
          "add_conv",
          [](PyPlan& p, int in, int out, I15 g, py::array w, std::optional<py::array> b, int act,
             float alpha, std::optional<BnSpec> bn, int residual) {
            const cnnx::Conv2dShape s = conv_shape(g);
            const float* pw = p.live(w, s.weight_size(), "kernel");
            const float* pb = p.live_opt(b, s.C_out, "bias");
            cnnx::PlanBatchNorm nb;
            if (bn) nb = p.bn(*bn, s.C_out);
            p.plan->add_conv(in, out, s, pw, pb, act_of(act), alpha, bn ? &nb : nullptr,
                             residual);
          },
          py::arg("src"), py::arg("dst"), py::arg("geometry"), py::arg("kernel"), py::arg("bias"),
          py::arg("act"), py::arg("alpha"), py::arg("bn"), py::arg("residual") = -1)
      .def(
          "add_dense",
          [](PyPlan& p, int in, int out, int64_t in_f, int64_t out_f, py::array w,
             std::optional<py::array> b, int act, float alpha, std::optional<BnSpec> bn) {
            require(in_f >= 1 && out_f >= 1, "dense: sizes must be >= 1");
            const float* pw = p.live(w, in_f * out_f, "kernel");
            const float* pb = p.live_opt(b, out_f, "bias");
            cnnx::PlanBatchNorm nb;
            if (bn) nb = p.bn(*bn, out_f);
            p.plan->add_dense(in, out, in_f, out_f, pw, pb, act_of(act), alpha,
                              bn ? &nb : nullptr);
          },
          py::arg("src"), py::arg("dst"), py::arg("in_features"), py::arg("out_features"),
          py::arg("kernel"), py::arg("bias"), py::arg("act"), py::arg("alpha"), py::arg("bn"))
      .def(
          "add_pool",
          [](PyPlan& p, int in, int out, int kind, I3 hwc, I8 g, bool count_include_pad,
             int64_t oh, int64_t ow) {
            p.plan->add_pool(in, out, pool_kind(kind), cnnx::PoolShape{1, hwc[0], hwc[1], hwc[2]},
                             pool_params(g), count_include_pad, oh, ow);
          },
          py::arg("src"), py::arg("dst"), py::arg("kind"), py::arg("hwc"), py::arg("geometry"),
          py::arg("count_include_pad"), py::arg("out_h"), py::arg("out_w"))
      .def(
          "add_batch_norm",
          [](PyPlan& p, int in, int out, int64_t c, int64_t n, BnSpec bn) {
            require(c >= 1, "channels: must be >= 1");
            const cnnx::PlanBatchNorm nb = p.bn(bn, c);
            p.plan->add_batch_norm(in, out, c, n, nb);
          },
          py::arg("src"), py::arg("dst"), py::arg("channels"), py::arg("n"), py::arg("bn"))
      .def(
          "add_activation",
          [](PyPlan& p, int in, int out, int act, float alpha, int64_t n, int64_t k) {
            p.plan->add_activation(in, out, act_of(act), alpha, n, k);
          },
          py::arg("src"), py::arg("dst"), py::arg("act"), py::arg("alpha"), py::arg("n"),
          py::arg("k"))
      .def(
          "add_add",
          [](PyPlan& p, int a, int b, int out, int act, float alpha, int64_t n, int64_t k) {
            p.plan->add_add(a, b, out, act_of(act), alpha, n, k);
          },
          py::arg("a"), py::arg("b"), py::arg("dst"), py::arg("act"), py::arg("alpha"),
          py::arg("n"), py::arg("k"))
      .def(
          "run",
          [](PyPlan& p, farray x) {
            require(x.ndim() >= 1, "x: expected a batch");
            const int64_t N = x.shape(0);
            require(N == 0 || x.size() / N == p.in_n,
                    "x: expected " + std::to_string(p.in_n) + " values per image");
            farray y = new_array({N, p.out_n});
            {
              py::gil_scoped_release release;
              p.plan->run(x.data(), N, y.mutable_data());
            }
            return y;
          },
          py::arg("x"))
      .def(
          "profile",
          [](PyPlan& p, farray x, int reps) {
            require(x.ndim() >= 1, "x: expected a batch");
            const int64_t N = x.shape(0);
            require(N == 0 || x.size() / N == p.in_n,
                    "x: expected " + std::to_string(p.in_n) + " values per image");
            require(reps >= 1, "reps: must be >= 1");
            farray y = new_array({N, p.out_n});
            std::vector<double> t;
            {
              py::gil_scoped_release release;
              t = p.plan->profile(x.data(), N, y.mutable_data(), reps);
            }
            py::list rows;
            for (size_t i = 0; i < t.size(); ++i)
              rows.append(py::make_tuple(p.plan->op_name(i), t[i] / reps));
            return rows;
          },
          py::arg("x"), py::arg("reps") = 10,
          "[(op name, seconds per run)] on the calling thread alone")
      .def(
          "set_small_batch_mode",
          [](PyPlan& p, int mode) { p.plan->set_small_batch_mode(mode); }, py::arg("mode"),
          "-1: measure and choose; 0: one thread; 1: all threads on every op")
      .def_property_readonly("flops_per_image", [](const PyPlan& p) { return p.plan->flops_per_image(); })
      .def_property_readonly("op_count", [](const PyPlan& p) { return p.plan->op_count(); });

  py::class_<PyTrainPlan>(m, "TrainPlan")
      .def(py::init([](std::vector<int64_t> sizes, py::array grads) {
             auto p = std::make_unique<PyTrainPlan>();
             require(sizes.size() >= 2, "sizes: need the input and the logits");
             require(grads.writeable(), "grads: must be writeable");
             p->grads = const_cast<float*>(p->live(grads, grads.size(), "grads"));
             p->n_grads = grads.size();
             p->in_n = sizes.front();
             p->classes = sizes.back();
             p->plan = std::make_unique<cnnx::TrainPlan>(std::move(sizes), p->grads, p->n_grads);
             return p;
           }),
           py::arg("sizes"), py::arg("grads"))
      .def(
          "add_conv",
          [](PyTrainPlan& p, int in, int out, I15 g, py::array w, std::optional<py::array> b,
             bool relu, std::optional<py::array> dw, std::optional<py::array> db) {
            const cnnx::Conv2dShape s = conv_shape(g);
            p.plan->add_conv(in, out, s, p.live(w, s.weight_size(), "kernel"),
                             b ? p.live(*b, s.C_out, "bias") : nullptr, relu,
                             p.slot(dw, s.weight_size(), "dw"), p.slot(db, s.C_out, "db"));
          },
          py::arg("src"), py::arg("dst"), py::arg("geometry"), py::arg("kernel"), py::arg("bias"),
          py::arg("relu"), py::arg("dw"), py::arg("db"))
      .def(
          "add_dense",
          [](PyTrainPlan& p, int in, int out, int64_t in_f, int64_t out_f, py::array w,
             std::optional<py::array> b, bool relu, std::optional<py::array> dw,
             std::optional<py::array> db) {
            require(in_f >= 1 && out_f >= 1, "dense: sizes must be >= 1");
            p.plan->add_dense(in, out, in_f, out_f, p.live(w, in_f * out_f, "kernel"),
                              b ? p.live(*b, out_f, "bias") : nullptr, relu,
                              p.slot(dw, in_f * out_f, "dw"), p.slot(db, out_f, "db"));
          },
          py::arg("src"), py::arg("dst"), py::arg("in_features"), py::arg("out_features"),
          py::arg("kernel"), py::arg("bias"), py::arg("relu"), py::arg("dw"), py::arg("db"))
      .def(
          "add_pool",
          [](PyTrainPlan& p, int in, int out, int kind, I3 hwc, I8 g, bool count_include_pad,
             int64_t oh, int64_t ow) {
            p.plan->add_pool(in, out, pool_kind(kind), cnnx::PoolShape{1, hwc[0], hwc[1], hwc[2]},
                             pool_params(g), count_include_pad, oh, ow);
          },
          py::arg("src"), py::arg("dst"), py::arg("kind"), py::arg("hwc"), py::arg("geometry"),
          py::arg("count_include_pad"), py::arg("out_h"), py::arg("out_w"))
      .def(
          "add_activation",
          [](PyTrainPlan& p, int in, int out, int act, float alpha, int64_t k) {
            p.plan->add_activation(in, out, act_of(act), alpha, k);
          },
          py::arg("src"), py::arg("dst"), py::arg("act"), py::arg("alpha"), py::arg("k"))
      .def(
          "add_add",
          [](PyTrainPlan& p, int a, int b, int out, int act) {
            p.plan->add_add(a, b, out, act_of(act));
          },
          py::arg("a"), py::arg("b"), py::arg("dst"), py::arg("act"))
      .def(
          "add_batch_norm",
          [](PyTrainPlan& p, int in, int out, int64_t c, std::optional<py::array> gamma,
             std::optional<py::array> beta, py::array running_mean, py::array running_var,
             float momentum, float eps, std::optional<py::array> dgamma,
             std::optional<py::array> dbeta) {
            require(c >= 1, "channels: must be >= 1");
            require(running_mean.writeable() && running_var.writeable(),
                    "running statistics: must be writeable");
            float* rm = const_cast<float*>(p.live(running_mean, c, "moving_mean"));
            float* rv = const_cast<float*>(p.live(running_var, c, "moving_var"));
            p.plan->add_batch_norm(in, out, c, gamma ? p.live(*gamma, c, "gamma") : nullptr,
                                   beta ? p.live(*beta, c, "beta") : nullptr, rm, rv, momentum,
                                   eps, p.slot(dgamma, c, "dgamma"), p.slot(dbeta, c, "dbeta"));
          },
          py::arg("src"), py::arg("dst"), py::arg("channels"), py::arg("gamma"), py::arg("beta"),
          py::arg("running_mean"), py::arg("running_var"), py::arg("momentum"), py::arg("eps"),
          py::arg("dgamma"), py::arg("dbeta"))
      .def(
          "step",
          [](PyTrainPlan& p, farray x, py::array_t<int64_t, py::array::c_style> labels) {
            require(x.ndim() >= 1 && x.shape(0) >= 1, "x: expected a non-empty batch");
            const int64_t N = x.shape(0);
            require(x.size() / N == p.in_n,
                    "x: expected " + std::to_string(p.in_n) + " values per image");
            require(labels.ndim() == 1 && labels.shape(0) == N,
                    "labels: expected " + std::to_string(N) + " integer labels");
            farray logits = new_array({N, p.classes});
            double loss;
            {
              py::gil_scoped_release release;
              loss = p.plan->step(x.data(), labels.data(), N, logits.mutable_data());
            }
            return py::make_tuple(loss, logits);
          },
          py::arg("x"), py::arg("labels"),
          "forward, softmax cross-entropy and backward; returns (mean loss, logits)")
      .def_property_readonly("flops_per_image",
                             [](const PyTrainPlan& p) { return p.plan->flops_per_image(); });
}

}  // namespace cnnx_py
