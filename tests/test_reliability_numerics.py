"""NaN and Inf propagate (and never crash); non-contiguous, Fortran-order,
reversed, strided, read-only, big-endian, float64 and integer inputs work
and give exactly the result of the same values as C-contiguous float32.

NaN/Inf references are naive NumPy loops written here: where an output
depends on a NaN (or on +inf and -inf together) it must be NaN, where it
depends on one infinity it must be that infinity, everything else must be
finite and match. These masks do not depend on summation order.
"""

import numpy as np
import pytest

import cnnx
import cnnx.functional as F

NAN, INF = np.float32(np.nan), np.float32(np.inf)


def conv_ref(x, w, stride=1, pad=0):
    """Naive cross-correlation in float64 (NHWC, HWIO)."""
    x = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    m, h, wd, _ = x.shape
    fh, fw, _, co = w.shape
    oh, ow = (h - fh) // stride + 1, (wd - fw) // stride + 1
    y = np.zeros((m, oh, ow, co))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride : i * stride + fh, j * stride : j * stride + fw, :]
            with np.errstate(invalid="ignore", over="ignore"):
                y[:, i, j, :] = np.einsum("mhwc,hwco->mo", patch, w.astype(np.float64))
    return y


def pool_ref(x, k, op):
    m, h, w, c = x.shape
    y = np.zeros((m, h // k, w // k, c))
    for i in range(h // k):
        for j in range(w // k):
            win = x[:, i * k : (i + 1) * k, j * k : (j + 1) * k, :].astype(np.float64)
            with np.errstate(invalid="ignore"):
                y[:, i, j, :] = op(win, axis=(1, 2))
    return y


def same_specials(got, want):
    """NaN where want is NaN, the same infinities, finite values close."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4, atol=1e-4)


def poisoned(rng, shape, n_nan=2, n_pinf=2, n_ninf=1):
    x = rng.uniform(0.5, 1.5, shape).astype(np.float32) * rng.choice([-1, 1], shape)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, n_nan + n_pinf + n_ninf, replace=False)
    flat[idx[:n_nan]] = NAN
    flat[idx[n_nan : n_nan + n_pinf]] = INF
    flat[idx[n_nan + n_pinf :]] = -INF
    return x


# ------------------------------------------------------------ NaN and Inf


@pytest.mark.parametrize(
    "shape, stride, pad, cout",
    [
        ((2, 9, 9, 3), 1, 0, 4),  # implicit GEMM, few channels
        ((1, 8, 8, 40), 1, 1, 40),  # wider
        ((2, 7, 7, 5), 2, 1, 3),  # strided, padded
        ((1, 6, 6, 8), 1, 0, 64),  # 1x1 below via fh=1
    ],
)
def test_conv2d_propagates_nan_and_inf(isa, rng, shape, stride, pad, cout):
    fh = 1 if cout == 64 else 3
    x = poisoned(rng, shape)
    w = rng.uniform(0.5, 1.5, (fh, fh, shape[3], cout)).astype(np.float32)
    same_specials(F.conv2d(x, w, stride=stride, padding=pad), conv_ref(x, w, stride, pad))


def test_conv2d_backward_with_nan_does_not_crash(isa, rng):
    x = poisoned(rng, (2, 7, 7, 3))
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    dy = poisoned(rng, (2, 5, 5, 4), 1, 1, 1)
    dx, dw, db = F.conv2d_backward(dy, x, w)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (4,)
    # a NaN in dy reaches db of its channel; db has no other source of NaN
    with np.errstate(invalid="ignore"):
        want_db = dy.astype(np.float64).sum(axis=(0, 1, 2))
    same_specials(db, want_db)
    assert np.isnan(dw).any() and np.isnan(dx).any()


def test_pooling_propagates_nan_and_inf(isa, rng):
    x = poisoned(rng, (2, 8, 8, 19), 4, 3, 3)
    same_specials(F.max_pool2d(x, 2), pool_ref(x, 2, np.max))  # NaN in a window -> NaN
    same_specials(F.avg_pool2d(x, 2), pool_ref(x, 2, np.mean))
    same_specials(F.adaptive_avg_pool2d(x, 4), pool_ref(x, 2, np.mean))
    same_specials(F.adaptive_max_pool2d(x, 4), pool_ref(x, 2, np.max))
    with np.errstate(invalid="ignore"):
        same_specials(F.global_avg_pool2d(x), x.astype(np.float64).mean(axis=(1, 2)))
    dy = np.ones((2, 4, 4, 19), np.float32)
    for f in (F.max_pool2d_backward, F.avg_pool2d_backward):
        assert np.all(np.isfinite(f(dy, x, 2)))  # x's NaN does not leak into dx of a finite dy


def test_dense_and_matmul_propagate_nan_and_inf(isa, rng):
    x = poisoned(rng, (7, 33), 2, 2, 2)
    w = rng.uniform(0.5, 1.5, (33, 17)).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        want = x.astype(np.float64) @ w.astype(np.float64)
    same_specials(F.dense(x, w), want)
    same_specials(F.matmul(x, w), want)
    with np.errstate(invalid="ignore", over="ignore"):
        same_specials(
            F.dense_backward(np.ones((7, 17), np.float32), x, w)[1],
            x.astype(np.float64).T @ np.ones((7, 17)),
        )


def test_relu_propagates_nan(isa):
    x = np.array([np.nan, np.inf, -np.inf, 1, -1, 0] * 11, np.float32)
    y = F.relu(x)
    same_specials(y, np.where(np.isnan(x), np.nan, np.maximum(x, 0)))  # NaN stays NaN (PyTorch)


def test_fused_relu_propagates_nan(isa, rng):
    """The ReLU fused into dense and conv2d keeps NaN too, on every ISA."""
    x = poisoned(rng, (5, 40), 3, 0, 0)
    w = rng.uniform(0.5, 1.5, (40, 48)).astype(np.float32)
    y = F.dense(x, w, activation="relu")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(F.dense(x, w)))
    xc = poisoned(rng, (1, 6, 6, 8), 1, 0, 0)
    wc = rng.uniform(0.5, 1.5, (3, 3, 8, 16)).astype(np.float32)
    np.testing.assert_array_equal(
        np.isnan(F.conv2d(xc, wc, activation="relu")), np.isnan(F.conv2d(xc, wc))
    )


def test_activations_and_softmax_with_specials(isa):
    x = np.array([np.nan, np.inf, -np.inf, 3.0, -3.0, 0.0] * 3, np.float32)
    same_specials(
        F.sigmoid(x), np.where(np.isnan(x), np.nan, 1 / (1 + np.exp(-x.astype(np.float64))))
    )
    same_specials(F.tanh(x), np.tanh(x.astype(np.float64)))
    rows = np.array([[np.nan, 1, 2], [1, 2, 3], [-np.inf, 1, 2], [1e30, 1, 2]], np.float32)
    p = F.softmax(rows)
    assert np.isnan(p[0]).all()  # a NaN poisons its row only
    np.testing.assert_allclose(p[1].sum(), 1, rtol=1e-6)
    np.testing.assert_allclose(p[2], [0, 0.26894143, 0.7310586], rtol=1e-5)
    np.testing.assert_allclose(p[3], [1, 0, 0], atol=1e-7)
    loss, g = F.softmax_cross_entropy(rows, [0, 1, 2, 0])
    assert np.isnan(loss) and np.isnan(g[0]).all() and np.isfinite(g[1:]).all()


def test_batch_norm_and_training_with_nan_do_not_crash(rng):
    x = poisoned(rng, (4, 5, 5, 3), 1, 1, 0)
    y = F.batch_norm(x, np.ones(3, np.float32), np.zeros(3, np.float32))
    y = y[0] if isinstance(y, tuple) else y
    assert np.isnan(y).any()
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, activation="relu"),
            cnnx.BatchNormalization(),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(3, activation="softmax"),
        ],
        input_shape=(8, 8, 2),
    )
    model.compile("sgd", "cross_entropy")
    xb = rng.standard_normal((6, 8, 8, 2)).astype(np.float32)
    xb[0, 3, 3, 1] = np.nan
    loss = model.train_on_batch(xb, np.array([0, 1, 2, 0, 1, 2]))
    assert np.isnan(loss)
    assert np.isnan(model.predict(xb)).any()
    model.store.params[...] = np.inf
    assert model.predict(xb).shape == (6, 3)


# ---------------------------------------------- layouts other than C float32


def layouts(x):
    """Same values as x, in many memory layouts and dtypes."""
    out = {
        "fortran": np.asfortranarray(x),
        "reversed": np.ascontiguousarray(x[::-1])[::-1],
        "strided": np.repeat(x, 2, axis=-1)[..., ::2],
        "transposed-view": np.ascontiguousarray(np.swapaxes(x, 0, -1)).swapaxes(0, -1),
        "float64": x.astype(np.float64),
        "big-endian": x.astype(">f4"),
        "unaligned": np.frombuffer(bytearray(b"\0" + x.tobytes()), np.float32, x.size, 1).reshape(
            x.shape
        ),  # 1-byte offset: misaligned floats
    }
    ro = x.copy()
    ro.flags.writeable = False
    out["read-only"] = ro
    if x.ndim >= 2:
        out["list"] = x.tolist()
    return out


def check_layouts(f, args, which):
    """f(*args) with args[i] (i in which) replaced by each layout == f(*args)."""
    want = f(*args)
    for i in which:
        for name, v in layouts(args[i]).items():
            a = list(args)
            a[i] = v
            got = f(*a)
            for g, w in zip(
                got if isinstance(got, tuple) else (got,),
                want if isinstance(want, tuple) else (want,),
            ):
                if w is None:
                    assert g is None
                    continue
                assert g.dtype == np.float32 and g.flags.c_contiguous, name
                np.testing.assert_array_equal(g, w, err_msg=f"argument {i}, layout {name}")


def test_conv2d_accepts_any_layout(rng):
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    check_layouts(
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding="same"), (x, w, b), (0, 1, 2)
    )
    dy = rng.standard_normal((2, 4, 6, 5)).astype(np.float32)
    check_layouts(
        lambda dy, x, w: F.conv2d_backward(dy, x, w, stride=(2, 1), padding="same"),
        (dy, x, w),
        (0, 1, 2),
    )


def test_pooling_accepts_any_layout(rng):
    x = rng.standard_normal((2, 6, 7, 5)).astype(np.float32)
    check_layouts(lambda x: F.max_pool2d(x, 3, 2, 1), (x,), (0,))
    check_layouts(lambda x: F.avg_pool2d(x, 2, 1), (x,), (0,))
    check_layouts(lambda x: F.adaptive_avg_pool2d(x, (4, 3)), (x,), (0,))
    check_layouts(lambda x: F.adaptive_max_pool2d(x, 5), (x,), (0,))
    check_layouts(F.global_avg_pool2d, (x,), (0,))
    dy = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    check_layouts(lambda dy, x: F.max_pool2d_backward(dy, x, 3, 2, 1), (dy, x), (0, 1))
    dy2 = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    check_layouts(lambda dy, x: F.adaptive_max_pool2d_backward(dy, x, (4, 3)), (dy2, x), (0, 1))


def test_dense_matmul_and_activations_accept_any_layout(rng):
    x = rng.standard_normal((6, 9)).astype(np.float32)
    w = rng.standard_normal((9, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    check_layouts(lambda x, w, b: F.dense(x, w, b, activation="relu"), (x, w, b), (0, 1, 2))
    check_layouts(F.matmul, (x, w), (0, 1))
    dy = rng.standard_normal((6, 4)).astype(np.float32)
    check_layouts(F.dense_backward, (dy, x, w), (0, 1, 2))
    check_layouts(F.relu, (x,), (0,))
    check_layouts(lambda x: F.softmax(x, axis=0), (x,), (0,))
    check_layouts(lambda x: F.softmax_cross_entropy(x, np.arange(6) % 9)[1], (x,), (0,))


def test_integer_and_bool_inputs_convert(rng):
    xi = rng.integers(-3, 4, (1, 5, 5, 2))
    w = rng.standard_normal((3, 3, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(F.conv2d(xi, w), F.conv2d(xi.astype(np.float32), w))
    xb = xi > 0
    np.testing.assert_array_equal(F.max_pool2d(xb, 2), F.max_pool2d(xb.astype(np.float32), 2))


def test_model_accepts_any_layout(rng):
    cnnx.set_seed(3)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, padding="same", activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(3),
        ],
        input_shape=(6, 6, 2),
    )
    x = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
    want = model.predict(x)
    for name, v in layouts(x).items():
        np.testing.assert_array_equal(model.predict(v), want, err_msg=name)
    # training on a Fortran-order batch takes exactly the same step
    model.compile(cnnx.optim.SGD(lr=0.1), "cross_entropy")
    y = np.array([0, 1, 2, 0, 1])
    start = model.store.params.copy()
    l1 = model.train_on_batch(x, y)
    p1 = model.store.params.copy()
    model.store.params[...] = start
    model.optimizer = None
    model.compile(cnnx.optim.SGD(lr=0.1), "cross_entropy")
    l2 = model.train_on_batch(np.asfortranarray(x), list(y))
    assert l1 == l2
    np.testing.assert_array_equal(model.store.params, p1)


def test_empty_dimensions_work(rng):
    """Zero-sized batches and n_in = 0 give the empty-sum results, like NumPy."""
    np.testing.assert_array_equal(
        F.dense(np.zeros((5, 0), np.float32), np.zeros((0, 3), np.float32)), np.zeros((5, 3))
    )
    dx, dw, db = F.dense_backward(
        np.ones((5, 3), np.float32), np.zeros((5, 0), np.float32), np.zeros((0, 3), np.float32)
    )
    assert dx.shape == (5, 0) and dw.shape == (0, 3)
    np.testing.assert_array_equal(db, np.full(3, 5.0))
    assert F.conv2d(
        np.zeros((0, 5, 5, 2), np.float32), np.ones((3, 3, 2, 4), np.float32)
    ).shape == (0, 3, 3, 4)
    assert F.max_pool2d(np.zeros((0, 4, 4, 2), np.float32), 2).shape == (0, 2, 2, 2)
    np.testing.assert_array_equal(
        F.matmul(np.ones((3, 0), np.float32), np.ones((0, 2), np.float32)), np.zeros((3, 2))
    )
