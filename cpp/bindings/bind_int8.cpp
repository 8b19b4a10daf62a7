// int8 kernels: weight packing, quantized GEMM / convolution with the
// requantising store, uint8 pooling and add, quantize / dequantize.
// Friendly checks happen in python/cnnx/functional/_int8.py; these are the
// last line of defence.
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "bindings.h"
#include "cnnx/cpu.h"
#include "cnnx/int8.h"
#include "int8/qgemm_ukernel.h"

namespace cnnx_py {
namespace {

using u8array = py::array_t<uint8_t, py::array::c_style>;
using s8array = py::array_t<int8_t, py::array::c_style>;
using I2 = std::array<int64_t, 2>;
using I4 = std::array<int64_t, 4>;

template <class T>
py::array_t<T> new_typed(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return py::array_t<T>(s);
}

// The output array for an int8 store kind.
py::array new_output(cnnx::QOutput out, const std::vector<int64_t>& shape) {
  switch (out) {
    case cnnx::QOutput::u8: return new_typed<uint8_t>(shape);
    case cnnx::QOutput::s32: return new_typed<int32_t>(shape);
    default: return new_typed<float>(shape);
  }
}

const float* bias_ptr(const std::optional<farray>& b, int64_t n) {
  if (!b) return nullptr;
  require(b->ndim() == 1 && b->shape(0) == n, "b: expected shape (" + std::to_string(n) + ",)");
  return b->data();
}

using s32array = py::array_t<int32_t, py::array::c_style>;

const int32_t* bias_acc_ptr(const std::optional<s32array>& b, int64_t n) {
  if (!b) return nullptr;
  require(b->ndim() == 1 && b->shape(0) == n, "b_acc: expected shape (" + std::to_string(n) + ",)");
  return b->data();
}

cnnx::QEpilogue epilogue(float x_scale, int32_t x_zp, const float* bias, cnnx::QActivation act,
                         cnnx::QOutput out, float y_scale, int32_t y_zp,
                         const int32_t* bias_acc = nullptr) {
  cnnx::QEpilogue ep;
  ep.x = {x_scale, x_zp};
  ep.bias = bias;
  ep.bias_acc = bias_acc;
  ep.act = act;
  ep.out = out;
  ep.y = {y_scale, y_zp};
  return ep;
}

cnnx::PoolShape pool_shape(const u8array& x) {
  require(x.ndim() == 4, "x: expected a 4-D (m, n_H, n_W, n_C) array");
  return cnnx::PoolShape{x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
}

cnnx::Pool2dParams pool_params(I2 k, I2 s, I4 pads) {
  return cnnx::Pool2dParams{k[0], k[1], s[0], s[1], pads[0], pads[1], pads[2], pads[3]};
}

}  // namespace

void bind_int8(py::module_& m) {
  py::enum_<cnnx::QActivation>(m, "QActivation")
      .value("none", cnnx::QActivation::none)
      .value("relu", cnnx::QActivation::relu)
      .value("relu6", cnnx::QActivation::relu6);
  py::enum_<cnnx::QOutput>(m, "QOutput")
      .value("f32", cnnx::QOutput::f32)
      .value("u8", cnnx::QOutput::u8)
      .value("s32", cnnx::QOutput::s32);

  py::class_<cnnx::QPackedWeights>(m, "QPackedWeights",
                                   "int8 weights packed for one micro-kernel (immutable)")
      .def_property_readonly(
          "kernel", [](const cnnx::QPackedWeights& w) { return std::string(w.kernel_name()); })
      .def_property_readonly("k", &cnnx::QPackedWeights::k)
      .def_property_readonly("n", &cnnx::QPackedWeights::n)
      .def_property_readonly("groups", &cnnx::QPackedWeights::groups)
      .def_property_readonly("depthwise", &cnnx::QPackedWeights::depthwise)
      .def_property_readonly("nbytes", &cnnx::QPackedWeights::packed_bytes)
      .def_property_readonly("scales",
                             [](const cnnx::QPackedWeights& w) {
                               auto a = new_typed<float>({w.n()});
                               std::copy(w.scales(), w.scales() + w.n(), a.mutable_data());
                               return a;
                             })
      .def_property_readonly("column_sums", [](const cnnx::QPackedWeights& w) {
        auto a = new_typed<int32_t>({w.n()});
        std::copy(w.column_sums(), w.column_sums() + w.n(), a.mutable_data());
        return a;
      });

  m.def(
      "qpack_gemm",
      [](s8array w, farray scales) {
        require(w.ndim() == 2, "w: expected a 2-D (K, N) int8 array");
        require(scales.ndim() == 1 && scales.shape(0) == w.shape(1),
                "w_scale: expected shape (" + std::to_string(w.shape(1)) + ",)");
        const int8_t* pw = w.data();
        const float* ps = scales.data();
        py::gil_scoped_release nogil;
        return cnnx::qgemm_pack_weights(w.shape(0), w.shape(1), pw, w.shape(1), ps);
      },
      py::arg("w"), py::arg("scales"));

  m.def(
      "qpack_conv2d",
      [](s8array w, farray scales, int64_t groups) {
        require(w.ndim() == 4, "w: expected a 4-D (f_h, f_w, n_C_prev/groups, n_C) int8 array");
        require(groups >= 1, "groups: expected an int >= 1");
        require(scales.ndim() == 1 && scales.shape(0) == w.shape(3),
                "w_scale: expected shape (" + std::to_string(w.shape(3)) + ",)");
        cnnx::Conv2dShape s;
        s.KH = w.shape(0);
        s.KW = w.shape(1);
        s.C_in = w.shape(2) * groups;
        s.C_out = w.shape(3);
        s.groups = groups;
        const int8_t* pw = w.data();
        const float* ps = scales.data();
        py::gil_scoped_release nogil;
        return cnnx::qconv2d_pack_weights(s, pw, ps);
      },
      py::arg("w"), py::arg("scales"), py::arg("groups") = 1);

  m.def(
      "qgemm",
      [](u8array a, const cnnx::QPackedWeights& b, float x_scale, int32_t x_zp,
         std::optional<farray> bias, cnnx::QActivation act, cnnx::QOutput out, float y_scale,
         int32_t y_zp, std::optional<s32array> bias_acc) {
        require(a.ndim() == 2, "a: expected a 2-D (M, K) uint8 array");
        require(!b.empty(), "b: empty packed weights");
        require(a.shape(1) == b.k(), "a: expected " + std::to_string(b.k()) +
                                         " columns to match the packed weights, got " +
                                         std::to_string(a.shape(1)));
        const int64_t M = a.shape(0), N = b.n();
        const cnnx::QEpilogue ep = epilogue(x_scale, x_zp, bias_ptr(bias, N), act, out, y_scale,
                                            y_zp, bias_acc_ptr(bias_acc, N));
        py::array c = new_output(out, {M, N});
        const uint8_t* pa = a.data();
        void* pc = c.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::qgemm(M, pa, a.shape(1), b, ep, pc, N);
        }
        return c;
      },
      py::arg("a"), py::arg("b"), py::arg("x_scale"), py::arg("x_zero_point"), py::arg("bias"),
      py::arg("activation"), py::arg("out"), py::arg("y_scale") = 1.0f, py::arg("y_zero_point") = 0,
      py::arg("bias_acc") = py::none());

  m.def(
      "qconv2d_forward",
      [](u8array x, const cnnx::QPackedWeights& w, I2 stride, I2 dilation, I4 pads, int64_t groups,
         float x_scale, int32_t x_zp, std::optional<farray> bias, cnnx::QActivation act,
         cnnx::QOutput out, float y_scale, int32_t y_zp, std::optional<s32array> bias_acc) {
        require(x.ndim() == 4, "x: expected a 4-D (m, n_H, n_W, n_C_prev) uint8 array");
        require(!w.empty(), "w: empty packed weights");
        cnnx::Conv2dShape s;
        s.N = x.shape(0);
        s.H = x.shape(1);
        s.W = x.shape(2);
        s.C_in = x.shape(3);
        const auto& P = w.impl();
        s.KH = P.KH;
        s.KW = P.KW;
        s.C_out = P.N;
        s.stride_h = stride[0];
        s.stride_w = stride[1];
        s.dilation_h = dilation[0];
        s.dilation_w = dilation[1];
        s.pad_top = pads[0];
        s.pad_bottom = pads[1];
        s.pad_left = pads[2];
        s.pad_right = pads[3];
        s.groups = groups;
        const char* msg = cnnx::conv2d_check(s);
        require(msg[0] == 0, msg);
        const cnnx::QEpilogue ep = epilogue(x_scale, x_zp, bias_ptr(bias, s.C_out), act, out,
                                            y_scale, y_zp, bias_acc_ptr(bias_acc, s.C_out));
        py::array y = new_output(out, {s.N, s.out_h(), s.out_w(), s.C_out});
        const uint8_t* px = x.data();
        void* py_ = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::qconv2d_forward(s, px, w, ep, py_);
        }
        return y;
      },
      py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("dilation"), py::arg("pads"),
      py::arg("groups"), py::arg("x_scale"), py::arg("x_zero_point"), py::arg("bias"),
      py::arg("activation"), py::arg("out"), py::arg("y_scale") = 1.0f, py::arg("y_zero_point") = 0,
      py::arg("bias_acc") = py::none());

  m.def(
      "qconv2d_algorithm",
      [](I4 x_shape, I4 w_shape, I2 stride, I2 dilation, I4 pads, int64_t groups) {
        cnnx::Conv2dShape s;
        s.N = x_shape[0];
        s.H = x_shape[1];
        s.W = x_shape[2];
        s.C_in = x_shape[3];
        s.KH = w_shape[0];
        s.KW = w_shape[1];
        s.C_out = w_shape[3];
        s.stride_h = stride[0];
        s.stride_w = stride[1];
        s.dilation_h = dilation[0];
        s.dilation_w = dilation[1];
        s.pad_top = pads[0];
        s.pad_bottom = pads[1];
        s.pad_left = pads[2];
        s.pad_right = pads[3];
        s.groups = groups;
        return std::string(cnnx::qconv2d_algorithm(s));
      },
      py::arg("x_shape"), py::arg("w_shape"), py::arg("stride"), py::arg("dilation"),
      py::arg("pads"), py::arg("groups"));

  m.def(
      "qmax_pool2d",
      [](u8array x, I2 kernel, I2 stride, I4 pads) {
        const cnnx::PoolShape s = pool_shape(x);
        const cnnx::Pool2dParams p = pool_params(kernel, stride, pads);
        int64_t oh, ow;
        cnnx::pool2d_check(s, p, &oh, &ow);
        auto y = new_typed<uint8_t>({s.n, oh, ow, s.c});
        const uint8_t* px = x.data();
        uint8_t* py_ = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::qmax_pool2d_forward(s, p, px, py_);
        }
        return y;
      },
      py::arg("x"), py::arg("pool_size"), py::arg("stride"), py::arg("pads"));

  m.def(
      "qavg_pool2d",
      [](u8array x, I2 kernel, I2 stride, I4 pads, bool count_include_pad, float x_scale,
         int32_t x_zp, float y_scale, int32_t y_zp) {
        const cnnx::PoolShape s = pool_shape(x);
        const cnnx::Pool2dParams p = pool_params(kernel, stride, pads);
        int64_t oh, ow;
        cnnx::pool2d_check(s, p, &oh, &ow);
        auto y = new_typed<uint8_t>({s.n, oh, ow, s.c});
        const uint8_t* px = x.data();
        uint8_t* py_ = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::qavg_pool2d_forward(s, p, count_include_pad, {x_scale, x_zp}, {y_scale, y_zp}, px,
                                    py_);
        }
        return y;
      },
      py::arg("x"), py::arg("pool_size"), py::arg("stride"), py::arg("pads"),
      py::arg("count_include_pad"), py::arg("x_scale"), py::arg("x_zero_point"), py::arg("y_scale"),
      py::arg("y_zero_point"));

  m.def(
      "qadd",
      [](u8array a, u8array b, float a_scale, int32_t a_zp, float b_scale, int32_t b_zp,
         float y_scale, int32_t y_zp, bool relu) {
        require(a.ndim() == b.ndim(), "b: expected the shape of a");
        std::vector<int64_t> shape;
        for (py::ssize_t i = 0; i < a.ndim(); ++i) {
          require(a.shape(i) == b.shape(i), "b: expected the shape of a");
          shape.push_back(a.shape(i));
        }
        auto y = new_typed<uint8_t>(shape);
        const uint8_t* pa = a.data();
        const uint8_t* pb = b.data();
        uint8_t* py_ = y.mutable_data();
        const int64_t n = a.size();
        {
          py::gil_scoped_release nogil;
          cnnx::qadd(n, pa, {a_scale, a_zp}, pb, {b_scale, b_zp}, {y_scale, y_zp},
                     relu ? cnnx::QActivation::relu : cnnx::QActivation::none, py_);
        }
        return y;
      },
      py::arg("a"), py::arg("b"), py::arg("a_scale"), py::arg("a_zero_point"), py::arg("b_scale"),
      py::arg("b_zero_point"), py::arg("y_scale"), py::arg("y_zero_point"),
      py::arg("relu") = false);

  m.def(
      "quantize",
      [](farray x, float scale, int32_t zp) {
        std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim());
        auto y = new_typed<uint8_t>(shape);
        const float* px = x.data();
        uint8_t* py_ = y.mutable_data();
        const int64_t n = x.size();
        {
          py::gil_scoped_release nogil;
          cnnx::quantize_u8(n, px, {scale, zp}, py_);
        }
        return y;
      },
      py::arg("x"), py::arg("scale"), py::arg("zero_point"));

  m.def(
      "dequantize",
      [](u8array q, float scale, int32_t zp) {
        std::vector<int64_t> shape(q.shape(), q.shape() + q.ndim());
        farray y = new_array(shape);
        const uint8_t* pq = q.data();
        float* py_ = y.mutable_data();
        const int64_t n = q.size();
        {
          py::gil_scoped_release nogil;
          cnnx::dequantize_u8(n, pq, {scale, zp}, py_);
        }
        return y;
      },
      py::arg("q"), py::arg("scale"), py::arg("zero_point"));

  m.def("qgemm_kernel", [] { return std::string(cnnx::qgemm_kernel_name()); });
  m.def(
      "_set_qgemm_kernel",
      [](const std::string& name) {
        if (!cnnx::set_qgemm_kernel(name.c_str()))
          throw py::value_error("name: no int8 micro-kernel '" + name + "' runs on this CPU");
      },
      py::arg("name"), "Benchmarks/tests only: force an int8 micro-kernel by name ('' = default).");
  m.def(
      "_qgemm_kernels",
      [] {
        std::vector<std::string> out;
        const cnnx::QGemmConfig* all[] = {&cnnx::kQGemmGeneric, &cnnx::kQGemmAvx2,
                                          &cnnx::kQGemmAvxVnni, &cnnx::kQGemmAvxVnniEvex};
        for (const auto* g : all) out.push_back(g->name);
        for (int i = 0; i < cnnx::kQGemmAvx512VnniVariantCount; ++i)
          out.push_back(cnnx::kQGemmAvx512VnniVariants[i].name);
        return out;
      },
      "Every int8 micro-kernel that is built (not all run on every CPU).");
  m.def(
      "_qgemm_kernel_runs",
      [](const std::string& name) {
        const cnnx::QGemmConfig* all[] = {&cnnx::kQGemmGeneric, &cnnx::kQGemmAvx2,
                                          &cnnx::kQGemmAvxVnni, &cnnx::kQGemmAvxVnniEvex};
        for (const auto* g : all)
          if (name == g->name) return cnnx::qgemm_config_runs_here(*g);
        for (int i = 0; i < cnnx::kQGemmAvx512VnniVariantCount; ++i)
          if (name == cnnx::kQGemmAvx512VnniVariants[i].name)
            return cnnx::qgemm_config_runs_here(cnnx::kQGemmAvx512VnniVariants[i]);
        return false;
      },
      py::arg("name"));
  m.def("cpu_has_avx512_vnni", &cnnx::cpu_has_avx512_vnni);
  m.def("cpu_has_avx_vnni", &cnnx::cpu_has_avx_vnni);
  m.def(
      "measure_qgemm_peak",
      [](int threads, int64_t iters) {
        if (threads < 1) throw py::value_error("threads: expected >= 1");
        py::gil_scoped_release nogil;
        return cnnx::measure_qgemm_peak_gops(threads, iters);
      },
      py::arg("threads") = 1, py::arg("iters") = 20000000);
}

}  // namespace cnnx_py
