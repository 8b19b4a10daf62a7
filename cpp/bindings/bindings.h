// Shared helpers for the pybind11 module. Bindings are thin: convert,
// check what the kernel relies on, release the GIL, call one kernel.
// Friendly argument checking happens first in python/cnnx; the checks here
// are the last line of defence so that no call can crash the interpreter.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

namespace py = pybind11;

namespace cnnx_py {

// float32, C-contiguous; a copy only when the input is not already that.
using farray = py::array_t<float, py::array::c_style | py::array::forcecast>;

inline void require(bool ok, const std::string& msg) {
  if (!ok) throw py::value_error(msg);
}

inline void require_ndim(const farray& a, int ndim, const char* name) {
  require(a.ndim() == ndim, std::string(name) + ": expected a " + std::to_string(ndim) +
                                "-D array, got " + std::to_string(a.ndim()) + "-D");
}

inline farray new_array(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return farray(s);
}

// float32 by value (a dtype object from pickle or another module is a
// different object with the same meaning, so compare types, not identity).
inline bool is_f32(const py::array& a) { return py::isinstance<py::array_t<float>>(a); }

// The array a kernel writes its result into: `out` when the caller gives one
// (float32, C-contiguous, writeable, exactly the result's size: e.g. a slot
// of a model's flat gradient buffer, so no copy follows), else a new array.
inline py::array out_array(const py::object& out, const std::vector<int64_t>& shape,
                           const char* name) {
  if (out.is_none()) return new_array(shape);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  require(py::isinstance<py::array>(out), std::string(name) + ": expected a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(out);
  require(is_f32(a), std::string(name) + ": expected dtype float32");
  require((a.flags() & py::array::c_style) != 0, std::string(name) + ": must be C-contiguous");
  require(a.writeable(), std::string(name) + ": must be writeable");
  require(a.size() == n, std::string(name) + ": expected " + std::to_string(n) + " elements, got " +
                             std::to_string(a.size()));
  return a;
}

// One registration function per concern, each in its own file.
void bind_system(py::module_& m);
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_ops(py::module_& m);
void bind_plan(py::module_& m);
void bind_merge(py::module_& m);
void bind_layout(py::module_& m);
void bind_act_norm(py::module_& m);  // issue 19: activations and normalisations
void bind_int8(py::module_& m);
void bind_optim_step(py::module_& m);
void bind_augment(py::module_& m);

}  // namespace cnnx_py
