// Merge kernels for the layer-by-layer path (cnnx/eltwise.h): the Add,
// Subtract, Multiply, Average and Concatenate layers.
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings.h"
#include "cnnx/eltwise.h"
#include "cnnx/op_spec.h"

namespace cnnx_py {
namespace {

std::vector<farray> same_shape(const std::vector<py::object>& xs, const char* name) {
  require(xs.size() >= 1, std::string(name) + ": expected at least one array");
  std::vector<farray> a;
  for (const auto& x : xs) a.push_back(farray::ensure(x));
  for (const auto& v : a) {
    require(static_cast<bool>(v), std::string(name) + ": expected float arrays");
    require(v.ndim() == a[0].ndim(), std::string(name) + ": inputs differ in rank");
    for (int d = 0; d < v.ndim(); ++d)
      require(v.shape(d) == a[0].shape(d), std::string(name) + ": inputs differ in shape");
  }
  return a;
}

std::vector<int64_t> shape_of(const farray& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

}  // namespace

void bind_merge(py::module_& m) {
  m.def(
      "eltwise",
      [](cnnx::EltwiseKind kind, std::vector<py::object> xs) {
        std::vector<farray> a = same_shape(xs, "inputs");
        require(a.size() >= 2, "inputs: expected at least two arrays");
        require(kind != cnnx::EltwiseKind::sub || a.size() == 2, "inputs: sub takes two arrays");
        farray y = new_array(shape_of(a[0]));
        std::vector<const float*> p(a.size());
        for (size_t i = 0; i < a.size(); ++i) p[i] = a[i].data();
        float* yp = y.mutable_data();
        const int64_t n = y.size();
        {
          py::gil_scoped_release release;
          cnnx::eltwise_forward(kind, p.data(), static_cast<int>(p.size()), yp, n);
        }
        return y;
      },
      py::arg("kind"), py::arg("inputs"), "x[0] op x[1] op ... (same shapes)");
  m.def(
      "eltwise_backward",
      [](cnnx::EltwiseKind kind, std::vector<py::object> xs, farray dy) {
        std::vector<farray> a = same_shape(xs, "inputs");
        require(dy.size() == a[0].size(), "dy: expected the inputs' shape");
        std::vector<const float*> p(a.size());
        std::vector<float*> d(a.size());
        std::vector<farray> out;
        for (size_t i = 0; i < a.size(); ++i) {
          p[i] = a[i].data();
          out.push_back(new_array(shape_of(a[i])));
          d[i] = out.back().mutable_data();
        }
        std::vector<char> acc(a.size(), 0);
        {
          py::gil_scoped_release release;
          cnnx::eltwise_backward(kind, p.data(), static_cast<int>(p.size()), dy.data(), d.data(),
                                 reinterpret_cast<const bool*>(acc.data()), dy.size());
        }
        py::list r;
        for (auto& o : out) r.append(o);
        return r;
      },
      py::arg("kind"), py::arg("inputs"), py::arg("dy"), "[dL/dx_i]");
  m.def(
      "concat",
      [](std::vector<py::object> xs, int axis) {
        require(!xs.empty(), "inputs: expected at least one array");
        std::vector<farray> a;
        for (const auto& x : xs) a.push_back(farray::ensure(x));
        const int nd = a[0].ndim();
        require(axis >= 0 && axis < nd, "axis: out of range");
        std::vector<int64_t> shape = shape_of(a[0]);
        int64_t outer = 1;
        for (int d = 0; d < axis; ++d) outer *= shape[d];
        std::vector<int64_t> inner;
        shape[axis] = 0;
        for (const auto& v : a) {
          require(v.ndim() == nd, "inputs: differ in rank");
          int64_t in = 1;
          for (int d = 0; d < nd; ++d) {
            if (d != axis) require(v.shape(d) == a[0].shape(d), "inputs: differ outside the axis");
            if (d >= axis) in *= v.shape(d);
          }
          inner.push_back(in);
          shape[axis] += v.shape(axis);
        }
        farray y = new_array(shape);
        std::vector<const float*> p(a.size());
        for (size_t i = 0; i < a.size(); ++i) p[i] = a[i].data();
        float* yp = y.mutable_data();
        {
          py::gil_scoped_release release;
          if (outer > 0)
            cnnx::concat_forward(p.data(), static_cast<int>(p.size()), inner.data(), outer, yp);
        }
        return y;
      },
      py::arg("inputs"), py::arg("axis"), "concatenation along axis");
  m.def(
      "concat_backward",
      [](farray dy, std::vector<int64_t> sizes, int axis) {
        const int nd = dy.ndim();
        require(axis >= 0 && axis < nd, "axis: out of range");
        std::vector<int64_t> shape = shape_of(dy);
        int64_t total = 0;
        for (int64_t s : sizes) {
          require(s >= 1, "sizes: must be >= 1");
          total += s;
        }
        require(total == shape[axis], "sizes: must add up to dy's size along axis");
        int64_t outer = 1, rest = 1;
        for (int d = 0; d < axis; ++d) outer *= shape[d];
        for (int d = axis + 1; d < nd; ++d) rest *= shape[d];
        std::vector<int64_t> inner;
        std::vector<farray> out;
        std::vector<float*> d;
        for (int64_t s : sizes) {
          inner.push_back(s * rest);
          std::vector<int64_t> sh = shape;
          sh[axis] = s;
          out.push_back(new_array(sh));
          d.push_back(out.back().mutable_data());
        }
        std::vector<char> acc(sizes.size(), 0);
        {
          py::gil_scoped_release release;
          if (outer > 0)
            cnnx::concat_backward(dy.data(), static_cast<int>(sizes.size()), inner.data(), outer,
                                  d.data(), reinterpret_cast<const bool*>(acc.data()));
        }
        py::list r;
        for (auto& o : out) r.append(o);
        return r;
      },
      py::arg("dy"), py::arg("sizes"), py::arg("axis"), "the split of a concatenation's gradient");
}

}  // namespace cnnx_py
