// matmul: the core SGEMM for 2-D float32 arrays.
#include <pybind11/stl.h>

#include "bindings.h"
#include "cnnx/gemm.h"
#include "gemm/ukernel.h"

namespace cnnx_py {

void bind_gemm(py::module_& m) {
  m.def(
      "sgemm",
      [](farray a, farray b, bool trans_a, bool trans_b, float alpha) {
        require_ndim(a, 2, "a");
        require_ndim(b, 2, "b");
        const int64_t M = trans_a ? a.shape(1) : a.shape(0);
        const int64_t K = trans_a ? a.shape(0) : a.shape(1);
        const int64_t Kb = trans_b ? b.shape(1) : b.shape(0);
        const int64_t N = trans_b ? b.shape(0) : b.shape(1);
        require(K == Kb, "b: inner dimensions do not match (" + std::to_string(K) + " vs " +
                             std::to_string(Kb) + ")");
        farray c = new_array({M, N});
        const float* pa = a.data();
        const float* pb = b.data();
        float* pc = c.mutable_data();
        const int64_t lda = a.shape(1), ldb = b.shape(1);
        {
          py::gil_scoped_release nogil;
          cnnx::sgemm(trans_a ? cnnx::Trans::T : cnnx::Trans::N,
                      trans_b ? cnnx::Trans::T : cnnx::Trans::N, M, N, K, alpha, pa, lda, pb, ldb,
                      0.0f, pc, N);
        }
        return c;
      },
      py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
      py::arg("alpha") = 1.0f);
  m.def(
      "_set_gemm_variant",
      [](const std::string& name) {
        if (!cnnx::set_gemm_variant(name.c_str()))
          throw py::value_error("name: no GEMM micro-kernel '" + name + "' runs on this CPU");
      },
      py::arg("name"), "Benchmarks/tests only: force a micro-kernel by name ('' = default).");
  m.def("_gemm_variants", [] {
    std::vector<std::string> out{cnnx::kGemmGeneric.name};
    for (int i = 0; i < cnnx::kGemmAvx2VariantCount; ++i)
      out.push_back(cnnx::kGemmAvx2Variants[i].name);
    for (int i = 0; i < cnnx::kGemmAvx512VariantCount; ++i)
      out.push_back(cnnx::kGemmAvx512Variants[i].name);
    return out;
  });
}

}  // namespace cnnx_py
