// Dense, activations, losses, batch norm, dropout and optimiser updates.
// Friendly validation happens in python/cnnx/functional; the checks here only
// guarantee that no call can read or write out of bounds.
#include <pybind11/stl.h>

#include <optional>

#include "bindings.h"
#include "cnnx/activation.h"
#include "cnnx/dense.h"
#include "cnnx/dropout.h"
#include "cnnx/loss.h"
#include "cnnx/norm.h"
#include "cnnx/optim.h"

namespace cnnx_py {

namespace {

using iarray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using u8array = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

farray like(const farray& a) {
  std::vector<py::ssize_t> s(a.shape(), a.shape() + a.ndim());
  return farray(s);
}

void require_same_shape(const farray& a, const farray& b, const char* name) {
  bool ok = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; ok && i < a.ndim(); ++i) ok = a.shape(i) == b.shape(i);
  require(ok, std::string(name) + ": shape does not match");
}

// Elementwise y = f(x).
template <class K>
farray unary(const farray& x, K k) {
  farray y = like(x);
  const float* px = x.data();
  float* py_ = y.mutable_data();
  const int64_t n = x.size();
  {
    py::gil_scoped_release nogil;
    k(px, py_, n);
  }
  return y;
}

// Elementwise dx = f(dy, a).
template <class K>
farray binary(const farray& dy, const farray& a, const char* aname, K k) {
  require_same_shape(dy, a, aname);
  farray dx = like(dy);
  const float* p0 = dy.data();
  const float* p1 = a.data();
  float* pd = dx.mutable_data();
  const int64_t n = dy.size();
  {
    py::gil_scoped_release nogil;
    k(p0, p1, pd, n);
  }
  return dx;
}

// A float32 C-contiguous writeable ndarray updated in place (never a copy).
float* inplace_f32(py::handle h, int64_t n, const char* name) {
  require(py::isinstance<py::array>(h), std::string(name) + ": expected a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(h);
  require(is_f32(a), std::string(name) + ": expected dtype float32");
  require((a.flags() & py::array::c_style) != 0, std::string(name) + ": must be C-contiguous");
  require(a.writeable(), std::string(name) + ": must be writeable");
  require(a.size() == n, std::string(name) + ": expected " + std::to_string(n) + " elements, got " +
                             std::to_string(a.size()));
  return static_cast<float*>(a.mutable_data());
}

const float* opt_vec(const std::optional<farray>& a, int64_t C, const char* name) {
  if (!a) return nullptr;
  require(a->ndim() == 1 && a->shape(0) == C,
          std::string(name) + ": expected shape (" + std::to_string(C) + ",)");
  return a->data();
}

int64_t channels_of(const farray& x) {
  require(x.ndim() >= 1, "x: expected at least a 1-D array");
  return x.shape(x.ndim() - 1);
}

}  // namespace

void bind_ops(py::module_& m) {
  // ---- dense ----
  m.def(
      "dense",
      [](farray x, farray w, std::optional<farray> b, bool relu) {
        require_ndim(x, 2, "x");
        require_ndim(w, 2, "w");
        const int64_t N = x.shape(0), in = x.shape(1), out = w.shape(1);
        require(w.shape(0) == in, "w: rows must match x's columns");
        const float* pb = nullptr;
        if (b) {
          require(b->ndim() == 1 && b->shape(0) == out, "b: expected shape (n_out,)");
          pb = b->data();
        }
        farray y = new_array({N, out});
        const float *px = x.data(), *pw = w.data();
        float* pyy = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::dense_forward(px, pw, pb, pyy, N, in, out,
                              relu ? cnnx::Activation::relu : cnnx::Activation::none);
        }
        return y;
      },
      py::arg("x"), py::arg("w"), py::arg("b") = py::none(), py::arg("relu") = false);

  m.def(
      "dense_backward",
      [](farray dy, farray x, farray w, bool need_dx, bool need_dw, bool need_db, py::object dw_out,
         py::object db_out) {
        require_ndim(dy, 2, "dy");
        require_ndim(x, 2, "x");
        require_ndim(w, 2, "w");
        const int64_t N = x.shape(0), in = x.shape(1), out = w.shape(1);
        require(w.shape(0) == in, "w: rows must match x's columns");
        require(dy.shape(0) == N && dy.shape(1) == out, "dy: expected shape (N, n_out)");
        py::object dx = py::none(), dw = py::none(), db = py::none();
        float *pdx = nullptr, *pdw = nullptr, *pdb = nullptr;
        if (need_dx) {
          farray a = new_array({N, in});
          pdx = a.mutable_data();
          dx = a;
        }
        if (need_dw) {
          py::array a = out_array(dw_out, {in, out}, "dw_out");
          pdw = static_cast<float*>(a.mutable_data());
          dw = a;
        }
        if (need_db) {
          py::array a = out_array(db_out, {out}, "db_out");
          pdb = static_cast<float*>(a.mutable_data());
          db = a;
        }
        const float *pdy = dy.data(), *px = x.data(), *pw = w.data();
        {
          py::gil_scoped_release nogil;
          cnnx::dense_backward(pdy, px, pw, pdx, pdw, pdb, N, in, out);
        }
        return py::make_tuple(dx, dw, db);
      },
      py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("need_dx") = true,
      py::arg("need_dw") = true, py::arg("need_db") = true, py::arg("dw_out") = py::none(),
      py::arg("db_out") = py::none());

  m.def("column_sums", [](farray a) {
    require_ndim(a, 2, "a");
    farray out = new_array({a.shape(1)});
    const float* pa = a.data();
    float* po = out.mutable_data();
    const int64_t r = a.shape(0), c = a.shape(1);
    {
      py::gil_scoped_release nogil;
      cnnx::column_sums(pa, r, c, po);
    }
    return out;
  });

  // ---- activations ----
  m.def("relu", [](farray x) { return unary(x, cnnx::relu_forward); });
  m.def("relu_backward",
        [](farray dy, farray x) { return binary(dy, x, "x", cnnx::relu_backward); });
  m.def("leaky_relu", [](farray x, float alpha) {
    return unary(x, [alpha](const float* a, float* b, int64_t n) {
      cnnx::leaky_relu_forward(a, b, n, alpha);
    });
  });
  m.def("leaky_relu_backward", [](farray dy, farray x, float alpha) {
    return binary(dy, x, "x", [alpha](const float* a, const float* b, float* c, int64_t n) {
      cnnx::leaky_relu_backward(a, b, c, n, alpha);
    });
  });
  m.def("sigmoid", [](farray x) { return unary(x, cnnx::sigmoid_forward); });
  m.def("sigmoid_backward",
        [](farray dy, farray y) { return binary(dy, y, "y", cnnx::sigmoid_backward); });
  m.def("tanh", [](farray x) { return unary(x, cnnx::tanh_forward); });
  m.def("tanh_backward",
        [](farray dy, farray y) { return binary(dy, y, "y", cnnx::tanh_backward); });

  auto split_axis = [](const farray& x, int axis, int64_t* outer, int64_t* K, int64_t* inner) {
    require(axis >= 0 && axis < x.ndim(), "axis: out of range");
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; ++i) *outer *= x.shape(i);
    *K = x.shape(axis);
    for (int i = axis + 1; i < x.ndim(); ++i) *inner *= x.shape(i);
  };
  m.def("softmax", [split_axis](farray x, int axis) {
    int64_t o, k, in;
    split_axis(x, axis, &o, &k, &in);
    farray y = like(x);
    const float* px = x.data();
    float* pyy = y.mutable_data();
    {
      py::gil_scoped_release nogil;
      cnnx::softmax_forward(px, pyy, o, k, in);
    }
    return y;
  });
  m.def("softmax_backward", [split_axis](farray dy, farray y, int axis) {
    require_same_shape(dy, y, "y");
    int64_t o, k, in;
    split_axis(y, axis, &o, &k, &in);
    farray dx = like(y);
    const float *pdy = dy.data(), *pyy = y.data();
    float* pdx = dx.mutable_data();
    {
      py::gil_scoped_release nogil;
      cnnx::softmax_backward(pdy, pyy, pdx, o, k, in);
    }
    return dx;
  });

  // ---- losses ----
  m.def(
      "softmax_cross_entropy",
      [](farray logits, iarray labels, bool need_grad) {
        require_ndim(logits, 2, "logits");
        const int64_t N = logits.shape(0), K = logits.shape(1);
        require(labels.ndim() == 1 && labels.shape(0) == N, "labels: expected shape (N,)");
        const int64_t* pl = labels.data();
        for (int64_t i = 0; i < N; ++i) require(pl[i] >= 0 && pl[i] < K, "labels: out of range");
        py::object g = py::none();
        float* pg = nullptr;
        if (need_grad) {
          farray a = new_array({N, K});
          pg = a.mutable_data();
          g = a;
        }
        const float* px = logits.data();
        double loss;
        {
          py::gil_scoped_release nogil;
          loss = cnnx::softmax_cross_entropy(px, pl, N, K, pg);
        }
        return py::make_tuple(loss, g);
      },
      py::arg("logits"), py::arg("labels"), py::arg("need_grad") = true);

  m.def(
      "cross_entropy",
      [](farray probs, iarray labels, float eps, bool need_grad) {
        require_ndim(probs, 2, "probs");
        const int64_t N = probs.shape(0), K = probs.shape(1);
        require(labels.ndim() == 1 && labels.shape(0) == N, "labels: expected shape (N,)");
        const int64_t* pl = labels.data();
        for (int64_t i = 0; i < N; ++i) require(pl[i] >= 0 && pl[i] < K, "labels: out of range");
        py::object g = py::none();
        float* pg = nullptr;
        if (need_grad) {
          farray a = new_array({N, K});
          pg = a.mutable_data();
          g = a;
        }
        const float* pp = probs.data();
        double loss;
        {
          py::gil_scoped_release nogil;
          loss = cnnx::cross_entropy(pp, pl, N, K, eps, pg);
        }
        return py::make_tuple(loss, g);
      },
      py::arg("probs"), py::arg("labels"), py::arg("eps") = 1e-12f, py::arg("need_grad") = true);

  // ---- batch norm ----
  m.def(
      "batch_norm_train",
      [](farray x, std::optional<farray> gamma, std::optional<farray> beta, py::object rmean,
         py::object rvar, float momentum, float eps) {
        const int64_t C = channels_of(x);
        const int64_t rows = C ? x.size() / C : 0;
        const float* pg = opt_vec(gamma, C, "gamma");
        const float* pb = opt_vec(beta, C, "beta");
        float* prm = rmean.is_none() ? nullptr : inplace_f32(rmean, C, "running_mean");
        float* prv = rvar.is_none() ? nullptr : inplace_f32(rvar, C, "running_var");
        farray y = like(x), mean = new_array({C}), inv_std = new_array({C});
        const float* px = x.data();
        float *pyy = y.mutable_data(), *pm = mean.mutable_data(), *pi = inv_std.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::batch_norm_forward_train(px, pg, pb, pyy, rows, C, eps, momentum, prm, prv, pm, pi);
        }
        return py::make_tuple(y, mean, inv_std);
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"),
      py::arg("running_var"), py::arg("momentum"), py::arg("eps"));

  m.def(
      "batch_norm_eval",
      [](farray x, std::optional<farray> gamma, std::optional<farray> beta, farray mean,
         farray inv_std) {
        const int64_t C = channels_of(x);
        const int64_t rows = C ? x.size() / C : 0;
        const float* pg = opt_vec(gamma, C, "gamma");
        const float* pb = opt_vec(beta, C, "beta");
        const float* pm = opt_vec(mean, C, "mean");
        const float* pi = opt_vec(inv_std, C, "inv_std");
        farray y = like(x);
        const float* px = x.data();
        float* pyy = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::batch_norm_forward_eval(px, pg, pb, pm, pi, pyy, rows, C);
        }
        return y;
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("mean"), py::arg("inv_std"));

  m.def(
      "batch_norm_backward",
      [](farray dy, farray x, std::optional<farray> gamma, farray mean, farray inv_std,
         bool training, bool need_dx) {
        require_same_shape(dy, x, "dy");
        const int64_t C = channels_of(x);
        const int64_t rows = C ? x.size() / C : 0;
        const float* pg = opt_vec(gamma, C, "gamma");
        const float* pm = opt_vec(mean, C, "mean");
        const float* pi = opt_vec(inv_std, C, "inv_std");
        py::object dx = py::none();
        float* pdx = nullptr;
        if (need_dx) {
          farray a = like(x);
          pdx = a.mutable_data();
          dx = a;
        }
        farray dg = new_array({C}), db = new_array({C});
        const float *pdy = dy.data(), *px = x.data();
        float *pdg = dg.mutable_data(), *pdb = db.mutable_data();
        {
          py::gil_scoped_release nogil;
          cnnx::batch_norm_backward(pdy, px, pg, pm, pi, pdx, pdg, pdb, rows, C, training);
        }
        return py::make_tuple(dx, dg, db);
      },
      py::arg("dy"), py::arg("x"), py::arg("gamma"), py::arg("mean"), py::arg("inv_std"),
      py::arg("training"), py::arg("need_dx") = true);

  // ---- dropout ----
  m.def(
      "dropout",
      [](farray x, float rate, uint64_t seed, bool want_mask) {
        require(rate >= 0.0f && rate < 1.0f, "rate: expected a number in [0, 1)");
        farray y = like(x);
        py::object mask = py::none();
        uint8_t* pm = nullptr;
        if (want_mask) {
          std::vector<py::ssize_t> s(x.shape(), x.shape() + x.ndim());
          py::array_t<uint8_t> a(s);
          pm = a.mutable_data();
          mask = a;
        }
        const float* px = x.data();
        float* pyy = y.mutable_data();
        const int64_t n = x.size();
        {
          py::gil_scoped_release nogil;
          cnnx::dropout_forward(px, pyy, pm, n, rate, seed);
        }
        return py::make_tuple(y, mask);
      },
      py::arg("x"), py::arg("rate"), py::arg("seed"), py::arg("want_mask") = true);

  m.def("dropout_backward", [](farray dy, u8array mask, float rate) {
    require(rate >= 0.0f && rate < 1.0f, "rate: expected a number in [0, 1)");
    bool ok = mask.ndim() == dy.ndim();
    for (py::ssize_t i = 0; ok && i < dy.ndim(); ++i) ok = mask.shape(i) == dy.shape(i);
    require(ok, "mask: shape does not match dy");
    farray dx = like(dy);
    const float* pdy = dy.data();
    const uint8_t* pm = mask.data();
    float* pdx = dx.mutable_data();
    const int64_t n = dy.size();
    {
      py::gil_scoped_release nogil;
      cnnx::dropout_backward(pdy, pm, pdx, n, rate);
    }
    return dx;
  });

  m.def("dropout_backward_seeded", [](farray dy, float rate, uint64_t seed) {
    require(rate >= 0.0f && rate < 1.0f, "rate: expected a number in [0, 1)");
    farray dx = like(dy);
    const float* pdy = dy.data();
    float* pdx = dx.mutable_data();
    const int64_t n = dy.size();
    {
      py::gil_scoped_release nogil;
      cnnx::dropout_backward_seeded(pdy, pdx, n, rate, seed);
    }
    return dx;
  });

  m.def("dropout_bits", [](uint64_t seed, uint64_t i) { return cnnx::dropout_bits(seed, i); });

  // ---- fused optimiser updates (in place) ----
  m.def(
      "sgd_update",
      [](py::object param, farray grad, py::object velocity, float lr, float momentum,
         bool nesterov, float weight_decay) {
        const int64_t n = grad.size();
        float* pp = inplace_f32(param, n, "param");
        float* pv = velocity.is_none() ? nullptr : inplace_f32(velocity, n, "velocity");
        require(momentum == 0.0f || pv != nullptr, "velocity: needed when momentum != 0");
        const float* pg = grad.data();
        py::gil_scoped_release nogil;
        cnnx::sgd_update(pp, pg, pv, n, lr, momentum, nesterov, weight_decay);
      },
      py::arg("param"), py::arg("grad"), py::arg("velocity"), py::arg("lr"),
      py::arg("momentum") = 0.0f, py::arg("nesterov") = false, py::arg("weight_decay") = 0.0f);

  m.def(
      "adam_update",
      [](py::object param, farray grad, py::object mm, py::object vv, int64_t step, double lr,
         double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
        const int64_t n = grad.size();
        require(step >= 1, "step: expected an int >= 1");
        float* pp = inplace_f32(param, n, "param");
        float* pm = inplace_f32(mm, n, "m");
        float* pv = inplace_f32(vv, n, "v");
        const float* pg = grad.data();
        py::gil_scoped_release nogil;
        cnnx::adam_update(pp, pg, pm, pv, n, step, lr, beta1, beta2, eps, weight_decay, decoupled);
      },
      py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("step"), py::arg("lr"),
      py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8,
      py::arg("weight_decay") = 0.0, py::arg("decoupled") = false);
}

}  // namespace cnnx_py
