// cnnx._core.optimizer_step (cnnx/optim_step.h): the fused optimiser step
// cnnx.optim's optimisers make once per training step, its argument pack
// OptimStepArgs and the enums OptimRule / ClipMode.
#include <string>

#include "bindings.h"
#include "cnnx/optim_step.h"

namespace cnnx_py {
namespace {

// A float32 C-contiguous array of n values, never a copy (the optimiser
// updates the caller's buffers in place); None gives null.
float* buffer(const py::object& h, int64_t n, const char* name, bool writeable) {
  if (h.is_none()) return nullptr;
  require(py::isinstance<py::array>(h), std::string(name) + ": expected a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(h);
  require(is_f32(a), std::string(name) + ": expected dtype float32");
  require((a.flags() & py::array::c_style) != 0, std::string(name) + ": must be C-contiguous");
  require(!writeable || a.writeable(), std::string(name) + ": must be writeable");
  require(a.size() == n, std::string(name) + ": expected " + std::to_string(n) + " elements, got " +
                             std::to_string(a.size()));
  return static_cast<float*>(const_cast<void*>(a.data()));
}

using SegArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

SegArray segments_of(const py::object& segments) {
  SegArray s = SegArray::ensure(segments);
  require(s && (s.size() == 0 || (s.ndim() == 2 && s.shape(1) == 2)),
          "segments: expected an (n, 2) array of [begin, end) ranges");
  return s;
}

}  // namespace

void bind_optim_step(py::module_& m) {
  py::enum_<cnnx::OptimRule>(m, "OptimRule", "update rules of optimizer_step")
      .value("sgd", cnnx::OptimRule::sgd)
      .value("adam", cnnx::OptimRule::adam)
      .value("rmsprop", cnnx::OptimRule::rmsprop)
      .value("adagrad", cnnx::OptimRule::adagrad);
  py::enum_<cnnx::ClipMode>(m, "ClipMode", "gradient clipping of optimizer_step")
      .value("none", cnnx::ClipMode::none)
      .value("per_segment_norm", cnnx::ClipMode::per_segment_norm)
      .value("global_norm", cnnx::ClipMode::global_norm)
      .value("value", cnnx::ClipMode::value);

  using A = cnnx::OptimStepArgs;
  py::class_<A>(m, "OptimStepArgs", "hyper-parameters of one optimizer_step (cnnx/optim_step.h)")
      .def(py::init<>())
      .def_readwrite("rule", &A::rule)
      .def_readwrite("lr", &A::lr)
      .def_readwrite("weight_decay", &A::weight_decay)
      .def_readwrite("momentum", &A::momentum)
      .def_readwrite("nesterov", &A::nesterov)
      .def_readwrite("decoupled", &A::decoupled)
      .def_readwrite("beta1", &A::beta1)
      .def_readwrite("beta2", &A::beta2)
      .def_readwrite("eps", &A::eps)
      .def_readwrite("alpha", &A::alpha)
      .def_readwrite("centered", &A::centered)
      .def_readwrite("lr_decay", &A::lr_decay)
      .def_readwrite("step", &A::step)
      .def_readwrite("clip", &A::clip)
      .def_readwrite("clip_value", &A::clip_value)
      .def_readwrite("ema", &A::ema)
      .def_readwrite("ema_momentum", &A::ema_momentum)
      .def_readwrite("ema_overwrite", &A::ema_overwrite);

  m.def(
      "optimizer_step",
      [](const A& args, py::object param, py::object grad, py::object s0, py::object s1,
         py::object s2, py::object ema, py::object segments) {
        require(py::isinstance<py::array>(param), "param: expected a NumPy array");
        const int64_t n = py::reinterpret_borrow<py::array>(param).size();
        float* p = buffer(param, n, "param", true);
        const float* g = buffer(grad, n, "grad", false);
        require(g != nullptr, "grad: expected a NumPy array");
        float* b0 = buffer(s0, n, "s0", true);
        float* b1 = buffer(s1, n, "s1", true);
        float* b2 = buffer(s2, n, "s2", true);
        float* e = buffer(ema, n, "ema", true);
        int64_t whole[2] = {0, n};  // no segments given: the whole buffer
        SegArray seg;
        const int64_t* ps = whole;
        int64_t ns = 1;
        if (!segments.is_none()) {
          seg = segments_of(segments);
          ns = seg.size() / 2;
          ps = seg.data();
        }
        py::gil_scoped_release nogil;
        try {
          cnnx::optimizer_step(args, p, g, b0, b1, b2, e, n, ps, ns);
        } catch (const std::invalid_argument& err) {
          py::gil_scoped_acquire gil;
          throw py::value_error(err.what());
        }
      },
      py::arg("args"), py::arg("param"), py::arg("grad"), py::arg("s0") = py::none(),
      py::arg("s1") = py::none(), py::arg("s2") = py::none(), py::arg("ema") = py::none(),
      py::arg("segments") = py::none(),
      "one fused optimiser step in place over the [begin, end) segments of the flat buffers");

  m.def(
      "segment_norms",
      [](py::object grad, py::object segments) {
        require(py::isinstance<py::array>(grad), "grad: expected a NumPy array");
        const int64_t n = py::reinterpret_borrow<py::array>(grad).size();
        const float* g = buffer(grad, n, "grad", false);
        SegArray seg = segments_of(segments);
        const int64_t ns = seg.size() / 2;
        for (int64_t s = 0; s < ns; ++s)
          require(seg.data()[2 * s] >= 0 && seg.data()[2 * s] <= seg.data()[2 * s + 1] &&
                      seg.data()[2 * s + 1] <= n,
                  "segments: ranges must lie inside grad");
        py::array_t<double> out(ns);
        double* po = out.mutable_data();
        const int64_t* ps = seg.data();
        {
          py::gil_scoped_release nogil;
          cnnx::segment_norms(g, ps, ns, po);
        }
        return out;
      },
      py::arg("grad"), py::arg("segments"), "the L2 norm of grad over each [begin, end) segment");
}

}  // namespace cnnx_py
