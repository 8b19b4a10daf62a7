// Pooling: max (with dilation), average, adaptive (avg and max) and global
// average, NHWC, forward and backward; ceil_mode for max and average. Python
// (cnnx/functional/_pool.py) validates and resolves padding first; the checks
// here only guard the kernels.
#include <stdexcept>

#include "bindings.h"
#include "cnnx/pool.h"

namespace cnnx_py {

namespace {

cnnx::PoolShape shape_of(const farray& x) {
  return cnnx::PoolShape{x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
}

cnnx::Pool2dParams params(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t pt, int64_t pb,
                          int64_t pl, int64_t pr, int64_t dh, int64_t dw, bool ceil_mode) {
  cnnx::Pool2dParams p{kh, kw, sh, sw, pt, pb, pl, pr};
  p.dilation_h = dh;
  p.dilation_w = dw;
  p.ceil_mode = ceil_mode;
  return p;
}

void require_shape(const farray& a, const char* name, int64_t n, int64_t h, int64_t w, int64_t c) {
  const bool ok =
      a.ndim() == 4 && a.shape(0) == n && a.shape(1) == h && a.shape(2) == w && a.shape(3) == c;
  require(ok, std::string(name) + ": expected shape (" + std::to_string(n) + ", " +
                  std::to_string(h) + ", " + std::to_string(w) + ", " + std::to_string(c) + ")");
}

void check_input(const farray& x, const char* name) {
  require_ndim(x, 4, name);
  require(x.shape(1) >= 1 && x.shape(2) >= 1, std::string(name) + ": expected n_H, n_W >= 1");
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "max_pool2d",
      [](farray x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t pt, int64_t pb,
         int64_t pl, int64_t pr, int64_t dh, int64_t dw, bool ceil_mode) {
        check_input(x, "x");
        const auto s = shape_of(x);
        const auto p = params(kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, ceil_mode);
        int64_t oh, ow;
        cnnx::pool2d_check(s, p, &oh, &ow);
        farray y = new_array({s.n, oh, ow, s.c});
        const float* px = x.data();
        float* py_ = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::max_pool2d_forward(s, p, px, py_);
        }
        return y;
      },
      py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("pt"),
      py::arg("pb"), py::arg("pl"), py::arg("pr"), py::arg("dh") = 1, py::arg("dw") = 1,
      py::arg("ceil_mode") = false);

  m.def(
      "max_pool2d_backward",
      [](farray dy, farray x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t pt,
         int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw, bool ceil_mode) {
        check_input(x, "x");
        const auto s = shape_of(x);
        const auto p = params(kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, ceil_mode);
        int64_t oh, ow;
        cnnx::pool2d_check(s, p, &oh, &ow);
        require_shape(dy, "dy", s.n, oh, ow, s.c);
        farray dx = new_array({s.n, s.h, s.w, s.c});
        const float* px = x.data();
        const float* pdy = dy.data();
        float* pdx = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::max_pool2d_backward(s, p, px, pdy, pdx);
        }
        return dx;
      },
      py::arg("dy"), py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
      py::arg("pt"), py::arg("pb"), py::arg("pl"), py::arg("pr"), py::arg("dh") = 1,
      py::arg("dw") = 1, py::arg("ceil_mode") = false);

  m.def(
      "avg_pool2d",
      [](farray x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t pt, int64_t pb,
         int64_t pl, int64_t pr, bool count_include_pad, bool ceil_mode) {
        check_input(x, "x");
        const auto s = shape_of(x);
        const auto p = params(kh, kw, sh, sw, pt, pb, pl, pr, 1, 1, ceil_mode);
        int64_t oh, ow;
        cnnx::pool2d_check(s, p, &oh, &ow);
        farray y = new_array({s.n, oh, ow, s.c});
        const float* px = x.data();
        float* py_ = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::avg_pool2d_forward(s, p, count_include_pad, px, py_);
        }
        return y;
      },
      py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("pt"),
      py::arg("pb"), py::arg("pl"), py::arg("pr"), py::arg("count_include_pad"),
      py::arg("ceil_mode") = false);

  m.def(
      "avg_pool2d_backward",
      [](farray dy, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
         int64_t pt, int64_t pb, int64_t pl, int64_t pr, bool count_include_pad, bool ceil_mode) {
        require_ndim(dy, 4, "dy");
        const cnnx::PoolShape s{dy.shape(0), h, w, dy.shape(3)};
        const auto p = params(kh, kw, sh, sw, pt, pb, pl, pr, 1, 1, ceil_mode);
        int64_t oh, ow;
        cnnx::pool2d_check(s, p, &oh, &ow);
        require_shape(dy, "dy", s.n, oh, ow, s.c);
        farray dx = new_array({s.n, s.h, s.w, s.c});
        const float* pdy = dy.data();
        float* pdx = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::avg_pool2d_backward(s, p, count_include_pad, pdy, pdx);
        }
        return dx;
      },
      py::arg("dy"), py::arg("h"), py::arg("w"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
      py::arg("sw"), py::arg("pt"), py::arg("pb"), py::arg("pl"), py::arg("pr"),
      py::arg("count_include_pad"), py::arg("ceil_mode") = false);

  // Adaptive pools. kind: "avg" or "max".
  auto adaptive_fwd = [](farray x, int64_t oh, int64_t ow, bool is_max) {
    check_input(x, "x");
    require(oh >= 1 && ow >= 1, "output_size: expected >= 1");
    const auto s = shape_of(x);
    farray y = new_array({s.n, oh, ow, s.c});
    const float* px = x.data();
    float* py_ = y.mutable_data();
    {
      py::gil_scoped_release nogil;
      if (is_max)
        cnnx::adaptive_max_pool2d_forward(s, oh, ow, px, py_);
      else
        cnnx::adaptive_avg_pool2d_forward(s, oh, ow, px, py_);
    }
    return y;
  };
  m.def(
      "adaptive_avg_pool2d",
      [adaptive_fwd](farray x, int64_t oh, int64_t ow) { return adaptive_fwd(x, oh, ow, false); },
      py::arg("x"), py::arg("oh"), py::arg("ow"));
  m.def(
      "adaptive_max_pool2d",
      [adaptive_fwd](farray x, int64_t oh, int64_t ow) { return adaptive_fwd(x, oh, ow, true); },
      py::arg("x"), py::arg("oh"), py::arg("ow"));

  m.def(
      "adaptive_avg_pool2d_backward",
      [](farray dy, int64_t h, int64_t w) {
        require_ndim(dy, 4, "dy");
        require(h >= 1 && w >= 1, "x: expected n_H, n_W >= 1");
        require(dy.shape(1) >= 1 && dy.shape(2) >= 1, "dy: expected an output size >= 1");
        const cnnx::PoolShape s{dy.shape(0), h, w, dy.shape(3)};
        farray dx = new_array({s.n, s.h, s.w, s.c});
        const int64_t oh = dy.shape(1), ow = dy.shape(2);
        const float* pdy = dy.data();
        float* pdx = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::adaptive_avg_pool2d_backward(s, oh, ow, pdy, pdx);
        }
        return dx;
      },
      py::arg("dy"), py::arg("h"), py::arg("w"));

  m.def(
      "adaptive_max_pool2d_backward",
      [](farray dy, farray x) {
        check_input(x, "x");
        require_ndim(dy, 4, "dy");
        const auto s = shape_of(x);
        const int64_t oh = dy.shape(1), ow = dy.shape(2);
        require(oh >= 1 && ow >= 1, "dy: expected an output size >= 1");
        require_shape(dy, "dy", s.n, oh, ow, s.c);
        farray dx = new_array({s.n, s.h, s.w, s.c});
        const float* px = x.data();
        const float* pdy = dy.data();
        float* pdx = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::adaptive_max_pool2d_backward(s, oh, ow, px, pdy, pdx);
        }
        return dx;
      },
      py::arg("dy"), py::arg("x"));

  m.def(
      "global_avg_pool2d",
      [](farray x) {
        check_input(x, "x");
        const auto s = shape_of(x);
        farray y = new_array({s.n, s.c});
        const float* px = x.data();
        float* py_ = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::global_avg_pool2d_forward(s, px, py_);
        }
        return y;
      },
      py::arg("x"));

  m.def(
      "global_avg_pool2d_backward",
      [](farray dy, int64_t h, int64_t w) {
        require_ndim(dy, 2, "dy");
        require(h >= 1 && w >= 1, "x: expected n_H, n_W >= 1");
        const cnnx::PoolShape s{dy.shape(0), h, w, dy.shape(1)};
        farray dx = new_array({s.n, s.h, s.w, s.c});
        const float* pdy = dy.data();
        float* pdx = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::global_avg_pool2d_backward(s, pdy, pdx);
        }
        return dx;
      },
      py::arg("dy"), py::arg("h"), py::arg("w"));
}

}  // namespace cnnx_py
