"""Preprocessing and augmentation layers: every transform against a NumPy
reference for a fixed seed (the draws, the matrix and the resampling
recomputed here independently), on every ISA; identity at inference, seed
repeatability, compiled plans vs layer by layer, adjoint backward, ONNX
export, the Keras tutorials' idioms and bad input."""

import numpy as np
import pytest

import cnnx
from cnnx import _core

FILLS = ["reflect", "wrap", "constant", "nearest"]


# ---- the NumPy reference ----------------------------------------------------------


def _u(seed, i, k):
    return _core.augment_uniform(seed, i, k)


def _draw(lo, hi, seed, i, k):
    lo, hi = float(np.float32(lo)), float(np.float32(hi))
    return lo + (hi - lo) * _u(seed, i, k)


def ref_transform(layer, shape, seed, i):
    """(kind, parameters) image i gets, from the layer's own arguments (Keras's formulas)."""
    h, w, _ = shape
    if isinstance(layer, cnnx.RandomFlip):
        hor = layer.mode in ("horizontal", "horizontal_and_vertical")
        ver = layer.mode in ("vertical", "horizontal_and_vertical")
        return "flip", (hor and _u(seed, i, 0) < 0.5, ver and _u(seed, i, 1) < 0.5)
    if isinstance(layer, cnnx.RandomCrop):
        top = min(int(_u(seed, i, 0) * (h - layer.height + 1)), h - layer.height)
        left = min(int(_u(seed, i, 1) * (w - layer.width + 1)), w - layer.width)
        return "crop", (top, left)
    if isinstance(layer, cnnx.RandomContrast):
        f = layer.factor
        lower, upper = (f, f) if np.ndim(f) == 0 else f
        return "contrast", _draw(1 - lower, 1 + upper, seed, i, 0)

    def rng_of(f):
        return (-f, f) if np.ndim(f) == 0 else tuple(f)

    if isinstance(layer, cnnx.RandomTranslation):
        dy = _draw(*rng_of(layer.height_factor), seed, i, 0) * h
        dx = _draw(*rng_of(layer.width_factor), seed, i, 1) * w
        return "warp", np.array([1, 0, -dx, 0, 1, -dy])
    if isinstance(layer, cnnx.RandomRotation):
        a = _draw(*rng_of(layer.factor), seed, i, 0) * 2 * np.pi
        c, s = np.cos(a), np.sin(a)
        return "warp", np.array(
            [
                c,
                -s,
                ((w - 1) - (c * (w - 1) - s * (h - 1))) / 2,
                s,
                c,
                ((h - 1) - (s * (w - 1) + c * (h - 1))) / 2,
            ]
        )
    if isinstance(layer, cnnx.RandomZoom):
        zy = 1 + _draw(*rng_of(layer.height_factor), seed, i, 0)
        zx = (
            zy if layer.width_factor is None else 1 + _draw(*rng_of(layer.width_factor), seed, i, 1)
        )
        return "warp", np.array([zx, 0, (w - 1) / 2 * (1 - zx), 0, zy, (h - 1) / 2 * (1 - zy)])
    raise AssertionError(layer)


def _map(i, n, mode):
    """Tap indices -> (pixel, inside) under a fill mode (scipy.ndimage's modes)."""
    if mode == "reflect":
        r = np.mod(i, 2 * n)
        return np.where(r >= n, 2 * n - 1 - r, r), np.ones(i.shape, bool)
    if mode == "wrap":
        return np.mod(i, n), np.ones(i.shape, bool)
    inside = (i >= 0) & (i < n)
    return np.clip(i, 0, n - 1), (inside if mode == "constant" else np.ones(i.shape, bool))


def ref_sample(img, m, oh, ow, interp, fill, fill_value):
    """Resample one (h, w, c) image: output (x, y) reads source (m0 x + m1 y + m2,
    m3 x + m4 y + m5). Also returns where nearest rounding is too close to call."""
    h, w, c = img.shape
    y, x = np.meshgrid(
        np.arange(oh, dtype=np.float64), np.arange(ow, dtype=np.float64), indexing="ij"
    )
    xs = m[0] * x + m[1] * y + m[2]
    ys = m[3] * x + m[4] * y + m[5]

    def read(ix, iy):
        cx, inx = _map(ix, w, fill)
        cy, iny = _map(iy, h, fill)
        v = img[cy, cx].astype(np.float64)
        return np.where((inx & iny)[..., None], v, fill_value)

    if interp == "nearest":
        fx, fy = np.floor(xs + 0.5), np.floor(ys + 0.5)
        unclear = (np.abs(xs + 0.5 - np.round(xs + 0.5)) < 1e-4) | (
            np.abs(ys + 0.5 - np.round(ys + 0.5)) < 1e-4
        )
        return read(fx.astype(np.int64), fy.astype(np.int64)), unclear
    fx, fy = np.floor(xs), np.floor(ys)
    tx, ty = (xs - fx)[..., None], (ys - fy)[..., None]
    ix, iy = fx.astype(np.int64), fy.astype(np.int64)
    top = read(ix, iy) * (1 - tx) + read(ix + 1, iy) * tx
    bot = read(ix, iy + 1) * (1 - tx) + read(ix + 1, iy + 1) * tx
    return top * (1 - ty) + bot * ty, np.zeros((oh, ow), bool)


def ref_forward(layer, x, seed, training=True):
    """The layer's output for batch x under seed, and a mask of pixels to skip."""
    n, h, w, c = x.shape
    outs, skips = [], []
    for i in range(n):
        img = x[i]
        skip = None
        if not training:
            if isinstance(layer, cnnx.RandomCrop):
                oh, ow = layer.height, layer.width
                ch, cw = min(h, int(w * oh / ow)), min(w, int(h * ow / oh))
                top, left = (h - ch) // 2, (w - cw) // 2
                sy, sx = ch / oh, cw / ow
                m = [sx, 0, 0.5 * sx - 0.5 + left, 0, sy, 0.5 * sy - 0.5 + top]
                out, skip = ref_sample(img, m, oh, ow, "bilinear", "nearest", 0.0)
            else:
                out = img
        else:
            kind, p = ref_transform(layer, (h, w, c), seed, i)
            if kind == "flip":
                out = img[:, ::-1] if p[0] else img
                out = out[::-1] if p[1] else out
            elif kind == "crop":
                out = img[p[0] : p[0] + layer.height, p[1] : p[1] + layer.width]
            elif kind == "contrast":
                mean = img.astype(np.float64).mean(axis=(0, 1))
                out = np.clip((img - mean) * p + mean, *layer.value_range)
            else:
                out, skip = ref_sample(
                    img, p, h, w, layer.interpolation, layer.fill_mode, layer.fill_value
                )
        outs.append(out)
        skips.append(np.zeros(out.shape[:2], bool) if skip is None else skip)
    return np.stack(outs).astype(np.float32), np.stack(skips)


def _check(layer, x, seed=1234, training=True, atol=2e-5):
    layer.build(x.shape[1:])
    got = _core.augment_forward(layer.spec, x, seed, training, 0)
    ref, skip = ref_forward(layer, x, seed, training)
    assert got.shape == ref.shape
    keep = ~np.broadcast_to(skip[..., None], ref.shape)
    scale = max(1.0, float(np.abs(x).max()))
    np.testing.assert_allclose(got[keep], ref[keep], rtol=0, atol=atol * scale)
    assert keep.mean() > 0.99
    return got


def _images(rng, n=6, h=13, w=17, c=1):
    return rng.random((n, h, w, c)).astype(np.float32)


# ---- each transform against the reference --------------------------------------------


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
@pytest.mark.parametrize(
    "make",
    [
        lambda f, i: cnnx.RandomTranslation(
            0.3, (-0.5, 0.2), fill_mode=f, interpolation=i, fill_value=0.25
        ),
        lambda f, i: cnnx.RandomRotation(0.5, fill_mode=f, interpolation=i, fill_value=-1.0),
        lambda f, i: cnnx.RandomZoom((-0.4, 0.6), fill_mode=f, interpolation=i),
        lambda f, i: cnnx.RandomZoom(0.3, (-0.2, 0.9), fill_mode=f, interpolation=i, fill_value=2),
    ],
    ids=["translate", "rotate", "zoom", "zoom_hw"],
)
def test_geometric_matches_numpy(isa, rng, make, interp, fill, c):
    _check(make(fill, interp), _images(rng, n=5, c=c, w=21))


@pytest.mark.parametrize("fill", FILLS)
def test_translation_of_wide_rows_matches_numpy(isa, rng, fill):
    """Rows of 70 pixels shifted by at most 2: the fast path for shifts (plain
    loads in the middle, the fill modes at both ends) on every ISA."""
    _check(
        cnnx.RandomTranslation(0.4, 0.03, fill_mode=fill, fill_value=0.25),
        _images(rng, n=8, h=9, w=70),
    )


def test_translation_adjoint_on_wide_rows(rng):
    layer = cnnx.RandomTranslation(0.4, 0.03, fill_mode="reflect")
    x = rng.random((4, 9, 70, 1)).astype(np.float32)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    assert float(np.sum(dy.astype(np.float64) * y)) == pytest.approx(
        float(np.sum(dx.astype(np.float64) * x)), rel=1e-4, abs=1e-4
    )


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
@pytest.mark.parametrize("c", [1, 3])
def test_flip_matches_numpy(isa, rng, mode, c):
    got = _check(cnnx.RandomFlip(mode), _images(rng, n=12, c=c), atol=0)
    assert got.shape == (12, 13, 17, c)


@pytest.mark.parametrize("c", [1, 4])
def test_crop_matches_numpy(isa, rng, c):
    x = _images(rng, c=c)
    _check(cnnx.RandomCrop(9, 11), x, atol=0)
    _check(cnnx.RandomCrop(13, 17), x, atol=0)  # the whole image


@pytest.mark.parametrize("hw", [(9, 11), (13, 8), (7, 17), (13, 17), (5, 5)])
def test_crop_at_inference_is_kerass_centred_resize(isa, rng, hw):
    _check(cnnx.RandomCrop(*hw), _images(rng, c=2), training=False)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize(
    "factor,value_range", [(0.5, (0, 1)), ((0.9, 2.0), (0.2, 0.8)), (0.3, (0, 255))]
)
def test_contrast_matches_numpy(isa, rng, c, factor, value_range):
    _check(cnnx.RandomContrast(factor, value_range=value_range), _images(rng, c=c))


def test_transforms_match_the_draws():
    """The C++ transform of image i is the one the formulas give from its draws."""
    layer = cnnx.RandomRotation((-0.2, 0.3))
    layer.build((10, 12, 1))
    for i in range(5):
        t = _core.augment_transform(layer.spec, 99, i)
        np.testing.assert_allclose(
            t["matrix"], ref_transform(layer, (10, 12, 1), 99, i)[1], rtol=1e-12, atol=1e-12
        )
    draws = np.array([_u(5, i, 0) for i in range(20000)])
    assert 0 <= draws.min() and draws.max() < 1 and abs(draws.mean() - 0.5) < 0.01


def test_slices_of_a_batch_get_the_same_transforms(rng):
    """Image i's transform depends only on (seed, i): the training step's thread
    slices (first = i0) give the whole batch's result."""
    layer = cnnx.RandomRotation(0.2)
    layer.build((13, 17, 1))
    x = _images(rng, n=9)
    whole = _core.augment_forward(layer.spec, x, 7, True, 0)
    parts = np.concatenate(
        [
            _core.augment_forward(layer.spec, x[:4], 7, True, 0),
            _core.augment_forward(layer.spec, x[4:], 7, True, 4),
        ]
    )
    np.testing.assert_array_equal(whole, parts)


# ---- the layers in models --------------------------------------------------------------


def _aug_model(head_seed=0, aug=True):
    cnnx.set_seed(head_seed)
    layers = (
        [
            cnnx.RandomFlip("horizontal"),
            cnnx.RandomTranslation(0.1, 0.1),
            cnnx.RandomRotation(0.05),
            cnnx.RandomZoom(0.1),
            cnnx.RandomContrast(0.2, (0, 1)),
        ]
        if aug
        else []
    )
    return cnnx.Sequential(
        layers
        + [cnnx.Conv2D(4, 3, activation="relu"), cnnx.MaxPool2D(2), cnnx.Flatten(), cnnx.Dense(5)],
        input_shape=(12, 12, 1),
    )


def test_identity_at_inference(rng):
    x = _images(rng, h=12, w=12)
    with_aug, without = _aug_model(aug=True), _aug_model(aug=False)
    without.set_weights(with_aug.get_weights())
    np.testing.assert_array_equal(with_aug.predict(x), without.predict(x))
    np.testing.assert_array_equal(with_aug.forward(x, training=False), without.predict(x))
    for layer in with_aug.layers[:5]:
        assert layer(x, training=False) is x
        assert not np.array_equal(layer(x, training=True), x)


def test_training_step_runs_compiled_and_equals_layer_by_layer(rng, monkeypatch):
    """One C++ call per step with augmentation in front, and the same numbers as
    the layer-by-layer path (same seeds from cnnx.set_seed)."""
    x = _images(rng, n=16, h=12, w=12)
    y = rng.integers(0, 5, 16)
    results = []
    for plan in ("1", "0"):
        monkeypatch.setenv("CNNX_PLAN", plan)
        m = _aug_model()
        m.compile(
            cnnx.optim.SGD(0.1, momentum=0.9),
            cnnx.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        if plan == "1":
            assert m._training_plan() is not None
        cnnx.set_seed(5)
        losses = [m.train_on_batch(x, y) for _ in range(3)]
        results.append((losses, m.store.params.copy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


def test_seed_repeatability(rng):
    x = _images(rng, n=32, h=12, w=12)
    y = rng.integers(0, 5, 32)
    runs = []
    for _ in range(2):
        m = _aug_model()
        m.compile("adam", cnnx.losses.SparseCategoricalCrossentropy(from_logits=True))
        cnnx.set_seed(11)
        m.fit(x, y, epochs=2, batch_size=8, verbose=0)
        runs.append(m.store.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    # a layer's own seed= repeats whatever the global generator does
    a, b = cnnx.RandomRotation(0.2, seed=3), cnnx.RandomRotation(0.2, seed=3)
    cnnx.set_seed(1)
    ya = a(x, training=True)
    cnnx.set_seed(2)
    np.testing.assert_array_equal(ya, b(x, training=True))
    assert not np.array_equal(a(x, training=True), ya)  # the next call draws anew


@pytest.mark.parametrize(
    "layer",
    [
        cnnx.RandomFlip(),
        cnnx.RandomTranslation(0.2, 0.3, fill_mode="constant"),
        cnnx.RandomRotation(0.3, fill_mode="wrap"),
        cnnx.RandomZoom(0.3, interpolation="nearest"),
        cnnx.RandomCrop(7, 9),
        cnnx.RandomContrast(0.3, (0, 1)),
        cnnx.Rescaling([2.0, -1.0], 0.5),
        cnnx.Normalization(mean=[0.2, 0.1], variance=[4.0, 0.25]),
    ],
    ids=lambda v: type(v).__name__,
)
def test_backward_is_the_adjoint(rng, layer):
    """<dy, f(x)> = <f'(dy), x> for these maps (linear in x for a fixed seed;
    contrast's clipping is a fixed mask, Rescaling's offset a constant)."""
    x = rng.random((3, 10, 12, 2)).astype(np.float32) * 0.5 + 0.25
    cnnx.set_seed(4)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    y0 = (
        layer.forward(np.zeros_like(x), training=False)
        if isinstance(layer, (cnnx.Rescaling, cnnx.Normalization))
        else 0.0
    )
    lhs = float(np.sum(dy.astype(np.float64) * (y - y0)))
    rhs = float(np.sum(dx.astype(np.float64) * x))
    assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-4)


def test_gradient_through_augmentation_after_a_trainable_layer(rng, monkeypatch):
    """An augmentation behind a convolution passes its gradient back: the compiled
    step and the layer path agree."""
    x = rng.random((8, 10, 10, 1)).astype(np.float32)
    y = rng.standard_normal((8, 10, 10, 2)).astype(np.float32)
    grads = []
    for plan in ("1", "0"):
        monkeypatch.setenv("CNNX_PLAN", plan)
        cnnx.set_seed(0)
        m = cnnx.Sequential(
            [
                cnnx.Conv2D(2, 3, padding="same"),
                cnnx.RandomRotation(0.2),
                cnnx.RandomContrast(0.5, (-10, 10)),
                cnnx.Rescaling(2.0),
            ],
            input_shape=(10, 10, 1),
        )
        m.compile(cnnx.optim.SGD(0.1), "mse")
        cnnx.set_seed(1)
        m.train_on_batch(x, y)
        grads.append(m.store.params.copy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_keras_idiom_randomflip_in_the_model(rng):
    """The Keras tutorial's model, only the import changed."""
    data_augmentation = cnnx.Sequential([cnnx.RandomFlip("horizontal"), cnnx.RandomRotation(0.1)])
    inputs = cnnx.Input((16, 16, 3))
    z = data_augmentation(inputs)
    z = cnnx.Rescaling(1.0 / 255)(z)
    z = cnnx.Conv2D(8, 3, activation="relu")(z)
    z = cnnx.GlobalAvgPool2D()(z)
    outputs = cnnx.Dense(1, activation="sigmoid")(z)
    model = cnnx.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = (rng.random((32, 16, 16, 3)) * 255).astype(np.float32)
    yb = (x.mean(axis=(1, 2, 3)) > 127.5).astype(np.float32)[:, None]
    hist = model.fit(x, yb, epochs=2, batch_size=8, verbose=0)
    assert len(hist.history["loss"]) == 2
    assert model.predict(x).shape == (32, 1)
    assert set(model.evaluate(x, yb)) == {"loss", "accuracy"}


def test_save_load_keeps_the_layers(tmp_path, rng):
    x = _images(rng, n=8, h=12, w=12)
    norm = cnnx.Normalization()
    norm.adapt(x)
    m = cnnx.Sequential(
        [
            cnnx.RandomFlip("vertical", seed=3),
            cnnx.RandomCrop(10, 10),
            cnnx.RandomZoom(0.2, (-0.1, 0.3), fill_mode="constant", fill_value=0.5),
            cnnx.RandomContrast((0.1, 0.4), (0, 1)),
            cnnx.Rescaling(2.0, -1.0),
            norm,
            cnnx.Flatten(),
            cnnx.Dense(3),
        ],
        input_shape=(12, 12, 1),
    )
    m.compile("sgd", "mse")
    m.save(tmp_path / "m.cnnx")
    m2 = cnnx.load_model(tmp_path / "m.cnnx")
    np.testing.assert_array_equal(m.predict(x), m2.predict(x))
    for a, b in zip(m.layers, m2.layers):
        assert a.get_config() == b.get_config()
    np.testing.assert_array_equal(m2.layers[5].mean, norm.mean)


# ---- Rescaling and Normalization -----------------------------------------------------


def test_rescaling(isa, rng):
    x = rng.random((4, 5, 6, 3)).astype(np.float32) * 255
    np.testing.assert_allclose(cnnx.Rescaling(1 / 255)(x), x * np.float32(1 / 255), rtol=1e-6)
    np.testing.assert_allclose(
        cnnx.Rescaling([1.0, 2.0, 3.0], [0.0, -1.0, 1.0])(x), x * [1, 2, 3] + [0, -1, 1], rtol=1e-6
    )
    f = rng.random((10, 7)).astype(np.float32)
    np.testing.assert_allclose(
        cnnx.Rescaling(1 / 127.5, offset=-1)(f), f / 127.5 - 1, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("axis,keep", [(-1, (3,)), (None, ()), (1, (1,)), (2, (2,)), (3, (3,))])
def test_normalization_adapt_and_apply(isa, rng, axis, keep):
    x = (rng.standard_normal((50, 4, 5, 3)) * [1, 2, 3] + [0, 5, -2]).astype(np.float32)
    layer = cnnx.Normalization(axis=axis)
    # adapt from a generator of (x, y) batches: the same as from the array
    layer.adapt(((x[i : i + 7], None) for i in range(0, 50, 7)))
    reduce = tuple(a for a in range(4) if a not in keep)
    mean = x.astype(np.float64).mean(axis=reduce, keepdims=True)
    var = x.astype(np.float64).var(axis=reduce, keepdims=True)
    np.testing.assert_allclose(layer.mean, mean.reshape(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.variance, var.reshape(-1), rtol=1e-5)
    ref = (x - mean) / np.maximum(np.sqrt(var), 1e-7)
    np.testing.assert_allclose(layer(x), ref, rtol=1e-5, atol=1e-5)
    other = cnnx.Normalization(axis=axis)
    other.adapt(x, batch_size=13)
    np.testing.assert_allclose(other.mean, layer.mean, rtol=1e-6, atol=1e-7)


def test_normalization_adapt_after_compile_is_seen(rng):
    x = (rng.standard_normal((20, 6, 6, 2)) * 3 + 1).astype(np.float32)
    norm = cnnx.Normalization()
    m = cnnx.Sequential([norm], input_shape=(6, 6, 2))
    np.testing.assert_array_equal(m.predict(x), x)  # mean 0, variance 1 until adapted
    norm.adapt(x)
    out = m.predict(x)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_onnx_export(tmp_path, rng):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import cnnx.onnx

    x = (rng.random((5, 14, 16, 3)) * 255).astype(np.float32)
    norm = cnnx.Normalization(axis=1)
    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [
            cnnx.RandomFlip(),
            cnnx.RandomTranslation(0.1, 0.1),
            cnnx.RandomRotation(0.1),
            cnnx.RandomZoom(0.1),
            cnnx.RandomContrast(0.1),
            cnnx.RandomCrop(12, 15),
            cnnx.Rescaling([1 / 255, 2 / 255, 1 / 128], [0, 0, -1]),
            norm,
            cnnx.Conv2D(4, 3, activation="relu"),
            cnnx.Flatten(),
            cnnx.Normalization(mean=[0.5], variance=[2.0], axis=None),
            cnnx.Dense(3),
        ],
        input_shape=(14, 16, 3),
    )
    norm.adapt(rng.random((10, 12, 15, 3)).astype(np.float32))
    path = cnnx.onnx.export(m, tmp_path / "m.onnx")
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert {"Mul", "Add", "Sub", "Div", "Slice", "Resize"} <= set(ops)
    got = ort.InferenceSession(str(path)).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, m.predict(x), rtol=1e-4, atol=1e-4)
    # random layers alone: an identity graph
    only = cnnx.Sequential([cnnx.RandomFlip(), cnnx.RandomRotation(0.2)], input_shape=(8, 8, 1))
    path = cnnx.onnx.export(only, tmp_path / "id.onnx")
    xi = rng.random((2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(ort.InferenceSession(str(path)).run(None, {"input": xi})[0], xi)


# ---- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,err,match",
    [
        (lambda: cnnx.RandomTranslation(1.5, 0.1), ValueError, "^height_factor:"),
        (lambda: cnnx.RandomTranslation(0.1, (0.3, 0.1)), ValueError, "^width_factor:"),
        (lambda: cnnx.RandomTranslation(-0.2, 0.1), ValueError, "^height_factor:"),
        (lambda: cnnx.RandomTranslation("a", 0.1), TypeError, "^height_factor:"),
        (lambda: cnnx.RandomRotation(float("nan")), ValueError, "^factor:"),
        (lambda: cnnx.RandomRotation((0.2, -0.2)), ValueError, "^factor:"),
        (lambda: cnnx.RandomZoom((-1.0, 0.2)), ValueError, "^height_factor:"),
        (lambda: cnnx.RandomZoom(0.2, (-1.5, 0.1)), ValueError, "^width_factor:"),
        (lambda: cnnx.RandomFlip("diagonal"), ValueError, "^mode:"),
        (lambda: cnnx.RandomRotation(0.1, fill_mode="mirror"), ValueError, "^fill_mode:"),
        (lambda: cnnx.RandomRotation(0.1, interpolation="bicubic"), ValueError, "^interpolation:"),
        (lambda: cnnx.RandomRotation(0.1, fill_value=float("inf")), ValueError, "^fill_value:"),
        (lambda: cnnx.RandomCrop(0, 5), ValueError, "^height:"),
        (lambda: cnnx.RandomCrop(5, 2.5), TypeError, "^width:"),
        (lambda: cnnx.RandomContrast(-0.1), ValueError, "^factor:"),
        (lambda: cnnx.RandomContrast((1.5, 0.1)), ValueError, "^factor:"),
        (lambda: cnnx.RandomContrast(0.1, value_range=(1, 0)), ValueError, "^value_range:"),
        (lambda: cnnx.Rescaling("x"), TypeError, "^scale:"),
        (lambda: cnnx.Rescaling(1.0, float("nan")), ValueError, "^offset:"),
        (lambda: cnnx.Normalization(mean=[1.0]), ValueError, "^mean:"),
        (lambda: cnnx.Normalization(mean=[1.0], variance=[-1.0]), ValueError, "^variance:"),
        (lambda: cnnx.Normalization(axis=1.5), TypeError, "^axis:"),
        (lambda: cnnx.RandomFlip(seed=-1), ValueError, "^seed:"),
    ],
)
def test_bad_arguments_name_themselves(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_bad_shapes_name_themselves(rng):
    with pytest.raises(ValueError, match="^height: the crop height 40 is larger"):
        cnnx.Sequential([cnnx.RandomCrop(40, 10)], input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match="^width:"):
        cnnx.Sequential([cnnx.RandomCrop(10, 29)], input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match="^input_shape:.*expects images"):
        cnnx.Sequential([cnnx.RandomFlip()], input_shape=(28, 28))
    with pytest.raises(ValueError, match="^scale:"):
        cnnx.Sequential([cnnx.Rescaling([1.0, 2.0])], input_shape=(4, 4, 3))
    with pytest.raises(ValueError, match="^axis:"):
        cnnx.Sequential([cnnx.Normalization(axis=4)], input_shape=(4, 4, 3))
    with pytest.raises(ValueError, match="^axis:"):
        cnnx.Sequential([cnnx.Normalization(axis=0)], input_shape=(4, 4, 3))
    with pytest.raises(ValueError, match="^mean:"):
        cnnx.Sequential([cnnx.Normalization(mean=[1, 2], variance=[1, 1])], input_shape=(4, 4, 3))
    norm = cnnx.Normalization()
    with pytest.raises(ValueError, match="^data: holds NaN"):
        norm.adapt(np.full((2, 3, 3, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="^data: no examples"):
        cnnx.Normalization().adapt(iter([]))
    with pytest.raises(TypeError, match="^data:"):
        cnnx.Normalization().adapt(5)
    norm = cnnx.Normalization()
    norm.adapt(np.zeros((2, 3, 3, 1), np.float32))
    with pytest.raises(ValueError, match="^data: expected batches of shape"):
        norm.adapt(np.zeros((2, 4, 3, 1), np.float32))
    layer = cnnx.RandomRotation(0.1)
    with pytest.raises(ValueError, match="^x:"):
        layer.build((5, 5, 1))
        layer(np.zeros((2, 6, 5, 1), np.float32), training=True)
    spec = _core.AugmentSpec()
    with pytest.raises(ValueError, match="augment:"):
        spec.check()  # an empty image


def test_copy_and_pickle_keep_the_spec(rng):
    """A built model with augmentation layers survives copy.deepcopy and pickle."""
    import copy
    import pickle

    x = _images(rng, n=4, h=12, w=12)
    m = cnnx.Sequential(
        [
            cnnx.RandomZoom(0.2, (-0.1, 0.3), fill_mode="constant", fill_value=0.5, seed=2),
            cnnx.RandomRotation(0.1, fill_mode="reflect", seed=4),
            cnnx.Flatten(),
            cnnx.Dense(3),
        ],
        input_shape=(12, 12, 1),
    )
    fields = (
        "kind",
        "h",
        "w",
        "c",
        "oh",
        "ow",
        "horizontal",
        "vertical",
        "same_zoom",
        "fill",
        "interp",
        "fill_value",
        "value_lo",
        "value_hi",
    )
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        for a, b in zip(m.layers[:2], clone.layers[:2]):
            assert a.spec is not b.spec
            for f in fields:
                assert getattr(a.spec, f) == getattr(b.spec, f), f
        np.testing.assert_array_equal(m.predict(x), clone.predict(x))
        s = pickle.loads(pickle.dumps(m.layers[0].spec))
        assert (s.kind, s.fill_value) == (m.layers[0].spec.kind, m.layers[0].spec.fill_value)


def _any_size_net(shape):
    cnnx.set_seed(0)
    return cnnx.Sequential(
        [
            cnnx.RandomFlip("horizontal", seed=1),
            cnnx.RandomRotation(0.1, seed=2),
            cnnx.RandomZoom(0.2, fill_mode="constant", seed=3),
            cnnx.RandomContrast(0.3, (0, 1), seed=4),
            cnnx.Normalization(mean=0.5, variance=0.1),
            cnnx.RandomCrop(8, 8, seed=5),
            cnnx.Rescaling(2.0, -1.0),
            cnnx.Conv2D(4, 3, activation="relu"),
            cnnx.GlobalAvgPool2D(),
            cnnx.Dense(3),
        ],
        input_shape=shape,
    )


@pytest.mark.parametrize("hw", [(12, 12), (9, 17)])
def test_inputs_of_any_size_equal_a_fixed_size_model(rng, hw):
    """Input (None, None, C): a spec per size; training and inference equal a
    model built at that size with the same weights and layer seeds."""
    any_size, fixed = _any_size_net((None, None, 1)), _any_size_net(hw + (1,))
    assert any_size.layers[0].spec is None and any_size.output_shape == (3,)
    x = _images(rng, n=6, h=hw[0], w=hw[1])
    y = rng.integers(0, 3, 6)
    for m in (any_size, fixed):
        m.compile(cnnx.optim.SGD(0.1), "sparse_categorical_crossentropy")
    for _ in range(2):
        assert any_size.train_on_batch(x, y) == pytest.approx(fixed.train_on_batch(x, y), rel=1e-5)
    np.testing.assert_allclose(any_size.predict(x), fixed.predict(x), rtol=1e-5, atol=1e-6)
    # layer by layer (no plan) takes the same per-size spec
    np.testing.assert_allclose(any_size.layers[1].forward(x, training=True).shape, x.shape)
    with pytest.raises(ValueError, match="height"):
        any_size.predict(_images(rng, n=2, h=6, w=12))


def test_normalization_over_an_axis_of_any_size_is_refused():
    with pytest.raises(ValueError, match="axis"):
        cnnx.Sequential([cnnx.Normalization(axis=1)], input_shape=(None, None, 1))
