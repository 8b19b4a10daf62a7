// The activations and normalisations of issue 19: the extra elementwise
// activations (cnnx._core.Pointwise), log-softmax, PReLU, local response,
// group and layer normalisation, forward and backward. Friendly validation
// happens in python/cnnx/functional; the checks here keep every call in bounds.
#include <pybind11/stl.h>

#include <optional>

#include "bindings.h"
#include "cnnx/activation.h"
#include "cnnx/norm.h"

namespace cnnx_py {

namespace {

farray like(const farray& a) {
  std::vector<py::ssize_t> s(a.shape(), a.shape() + a.ndim());
  return farray(s);
}

void require_same_shape(const farray& a, const farray& b, const char* name) {
  bool ok = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; ok && i < a.ndim(); ++i) ok = a.shape(i) == b.shape(i);
  require(ok, std::string(name) + ": shape does not match");
}

int64_t last_axis(const farray& x) {
  require(x.ndim() >= 1, "x: expected at least a 1-D array");
  return x.shape(x.ndim() - 1);
}

const float* opt_vec(const std::optional<farray>& a, int64_t C, const char* name) {
  if (!a) return nullptr;
  require(a->ndim() == 1 && a->shape(0) == C,
          std::string(name) + ": expected shape (" + std::to_string(C) + ",)");
  return a->data();
}

void split_axis(const farray& x, int axis, int64_t* outer, int64_t* K, int64_t* inner) {
  require(axis >= 0 && axis < x.ndim(), "axis: out of range");
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; ++i) *outer *= x.shape(i);
  *K = x.shape(axis);
  for (int i = axis + 1; i < x.ndim(); ++i) *inner *= x.shape(i);
}

// Examples (the first axis) and values per example.
void examples(const farray& x, int64_t* n, int64_t* count) {
  require(x.ndim() >= 2, "x: expected a batch (m, ..., n_C)");
  *n = x.shape(0);
  *count = *n ? x.size() / *n : 0;
}

}  // namespace

void bind_act_norm(py::module_& m) {
  py::enum_<cnnx::Pointwise>(m, "Pointwise", "elementwise activations (cnnx/activation.h)")
      .value("elu", cnnx::Pointwise::elu)
      .value("selu", cnnx::Pointwise::selu)
      .value("gelu", cnnx::Pointwise::gelu)
      .value("gelu_tanh", cnnx::Pointwise::gelu_tanh)
      .value("silu", cnnx::Pointwise::silu)
      .value("hardswish", cnnx::Pointwise::hardswish)
      .value("hardsigmoid", cnnx::Pointwise::hardsigmoid)
      .value("clip", cnnx::Pointwise::clip)
      .value("softplus", cnnx::Pointwise::softplus)
      .value("softsign", cnnx::Pointwise::softsign);

  // `out`: an optional float32 C-contiguous array of x's size to write into
  // (it may be x itself: the functions work in place).
  m.def(
      "pointwise",
      [](farray x, cnnx::Pointwise f, float a, float b, py::object out) {
        std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim());
        py::array y = out_array(out, shape, "out");
        const float* px = x.data();
        float* py_ = static_cast<float*>(y.mutable_data());
        const int64_t n = x.size();
        {
          py::gil_scoped_release nogil;
          cnnx::pointwise_forward(f, px, py_, n, a, b);
        }
        return y;
      },
      py::arg("x"), py::arg("f"), py::arg("a") = 0.0f, py::arg("b") = 0.0f,
      py::arg("out") = py::none());
  m.def(
      "pointwise_backward",
      [](farray dy, farray x, cnnx::Pointwise f, float a, float b, py::object out) {
        require_same_shape(dy, x, "dy");
        std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim());
        py::array dx = out_array(out, shape, "out");
        const float *pdy = dy.data(), *px = x.data();
        float* pdx = static_cast<float*>(dx.mutable_data());
        const int64_t n = x.size();
        {
          py::gil_scoped_release nogil;
          cnnx::pointwise_backward(f, pdy, px, pdx, n, a, b);
        }
        return dx;
      },
      py::arg("dy"), py::arg("x"), py::arg("f"), py::arg("a") = 0.0f, py::arg("b") = 0.0f,
      py::arg("out") = py::none());

  m.def(
      "log_softmax",
      [](farray x, int axis) {
        int64_t o, k, in;
        split_axis(x, axis, &o, &k, &in);
        farray y = like(x);
        const float* px = x.data();
        float* py_ = y.mutable_data();
        py::gil_scoped_release nogil;
        cnnx::log_softmax_forward(px, py_, o, k, in);
        return y;
      },
      py::arg("x"), py::arg("axis"));
  m.def(
      "log_softmax_backward",
      [](farray dy, farray y, int axis) {
        require_same_shape(dy, y, "dy");
        int64_t o, k, in;
        split_axis(y, axis, &o, &k, &in);
        farray dx = like(y);
        const float *pdy = dy.data(), *py_ = y.data();
        float* pdx = dx.mutable_data();
        py::gil_scoped_release nogil;
        cnnx::log_softmax_backward(pdy, py_, pdx, o, k, in);
        return dx;
      },
      py::arg("dy"), py::arg("y"), py::arg("axis"));

  m.def(
      "prelu",
      [](farray x, farray slope) {
        const int64_t P = slope.size();
        require(P >= 1 && x.size() % P == 0, "slope: its size must divide x's");
        farray y = like(x);
        const float *px = x.data(), *ps = slope.data();
        float* py_ = y.mutable_data();
        const int64_t rows = x.size() / P;
        py::gil_scoped_release nogil;
        cnnx::prelu_forward(px, ps, py_, rows, P);
        return y;
      },
      py::arg("x"), py::arg("slope"));
  m.def(
      "prelu_backward",
      [](farray dy, farray x, farray slope, bool need_dx, bool need_dslope) {
        require_same_shape(dy, x, "dy");
        const int64_t P = slope.size();
        require(P >= 1 && x.size() % P == 0, "slope: its size must divide x's");
        py::object dx = py::none(), ds = py::none();
        float *pdx = nullptr, *pds = nullptr;
        if (need_dx) {
          farray a = like(x);
          pdx = a.mutable_data();
          dx = a;
        }
        if (need_dslope) {
          farray a = like(slope);
          pds = a.mutable_data();
          ds = a;
        }
        const float *pdy = dy.data(), *px = x.data(), *ps = slope.data();
        const int64_t rows = x.size() / P;
        {
          py::gil_scoped_release nogil;
          cnnx::prelu_backward(pdy, px, ps, pdx, pds, rows, P);
        }
        return py::make_tuple(dx, ds);
      },
      py::arg("dy"), py::arg("x"), py::arg("slope"), py::arg("need_dx") = true,
      py::arg("need_dslope") = true);

  m.def(
      "lrn",
      [](farray x, int64_t size, float alpha, float beta, float bias) {
        const int64_t C = last_axis(x);
        require(C >= 1, "x: expected at least one channel");
        farray y = like(x);
        const float* px = x.data();
        float* py_ = y.mutable_data();
        const int64_t rows = x.size() / C;
        py::gil_scoped_release nogil;
        cnnx::lrn_forward(px, py_, rows, C, size, alpha, beta, bias);
        return y;
      },
      py::arg("x"), py::arg("size"), py::arg("alpha"), py::arg("beta"), py::arg("bias"));
  m.def(
      "lrn_backward",
      [](farray dy, farray x, int64_t size, float alpha, float beta, float bias) {
        require_same_shape(dy, x, "dy");
        const int64_t C = last_axis(x);
        require(C >= 1, "x: expected at least one channel");
        farray dx = like(x);
        const float *pdy = dy.data(), *px = x.data();
        float* pdx = dx.mutable_data();
        const int64_t rows = x.size() / C;
        py::gil_scoped_release nogil;
        cnnx::lrn_backward(pdy, px, pdx, rows, C, size, alpha, beta, bias);
        return dx;
      },
      py::arg("dy"), py::arg("x"), py::arg("size"), py::arg("alpha"), py::arg("beta"),
      py::arg("bias"));

  m.def(
      "group_norm",
      [](farray x, std::optional<farray> gamma, std::optional<farray> beta, int64_t groups,
         float eps) {
        int64_t n, count;
        examples(x, &n, &count);
        const int64_t C = last_axis(x);
        require(C >= 1, "x: expected at least one channel");
        require(groups >= 1 && C % groups == 0, "groups: must divide the channels");
        const float* pg = opt_vec(gamma, C, "gamma");
        const float* pb = opt_vec(beta, C, "beta");
        farray y = like(x), mean = new_array({n, groups}), inv = new_array({n, groups});
        const float* px = x.data();
        float *py_ = y.mutable_data(), *pm = mean.mutable_data(), *pi = inv.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::group_norm_forward(px, pg, pb, py_, n, count, C, groups, eps, pm, pi);
        }
        return py::make_tuple(y, mean, inv);
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("groups"), py::arg("eps"));
  m.def(
      "group_norm_backward",
      [](farray dy, farray x, std::optional<farray> gamma, std::optional<farray> mean,
         std::optional<farray> inv_std, int64_t groups, float eps, bool need_dx) {
        require_same_shape(dy, x, "dy");
        int64_t n, count;
        examples(x, &n, &count);
        const int64_t C = last_axis(x);
        require(C >= 1 && groups >= 1, "x: expected at least one channel");
        const float* pg = opt_vec(gamma, C, "gamma");
        require(mean.has_value() == inv_std.has_value(), "mean: give mean and inv_std, or neither");
        const float *pm = nullptr, *pi = nullptr;
        if (mean) {
          require(mean->size() == n * groups && inv_std->size() == n * groups,
                  "mean: expected one value per example and group");
          pm = mean->data();
          pi = inv_std->data();
        }
        py::object dx = py::none();
        float* pdx = nullptr;
        if (need_dx) {
          farray a = like(x);
          pdx = a.mutable_data();
          dx = a;
        }
        farray dg = new_array({C}), db = new_array({C});
        const float *pdy = dy.data(), *px = x.data();
        float *pdg = dg.mutable_data(), *pdb = db.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::group_norm_backward(pdy, px, pg, pm, pi, pdx, pdg, pdb, n, count, C, groups, eps);
        }
        return py::make_tuple(dx, dg, db);
      },
      py::arg("dy"), py::arg("x"), py::arg("gamma"), py::arg("mean"), py::arg("inv_std"),
      py::arg("groups"), py::arg("eps"), py::arg("need_dx") = true);

  m.def(
      "layer_norm",
      [](farray x, std::optional<farray> gamma, std::optional<farray> beta, float eps) {
        const int64_t C = last_axis(x);
        require(C >= 1, "x: expected at least one value on the last axis");
        const int64_t rows = x.size() / C;
        const float* pg = opt_vec(gamma, C, "gamma");
        const float* pb = opt_vec(beta, C, "beta");
        farray y = like(x), mean = new_array({rows}), inv = new_array({rows});
        const float* px = x.data();
        float *py_ = y.mutable_data(), *pm = mean.mutable_data(), *pi = inv.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::layer_norm_forward(px, pg, pb, py_, rows, C, eps, pm, pi);
        }
        return py::make_tuple(y, mean, inv);
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("eps"));
  m.def(
      "layer_norm_backward",
      [](farray dy, farray x, std::optional<farray> gamma, std::optional<farray> mean,
         std::optional<farray> inv_std, float eps, bool need_dx) {
        require_same_shape(dy, x, "dy");
        const int64_t C = last_axis(x);
        require(C >= 1, "x: expected at least one value on the last axis");
        const int64_t rows = x.size() / C;
        const float* pg = opt_vec(gamma, C, "gamma");
        require(mean.has_value() == inv_std.has_value(), "mean: give mean and inv_std, or neither");
        const float *pm = nullptr, *pi = nullptr;
        if (mean) {
          require(mean->size() == rows && inv_std->size() == rows,
                  "mean: expected one value per row");
          pm = mean->data();
          pi = inv_std->data();
        }
        py::object dx = py::none();
        float* pdx = nullptr;
        if (need_dx) {
          farray a = like(x);
          pdx = a.mutable_data();
          dx = a;
        }
        farray dg = new_array({C}), db = new_array({C});
        const float *pdy = dy.data(), *px = x.data();
        float *pdg = dg.mutable_data(), *pdb = db.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::layer_norm_backward(pdy, px, pg, pm, pi, pdx, pdg, pdb, rows, C, eps);
        }
        return py::make_tuple(dx, dg, db);
      },
      py::arg("dy"), py::arg("x"), py::arg("gamma"), py::arg("mean"), py::arg("inv_std"),
      py::arg("eps"), py::arg("need_dx") = true);
}

}  // namespace cnnx_py
