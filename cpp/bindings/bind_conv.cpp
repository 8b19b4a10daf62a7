#include "bindings.h"

namespace cnnx_py {

void bind_conv(py::module_& m) {}

}  // namespace cnnx_py
