// conv2d forward/backward: NHWC x, HWIO w. Friendly checks happen in
// python/cnnx/functional/_conv.py; these are the last line of defence.
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <string>
#include <optional>
#include <tuple>

#include "bindings.h"
#include "cnnx/conv.h"

namespace cnnx_py {
namespace {

using I2 = std::array<int64_t, 2>;
using I4 = std::array<int64_t, 4>;

cnnx::Conv2dShape make_shape(const farray& x, const farray& w, I2 stride, I2 dilation, I4 pads,
                             int64_t groups) {
  require_ndim(x, 4, "x");
  require_ndim(w, 4, "w");
  cnnx::Conv2dShape s;
  s.N = x.shape(0);
  s.H = x.shape(1);
  s.W = x.shape(2);
  s.C_in = x.shape(3);
  s.KH = w.shape(0);
  s.KW = w.shape(1);
  s.C_out = w.shape(3);
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
  require(w.shape(2) * groups == s.C_in,
          "w: expected " + std::to_string(s.C_in / std::max<int64_t>(groups, 1)) +
              " input channels per group, got " + std::to_string(w.shape(2)));
  return s;
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](farray x, farray w, std::optional<farray> b, I2 stride, I2 dilation, I4 pads,
         int64_t groups, bool relu) {
        const cnnx::Conv2dShape s = make_shape(x, w, stride, dilation, pads, groups);
        const float* pb = nullptr;
        if (b) {
          require(b->ndim() == 1 && b->shape(0) == s.C_out,
                  "b: expected shape (" + std::to_string(s.C_out) + ",)");
          pb = b->data();
        }
        farray y = new_array({s.N, s.out_h(), s.out_w(), s.C_out});
        const float* px = x.data();
        const float* pw = w.data();
        float* py = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::conv2d_forward(s, px, pw, pb, py,
                               relu ? cnnx::Activation::relu : cnnx::Activation::none);
        }
        return y;
      },
      py::arg("x"), py::arg("w"), py::arg("b"), py::arg("stride"), py::arg("dilation"),
      py::arg("pads"), py::arg("groups"), py::arg("relu") = false);

  m.def(
      "conv2d_backward",
      [](farray dy, farray x, farray w, I2 stride, I2 dilation, I4 pads, int64_t groups,
         bool need_dx, py::object dw_out, py::object db_out) {
        const cnnx::Conv2dShape s = make_shape(x, w, stride, dilation, pads, groups);
        require_ndim(dy, 4, "dy");
        require(dy.shape(0) == s.N && dy.shape(1) == s.out_h() && dy.shape(2) == s.out_w() &&
                    dy.shape(3) == s.C_out,
                "dy: shape does not match the convolution's output");
        py::array dw = out_array(dw_out, {s.KH, s.KW, s.cin_per_group(), s.C_out}, "dw_out");
        py::array db = out_array(db_out, {s.C_out}, "db_out");
        py::object dx_obj = py::none();
        float* pdx = nullptr;
        if (need_dx) {
          farray dx = new_array({s.N, s.H, s.W, s.C_in});
          pdx = dx.mutable_data();
          dx_obj = dx;
        }
        const float* pdy = dy.data();
        const float* px = x.data();
        const float* pw = w.data();
        float* pdw = static_cast<float*>(dw.mutable_data());
        float* pdb = static_cast<float*>(db.mutable_data());
        {
          py::gil_scoped_release nogil;
          cnnx::conv2d_backward_weights(s, pdy, px, pdw, pdb);
          if (pdx) cnnx::conv2d_backward_data(s, pdy, pw, pdx);
        }
        return py::make_tuple(dx_obj, dw, db);
      },
      py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("dilation"),
      py::arg("pads"), py::arg("groups"), py::arg("need_dx") = true, py::arg("dw_out") = py::none(),
      py::arg("db_out") = py::none());

  m.def(
      "conv2d_algorithm",
      [](farray x, farray w, I2 stride, I2 dilation, I4 pads, int64_t groups, int64_t n) {
        cnnx::Conv2dShape s = make_shape(x, w, stride, dilation, pads, groups);
        if (n >= 0) s.N = n;  // the batch the choice is for (x may be one image)
        return std::string(cnnx::conv2d_forward_algorithm(s));
      },
      py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("dilation"), py::arg("pads"),
      py::arg("groups"), py::arg("n") = -1);
}

}  // namespace cnnx_py
