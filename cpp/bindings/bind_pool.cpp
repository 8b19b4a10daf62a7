#include "bindings.h"

namespace cnnx_py {

void bind_pool(py::module_& m) {}

}  // namespace cnnx_py
