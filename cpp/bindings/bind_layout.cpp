// The layout ops (cnnx/layout.h) and the transposed convolution
// (cnnx/conv_transpose.h) for the layer-by-layer path and cnnx.functional,
// and their enums (PadMode, UpsampleMode, DepthOrder), exported once here.
// Friendly checks happen in python/cnnx/functional/_layout.py; these are
// the last line of defence.
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings.h"
#include "cnnx/conv_transpose.h"
#include "cnnx/layout.h"

namespace cnnx_py {
namespace {

using I2 = std::array<int64_t, 2>;
using I4 = std::array<int64_t, 4>;

cnnx::ConvTranspose2dShape ct_shape(const farray& x, const farray& w, I2 stride, I2 dilation,
                                    I4 pads, I2 out_pad, int64_t groups) {
  require_ndim(x, 4, "x");
  require_ndim(w, 4, "w");
  cnnx::ConvTranspose2dShape s;
  s.N = x.shape(0);
  s.H = x.shape(1);
  s.W = x.shape(2);
  s.C_in = x.shape(3);
  s.KH = w.shape(0);
  s.KW = w.shape(1);
  s.C_out = w.shape(2) * std::max<int64_t>(groups, 1);
  s.stride_h = stride[0];
  s.stride_w = stride[1];
  s.dilation_h = dilation[0];
  s.dilation_w = dilation[1];
  s.pad_top = pads[0];
  s.pad_bottom = pads[1];
  s.pad_left = pads[2];
  s.pad_right = pads[3];
  s.out_pad_h = out_pad[0];
  s.out_pad_w = out_pad[1];
  s.groups = groups;
  require(w.shape(3) == s.C_in, "w: expected (f_h, f_w, filters/groups, " + std::to_string(s.C_in) +
                                    ") for x's " + std::to_string(s.C_in) +
                                    " channels, got last axis " + std::to_string(w.shape(3)));
  const char* msg = cnnx::conv_transpose2d_check(s);
  require(msg[0] == 0, msg);
  return s;
}

// Runs f with the GIL released; a kernel's std::invalid_argument becomes a ValueError.
template <class F>
void run(F&& f) {
  try {
    py::gil_scoped_release nogil;
    f();
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

cnnx::Pad2dShape pad_shape(const farray& x, I4 pads) {
  require_ndim(x, 4, "x");
  cnnx::Pad2dShape s;
  s.N = x.shape(0);
  s.H = x.shape(1);
  s.W = x.shape(2);
  s.C = x.shape(3);
  s.top = pads[0];
  s.bottom = pads[1];
  s.left = pads[2];
  s.right = pads[3];
  return s;
}

}  // namespace

void bind_layout(py::module_& m) {
  py::enum_<cnnx::PadMode>(m, "PadMode", "padding modes (ONNX Pad's)")
      .value("constant", cnnx::PadMode::constant)
      .value("reflect", cnnx::PadMode::reflect)
      .value("edge", cnnx::PadMode::edge);
  py::enum_<cnnx::UpsampleMode>(m, "UpsampleMode")
      .value("nearest", cnnx::UpsampleMode::nearest)
      .value("bilinear", cnnx::UpsampleMode::bilinear);
  py::enum_<cnnx::DepthOrder>(m, "DepthOrder", "channel order of DepthToSpace (ONNX's modes)")
      .value("dcr", cnnx::DepthOrder::dcr)
      .value("crd", cnnx::DepthOrder::crd);

  m.def(
      "conv_transpose2d_forward",
      [](farray x, farray w, std::optional<farray> b, I2 stride, I2 dilation, I4 pads, I2 out_pad,
         int64_t groups, bool relu) {
        const cnnx::ConvTranspose2dShape s =
            ct_shape(x, w, stride, dilation, pads, out_pad, groups);
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
        run([&] {
          cnnx::conv_transpose2d_forward(s, px, pw, pb, py,
                                         relu ? cnnx::Activation::relu : cnnx::Activation::none);
        });
        return y;
      },
      py::arg("x"), py::arg("w"), py::arg("b"), py::arg("stride"), py::arg("dilation"),
      py::arg("pads"), py::arg("output_padding"), py::arg("groups"), py::arg("relu") = false);

  m.def(
      "conv_transpose2d_backward",
      [](farray dy, farray x, farray w, I2 stride, I2 dilation, I4 pads, I2 out_pad, int64_t groups,
         bool need_dx, bool need_dw, py::object dw_out, py::object db_out) {
        const cnnx::ConvTranspose2dShape s =
            ct_shape(x, w, stride, dilation, pads, out_pad, groups);
        require_ndim(dy, 4, "dy");
        require(dy.shape(0) == s.N && dy.shape(1) == s.out_h() && dy.shape(2) == s.out_w() &&
                    dy.shape(3) == s.C_out,
                "dy: shape does not match the transposed convolution's output");
        py::object dw_obj = py::none(), db_obj = py::none(), dx_obj = py::none();
        float *pdw = nullptr, *pdb = nullptr, *pdx = nullptr;
        if (need_dw) {
          py::array dw = out_array(dw_out, {s.KH, s.KW, s.C_out / s.groups, s.C_in}, "dw_out");
          py::array db = out_array(db_out, {s.C_out}, "db_out");
          pdw = static_cast<float*>(dw.mutable_data());
          pdb = static_cast<float*>(db.mutable_data());
          dw_obj = dw;
          db_obj = db;
        }
        if (need_dx) {
          farray dx = new_array({s.N, s.H, s.W, s.C_in});
          pdx = dx.mutable_data();
          dx_obj = dx;
        }
        const float* pdy = dy.data();
        const float* px = x.data();
        const float* pw = w.data();
        run([&] {
          if (pdw) cnnx::conv_transpose2d_backward_weights(s, pdy, px, pdw, pdb);
          if (pdx) cnnx::conv_transpose2d_backward_data(s, pdy, pw, pdx);
        });
        return py::make_tuple(dx_obj, dw_obj, db_obj);
      },
      py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("dilation"),
      py::arg("pads"), py::arg("output_padding"), py::arg("groups"), py::arg("need_dx") = true,
      py::arg("need_dw") = true, py::arg("dw_out") = py::none(), py::arg("db_out") = py::none(),
      "-> (dx or None, dw or None, db or None)");

  m.def(
      "pad2d",
      [](farray x, cnnx::PadMode mode, I4 pads, float value) {
        const cnnx::Pad2dShape s = pad_shape(x, pads);
        const char* msg = cnnx::pad2d_check(mode, s);
        require(msg[0] == 0, msg);
        farray y = new_array({s.N, s.out_h(), s.out_w(), s.C});
        const float* px = x.data();
        float* py = y.mutable_data();
        run([&] { cnnx::pad2d_forward(mode, s, value, px, py); });
        return y;
      },
      py::arg("x"), py::arg("mode"), py::arg("pads"), py::arg("value") = 0.0f,
      "pads: (top, bottom, left, right); constant mode crops with negative pads");
  m.def(
      "pad2d_backward",
      [](farray dy, cnnx::PadMode mode, I4 pads, int64_t H, int64_t W) {
        require_ndim(dy, 4, "dy");
        cnnx::Pad2dShape s;
        s.N = dy.shape(0);
        s.H = H;
        s.W = W;
        s.C = dy.shape(3);
        s.top = pads[0];
        s.bottom = pads[1];
        s.left = pads[2];
        s.right = pads[3];
        const char* msg = cnnx::pad2d_check(mode, s);
        require(msg[0] == 0, msg);
        require(dy.shape(1) == s.out_h() && dy.shape(2) == s.out_w(),
                "dy: shape does not match the padding's output");
        farray dx = new_array({s.N, H, W, s.C});
        const float* pdy = dy.data();
        float* pdx = dx.mutable_data();
        run([&] { cnnx::pad2d_backward(mode, s, pdy, pdx); });
        return dx;
      },
      py::arg("dy"), py::arg("mode"), py::arg("pads"), py::arg("height"), py::arg("width"));

  m.def(
      "upsample2d",
      [](farray x, cnnx::UpsampleMode mode, int64_t fh, int64_t fw) {
        require_ndim(x, 4, "x");
        require(fh >= 1 && fw >= 1, "size: upsampling factors must be >= 1");
        farray y = new_array({x.shape(0), x.shape(1) * fh, x.shape(2) * fw, x.shape(3)});
        const float* px = x.data();
        float* py = y.mutable_data();
        const int64_t N = x.shape(0), H = x.shape(1), W = x.shape(2), C = x.shape(3);
        run([&] { cnnx::upsample2d_forward(mode, N, H, W, C, fh, fw, px, py); });
        return y;
      },
      py::arg("x"), py::arg("mode"), py::arg("fh"), py::arg("fw"));
  m.def(
      "upsample2d_backward",
      [](farray dy, cnnx::UpsampleMode mode, int64_t fh, int64_t fw) {
        require_ndim(dy, 4, "dy");
        require(fh >= 1 && fw >= 1, "size: upsampling factors must be >= 1");
        require(dy.shape(1) % fh == 0 && dy.shape(2) % fw == 0,
                "dy: its height and width must be multiples of the factors");
        const int64_t N = dy.shape(0), H = dy.shape(1) / fh, W = dy.shape(2) / fw, C = dy.shape(3);
        farray dx = new_array({N, H, W, C});
        const float* pdy = dy.data();
        float* pdx = dx.mutable_data();
        run([&] { cnnx::upsample2d_backward(mode, N, H, W, C, fh, fw, pdy, pdx); });
        return dx;
      },
      py::arg("dy"), py::arg("mode"), py::arg("fh"), py::arg("fw"));

  m.def(
      "depth_to_space",
      [](farray x, int64_t b, cnnx::DepthOrder order) {
        require_ndim(x, 4, "x");
        require(b >= 1 && x.shape(3) % (b * b) == 0,
                "block_size: its square must divide the channels");
        farray y = new_array({x.shape(0), x.shape(1) * b, x.shape(2) * b, x.shape(3) / (b * b)});
        const float* px = x.data();
        float* py = y.mutable_data();
        const int64_t N = x.shape(0), H = x.shape(1), W = x.shape(2), C = x.shape(3);
        run([&] { cnnx::depth_to_space(order, N, H, W, C, b, px, py); });
        return y;
      },
      py::arg("x"), py::arg("block_size"), py::arg("order"));
  m.def(
      "space_to_depth",
      [](farray x, int64_t b, cnnx::DepthOrder order) {
        require_ndim(x, 4, "x");
        require(b >= 1 && x.shape(1) % b == 0 && x.shape(2) % b == 0,
                "block_size: must divide the height and the width");
        farray y = new_array({x.shape(0), x.shape(1) / b, x.shape(2) / b, x.shape(3) * b * b});
        const float* px = x.data();
        float* py = y.mutable_data();
        const int64_t N = x.shape(0), H = x.shape(1), W = x.shape(2), C = x.shape(3);
        run([&] { cnnx::space_to_depth(order, N, H, W, C, b, px, py); });
        return y;
      },
      py::arg("x"), py::arg("block_size"), py::arg("order"));

  m.def(
      "channel_shuffle",
      [](farray x, int64_t groups) {
        require(x.ndim() >= 1, "x: expected an array with a channel axis");
        const int64_t C = x.shape(x.ndim() - 1);
        require(groups >= 1 && C % groups == 0, "groups: must divide the channels");
        std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim());
        farray y = new_array(shape);
        const float* px = x.data();
        float* py = y.mutable_data();
        const int64_t pixels = C ? x.size() / C : 0;
        run([&] { cnnx::channel_shuffle(pixels, C, groups, px, py); });
        return y;
      },
      py::arg("x"), py::arg("groups"), "ShuffleNet's channel shuffle over the last axis");

  m.def(
      "transpose",
      [](farray x, std::vector<int> perm) {
        const int rank = static_cast<int>(perm.size());
        require(x.ndim() == rank + 1, "perm: expected one entry per axis after the batch axis");
        require(rank >= 1 && rank <= 8, "perm: expected 1 to 8 axes");
        std::vector<int64_t> shape(x.shape() + 1, x.shape() + x.ndim());
        std::vector<int64_t> out{x.shape(0)};
        std::vector<int> seen(rank, 0);
        for (int a : perm) {
          require(a >= 0 && a < rank && !seen[a]++, "perm: expected a permutation");
          out.push_back(shape[a]);
        }
        farray y = new_array(out);
        const float* px = x.data();
        float* py = y.mutable_data();
        const int64_t N = x.shape(0);
        run([&] { cnnx::transpose_nd(N, rank, shape.data(), perm.data(), px, py); });
        return y;
      },
      py::arg("x"), py::arg("perm"),
      "axes after the batch axis permuted: y axis a = x axis perm[a]");
}

}  // namespace cnnx_py
