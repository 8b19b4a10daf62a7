#include "bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "cnnx C++ core: GEMM, convolution, pooling, dense and friends";
  cnnx_py::bind_system(m);
  cnnx_py::bind_gemm(m);
  cnnx_py::bind_conv(m);
  cnnx_py::bind_pool(m);
  cnnx_py::bind_ops(m);
  cnnx_py::bind_int8(m);  // before bind_plan: plans take its enums as defaults
  cnnx_py::bind_plan(m);
  cnnx_py::bind_merge(m);
  cnnx_py::bind_optim_step(m);
  cnnx_py::bind_augment(m);
  cnnx_py::bind_layout(m);
  cnnx_py::bind_act_norm(m);
}
