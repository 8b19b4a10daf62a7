// ISA dispatch and thread budget.
#include "bindings.h"
#include "cnnx/cpu.h"
#include "cnnx/gemm.h"
#include "cnnx/threading.h"

namespace cnnx {
double measure_fma_peak_gflops(int threads, int64_t iters);
}

namespace cnnx_py {

void bind_system(py::module_& m) {
  m.def("detected_isa", [] { return std::string(cnnx::isa_name(cnnx::detected_isa())); });
  m.def("active_isa", [] { return std::string(cnnx::isa_name(cnnx::active_isa())); });
  m.def(
      "set_active_isa",
      [](const std::string& name) {
        cnnx::Isa isa;
        if (!cnnx::parse_isa(name.c_str(), &isa))
          throw py::value_error("isa: expected 'generic', 'avx2' or 'avx512', got '" + name + "'");
        return std::string(cnnx::isa_name(cnnx::set_active_isa(isa)));
      },
      py::arg("isa"));
  m.def("get_num_threads", &cnnx::get_num_threads);
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1)
          throw py::value_error("n: expected a thread count >= 1, got " + std::to_string(n));
        cnnx::set_num_threads(n);
      },
      py::arg("n"));
  m.def("have_openmp", &cnnx::have_openmp);
  m.def(
      "measure_fma_peak",
      [](int threads, int64_t iters) {
        if (threads < 1) throw py::value_error("threads: expected >= 1");
        py::gil_scoped_release nogil;
        return cnnx::measure_fma_peak_gflops(threads, iters);
      },
      py::arg("threads") = 1, py::arg("iters") = 20000000);
  m.def("gemm_kernel", [] {
    auto k = cnnx::gemm_kernel_info();
    py::dict d;
    d["name"] = k.name;
    d["mr"] = k.mr;
    d["nr"] = k.nr;
    d["mc"] = k.mc;
    d["kc"] = k.kc;
    d["nc"] = k.nc;
    return d;
  });
}

}  // namespace cnnx_py
