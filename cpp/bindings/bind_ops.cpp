#include "bindings.h"

namespace cnnx_py {

void bind_ops(py::module_& m) {}

}  // namespace cnnx_py
