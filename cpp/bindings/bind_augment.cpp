// cnnx._core: preprocessing and augmentation (cnnx/augment.h): the spec
// and enums the layers and plans share, the kernels on NumPy batches, and
// the per-image transforms and draws (for tests and for users who want to
// see what an image got).
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "bindings.h"
#include "cnnx/augment.h"

namespace cnnx_py {
namespace {

using Spec = cnnx::AugmentSpec;

void check(const Spec& s) {
  try {
    cnnx::augment_check(s);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

// A batch (n, h, w, c) of the spec's input (or output) shape.
void check_batch(const farray& x, int64_t h, int64_t w, int64_t c, const char* name) {
  require(x.ndim() == 4 && x.shape(1) == h && x.shape(2) == w && x.shape(3) == c,
          std::string(name) + ": expected a batch of shape (n, " + std::to_string(h) + ", " +
              std::to_string(w) + ", " + std::to_string(c) + ")");
}

farray channel_array(const farray& a, int64_t channels, const char* name) {
  require(a.ndim() <= 1 && a.size() == channels,
          std::string(name) + ": expected " + std::to_string(channels) + " values");
  return a;
}

}  // namespace

void bind_augment(py::module_& m) {
  py::enum_<cnnx::AugmentKind>(m, "AugmentKind", "random augmentations (cnnx/augment.h)")
      .value("flip", cnnx::AugmentKind::flip)
      .value("translate", cnnx::AugmentKind::translate)
      .value("rotate", cnnx::AugmentKind::rotate)
      .value("zoom", cnnx::AugmentKind::zoom)
      .value("crop", cnnx::AugmentKind::crop)
      .value("contrast", cnnx::AugmentKind::contrast);
  py::enum_<cnnx::FillMode>(m, "FillMode", "how points outside an image are read")
      .value("reflect", cnnx::FillMode::reflect)
      .value("wrap", cnnx::FillMode::wrap)
      .value("constant", cnnx::FillMode::constant)
      .value("nearest", cnnx::FillMode::nearest);
  py::enum_<cnnx::Interpolation>(m, "Interpolation")
      .value("nearest", cnnx::Interpolation::nearest)
      .value("bilinear", cnnx::Interpolation::bilinear);

  py::class_<Spec>(m, "AugmentSpec", "what an augmentation does (cnnx/augment.h)")
      .def(py::init<>())
      .def_readwrite("kind", &Spec::kind)
      .def_readwrite("h", &Spec::h)
      .def_readwrite("w", &Spec::w)
      .def_readwrite("c", &Spec::c)
      .def_readwrite("oh", &Spec::oh)
      .def_readwrite("ow", &Spec::ow)
      .def_readwrite("horizontal", &Spec::horizontal)
      .def_readwrite("vertical", &Spec::vertical)
      .def_property(
          "lo", [](const Spec& s) { return std::array<float, 2>{s.lo[0], s.lo[1]}; },
          [](Spec& s, std::array<float, 2> v) {
            s.lo[0] = v[0];
            s.lo[1] = v[1];
          })
      .def_property(
          "hi", [](const Spec& s) { return std::array<float, 2>{s.hi[0], s.hi[1]}; },
          [](Spec& s, std::array<float, 2> v) {
            s.hi[0] = v[0];
            s.hi[1] = v[1];
          })
      .def_readwrite("same_zoom", &Spec::same_zoom)
      .def_readwrite("fill", &Spec::fill)
      .def_readwrite("interp", &Spec::interp)
      .def_readwrite("fill_value", &Spec::fill_value)
      .def_readwrite("value_lo", &Spec::value_lo)
      .def_readwrite("value_hi", &Spec::value_hi)
      .def("check", &check, "raise ValueError if the spec is inconsistent")
      .def(py::pickle(
          [](const Spec& s) {  // models holding a layer's spec can be copied and pickled
            return py::make_tuple(static_cast<int>(s.kind), s.h, s.w, s.c, s.oh, s.ow, s.horizontal,
                                  s.vertical, s.lo[0], s.lo[1], s.hi[0], s.hi[1], s.same_zoom,
                                  static_cast<int>(s.fill), static_cast<int>(s.interp),
                                  s.fill_value, s.value_lo, s.value_hi);
          },
          [](const py::tuple& t) {
            require(t.size() == 18, "AugmentSpec: malformed pickled state");
            Spec s;
            s.kind = static_cast<cnnx::AugmentKind>(t[0].cast<int>());
            s.h = t[1].cast<int64_t>();
            s.w = t[2].cast<int64_t>();
            s.c = t[3].cast<int64_t>();
            s.oh = t[4].cast<int64_t>();
            s.ow = t[5].cast<int64_t>();
            s.horizontal = t[6].cast<bool>();
            s.vertical = t[7].cast<bool>();
            s.lo[0] = t[8].cast<float>();
            s.lo[1] = t[9].cast<float>();
            s.hi[0] = t[10].cast<float>();
            s.hi[1] = t[11].cast<float>();
            s.same_zoom = t[12].cast<bool>();
            s.fill = static_cast<cnnx::FillMode>(t[13].cast<int>());
            s.interp = static_cast<cnnx::Interpolation>(t[14].cast<int>());
            s.fill_value = t[15].cast<float>();
            s.value_lo = t[16].cast<float>();
            s.value_hi = t[17].cast<float>();
            return s;
          }));

  m.def("augment_uniform", &cnnx::augment_uniform, py::arg("seed"), py::arg("index"), py::arg("k"),
        "the k-th uniform draw in [0, 1) of image `index` under `seed`");

  m.def(
      "augment_transform",
      [](const Spec& s, uint64_t seed, int64_t index, bool training) {
        check(s);
        const cnnx::ImageTransform t = cnnx::augment_transform(s, seed, index, training);
        py::dict d;
        d["matrix"] = std::array<double, 6>{t.m[0], t.m[1], t.m[2], t.m[3], t.m[4], t.m[5]};
        d["flip_h"] = t.flip_h;
        d["flip_v"] = t.flip_v;
        d["top"] = t.top;
        d["left"] = t.left;
        d["factor"] = t.factor;
        return d;
      },
      py::arg("spec"), py::arg("seed"), py::arg("index"), py::arg("training") = true,
      "the transform image `index` gets (matrix: source = matrix @ (x, y, 1))");

  m.def(
      "augment_forward",
      [](const Spec& s, farray x, uint64_t seed, bool training, int64_t first) {
        check(s);
        check_batch(x, s.h, s.w, s.c, "x");
        const int64_t n = x.shape(0);
        farray y = new_array({n, s.oh, s.ow, s.c});
        const float* px = x.data();
        float* py_ = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::augment_forward(s, px, py_, n, seed, first, training);
        }
        return y;
      },
      py::arg("spec"), py::arg("x"), py::arg("seed"), py::arg("training") = true,
      py::arg("first") = 0);

  m.def(
      "augment_backward",
      [](const Spec& s, farray dy, py::object y, uint64_t seed, bool training, int64_t first) {
        check(s);
        check_batch(dy, s.oh, s.ow, s.c, "dy");
        const int64_t n = dy.shape(0);
        farray yy;
        const float* pyv = nullptr;
        if (!y.is_none()) {
          yy = farray::ensure(y);
          require(yy && yy.size() == dy.size(), "y: expected the forward's output");
          pyv = yy.data();
        }
        farray dx = new_array({n, s.h, s.w, s.c});
        const float* pdy = dy.data();
        float* pdx = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::augment_backward(s, pdy, pyv, pdx, n, seed, first, training, false);
        }
        return dx;
      },
      py::arg("spec"), py::arg("dy"), py::arg("y"), py::arg("seed"), py::arg("training") = true,
      py::arg("first") = 0);

  m.def(
      "rescale",
      [](farray x, farray scale, farray offset, int64_t channels, int64_t inner) {
        require(channels >= 1 && inner >= 1, "channels: must be >= 1");
        channel_array(scale, channels, "scale");
        channel_array(offset, channels, "offset");
        require(x.size() % (channels * inner) == 0, "x: its size must be a multiple of channels");
        farray y = new_array(std::vector<int64_t>(x.shape(), x.shape() + x.ndim()));
        const float *px = x.data(), *ps = scale.data(), *po = offset.data();
        float* py_ = y.mutable_data();
        const int64_t n = x.size();
        {
          py::gil_scoped_release nogil;
          cnnx::rescale_forward(px, py_, n, channels, inner, ps, po);
        }
        return y;
      },
      py::arg("x"), py::arg("scale"), py::arg("offset"), py::arg("channels"), py::arg("inner") = 1,
      "y = x * scale[c] + offset[c], c = (i // inner) % channels");

  m.def(
      "rescale_backward",
      [](farray dy, farray scale, int64_t channels, int64_t inner) {
        require(channels >= 1 && inner >= 1, "channels: must be >= 1");
        channel_array(scale, channels, "scale");
        require(dy.size() % (channels * inner) == 0, "dy: its size must be a multiple of channels");
        farray dx = new_array(std::vector<int64_t>(dy.shape(), dy.shape() + dy.ndim()));
        const float *pd = dy.data(), *ps = scale.data();
        float* px = dx.mutable_data();
        const int64_t n = dy.size();
        {
          py::gil_scoped_release nogil;
          cnnx::rescale_backward(pd, px, n, channels, inner, ps, false);
        }
        return dx;
      },
      py::arg("dy"), py::arg("scale"), py::arg("channels"), py::arg("inner") = 1);

  m.def(
      "normalize",
      [](farray x, farray mean, farray var, float eps, int64_t channels, int64_t inner) {
        require(channels >= 1 && inner >= 1, "channels: must be >= 1");
        channel_array(mean, channels, "mean");
        channel_array(var, channels, "variance");
        require(eps > 0.0f, "epsilon: must be > 0");
        require(x.size() % (channels * inner) == 0, "x: its size must be a multiple of channels");
        farray y = new_array(std::vector<int64_t>(x.shape(), x.shape() + x.ndim()));
        const float *px = x.data(), *pm = mean.data(), *pv = var.data();
        float* py_ = y.mutable_data();
        const int64_t n = x.size();
        {
          py::gil_scoped_release nogil;
          cnnx::normalize_forward(px, py_, n, channels, inner, pm, pv, eps);
        }
        return y;
      },
      py::arg("x"), py::arg("mean"), py::arg("variance"), py::arg("epsilon"), py::arg("channels"),
      py::arg("inner") = 1, "y = (x - mean[c]) / max(sqrt(variance[c]), epsilon)");

  m.def(
      "normalize_backward",
      [](farray dy, farray var, float eps, int64_t channels, int64_t inner) {
        require(channels >= 1 && inner >= 1, "channels: must be >= 1");
        channel_array(var, channels, "variance");
        require(eps > 0.0f, "epsilon: must be > 0");
        require(dy.size() % (channels * inner) == 0, "dy: its size must be a multiple of channels");
        farray dx = new_array(std::vector<int64_t>(dy.shape(), dy.shape() + dy.ndim()));
        const float *pd = dy.data(), *pv = var.data();
        float* px = dx.mutable_data();
        const int64_t n = dy.size();
        {
          py::gil_scoped_release nogil;
          cnnx::normalize_backward(pd, px, n, channels, inner, pv, eps, false);
        }
        return dx;
      },
      py::arg("dy"), py::arg("variance"), py::arg("epsilon"), py::arg("channels"),
      py::arg("inner") = 1);
}

}  // namespace cnnx_py
