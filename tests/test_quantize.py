"""cnnx.quantize: int8 models against the float model (within quantization
error), the compiled int8 plan against an op-by-op reference (bit for bit,
on every ISA), save/load, QDQ export run by ONNX Runtime (byte-exact where
the semantics match), and bad input."""

import warnings

import numpy as np
import pytest

import cnnx
from cnnx import _core
from cnnx.graph.ir import OpKind
from cnnx.quant import QuantizationWarning, QuantizedModel
from cnnx.quant.reference import run_graph
from cnnx.teaching import lenet5, small_resnet


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def data(shape, n=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)


def logits_model(builder, **kw):
    """The builder's model without its final softmax (logits are a fairer measure)."""
    cnnx.set_seed(0)
    m = builder(**kw)
    m.layers[-1].activation = None
    return m


def randomize_bn(model, seed=1):
    from cnnx.layers.base import walk

    rng = np.random.default_rng(seed)
    for layer, _ in walk(model.layers):
        if type(layer).__name__ == "BatchNormalization":
            c = layer.buffers["moving_mean"].shape
            layer.buffers["moving_mean"][...] = rng.normal(0, 0.2, c)
            layer.buffers["moving_var"][...] = rng.uniform(0.5, 2.0, c)
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, c)
            layer.params["beta"][...] = rng.normal(0, 0.2, c)


def inception_like():
    """A functional model with concatenation, a residual add of differently
    scaled branches, average pooling and a global average pool."""
    x = cnnx.Input((12, 12, 4))
    a = cnnx.Conv2D(8, 3, padding="same", activation="relu")(x)
    b1 = cnnx.Conv2D(6, 1, activation="relu")(a)
    b2 = cnnx.Conv2D(5, 3, padding="same")(a)
    b3 = cnnx.AvgPool2D(3, strides=1, padding="same")(a)
    c = cnnx.Concatenate()([b1, b2, b3])
    d = cnnx.Conv2D(19, 1)(c)
    e = cnnx.Add()([d, c])
    f = cnnx.MaxPool2D(2)(cnnx.ReLU()(e))
    y = cnnx.Dense(7)(cnnx.GlobalAvgPool2D()(f))
    cnnx.set_seed(3)
    return cnnx.Model(x, y)


MODELS = {
    "lenet": lambda: logits_model(lenet5),
    "small_resnet": lambda: logits_model(small_resnet),
    "small_resnet_gap": lambda: logits_model(small_resnet, head="gap"),
    "inception_like": inception_like,
}


@pytest.fixture(scope="module")
def quantized():
    out = {}
    for name, make in MODELS.items():
        m = make()
        randomize_bn(m)
        x = data(m.input_shape, 96)
        out[name] = (m, cnnx.quantize(m, x[:64]), x[64:])
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_int8_close_to_float(quantized, name):
    m, q, x = quantized[name]
    assert isinstance(q, QuantizedModel)
    yf, yq = m.predict(x), q.predict(x)
    assert yq.shape == yf.shape and yq.dtype == np.float32
    assert rel_l2(yq, yf) < 0.05
    # the quantization really happened (int8 is not the float model in disguise)
    assert not np.array_equal(yq, yf)


@pytest.mark.parametrize("name", list(MODELS))
def test_plan_matches_op_by_op_reference_on_every_isa(quantized, name, isa):
    m, q, x = quantized[name]
    yq = q.predict(x)
    ref, _ = run_graph(q.int8_graph(), [x])
    np.testing.assert_array_equal(yq, ref[0])
    # every batch size and split mode gives the same bytes
    plan = q._inference_plan()
    k = 0  # new images each time: the plan's scratch arena keeps the last run's values
    for mode in (1, 0):
        plan.plan.set_small_batch_mode(mode)
        for n in (1, 3):
            np.testing.assert_array_equal(q.predict(x[k : k + n]), ref[0][k : k + n])
            k += n
    plan.plan.set_small_batch_mode(-1)


def test_int8_results_identical_across_isas(quantized):
    _m, q, x = quantized["inception_like"]
    saved = _core.active_isa()
    outs = []
    try:
        for level in ("generic", "avx2", "avx512"):
            if level == "avx512" and _core.detected_isa() != "avx512":
                continue
            if level == "avx2" and _core.detected_isa() == "generic":
                continue
            _core.set_active_isa(level)
            outs.append(q.predict(x))
    finally:
        _core.set_active_isa(saved)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_lowering_runs_the_int8_kernels(quantized):
    _m, q, _x = quantized["inception_like"]
    kinds = [op.kind for op in q.int8_graph().ops]
    for k in (
        OpKind.quantize,
        OpKind.qconv2d,
        OpKind.qconcat,
        OpKind.qadd,
        OpKind.qpool,
        OpKind.qdense,
    ):
        assert k in kinds
    # one quantize at the input, and no float op at all (the add's ReLU fuses into it)
    assert kinds.count(OpKind.quantize) == 1
    assert not any(k in (OpKind.conv2d, OpKind.dense, OpKind.pool) for k in kinds)
    _m, q, _x = quantized["lenet"]
    assert [p for _, p in q.precision()] == ["int8"] * 4 + ["view"] + ["int8"] * 3


def test_summary_shows_precision(quantized, capsys):
    _m, q, _x = quantized["small_resnet"]
    rows = q.summary()
    out = capsys.readouterr().out
    assert "Precision" in out and "int8" in out
    assert rows[0].precision == "fp32"
    assert all(r.precision == "int8" for r in rows[1:])
    assert rows[1].params == 160


def test_quantized_model_api(quantized, tmp_path):
    m, _q, x = quantized["small_resnet"]
    m.compile(loss="cross_entropy", metrics=["accuracy"])
    q = cnnx.quantize(m, x)
    y = np.random.default_rng(0).integers(0, 10, x.shape[0])
    ev = q.evaluate(x, y)
    assert set(ev) == {"loss", "accuracy"} and np.isfinite(ev["loss"])
    with pytest.raises(TypeError, match="inference only"):
        q.fit(x, y)
    with pytest.raises(TypeError, match="inference only"):
        q.train_on_batch(x, y)
    with pytest.raises(TypeError, match="quantized already"):
        cnnx.quantize(q, x)
    # a snapshot: editing the float model afterwards changes nothing
    before = q.predict(x)
    m.layers[0].params["kernel"] = m.layers[0].params["kernel"] * 2
    np.testing.assert_array_equal(q.predict(x), before)


def test_save_load_round_trip(quantized, tmp_path):
    import struct
    from cnnx import io as cio

    for name in ("lenet", "inception_like"):
        _m, q, x = quantized[name]
        p = tmp_path / f"{name}.cnnx"
        q.save(p)
        assert struct.unpack_from("<I", p.read_bytes(), 8)[0] == cio.FORMAT_VERSION == 2
        r = cnnx.load_model(p)
        assert isinstance(r, QuantizedModel)
        np.testing.assert_array_equal(r.predict(x), q.predict(x))
        assert r.precision() == q.precision()
        assert r.config == q.config


def test_corrupt_quantization_entry_is_refused(quantized, tmp_path):
    import json
    import zlib
    from cnnx import io as cio

    _m, q, _x = quantized["lenet"]
    p = tmp_path / "q.cnnx"
    q.save(p)
    raw = p.read_bytes()
    _magic, version, hlen, dlen, _h, dcrc = cio._PREFIX.unpack_from(raw)
    header = json.loads(raw[cio._PREFIX.size : cio._PREFIX.size + hlen])
    data = raw[cio._PREFIX.size + hlen :]
    header["quantization"]["values"][0][0] = 10**6
    hb = json.dumps(header).encode()
    p.write_bytes(
        cio._PREFIX.pack(cio.MAGIC, version, len(hb), dlen, zlib.crc32(hb), dcrc) + hb + data
    )
    with pytest.raises(ValueError, match="corrupt"):
        cnnx.load_model(p)


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_calibration_methods(quantized, method):
    m, q_minmax, x = quantized["small_resnet"]
    q = cnnx.quantize(m, data(m.input_shape, 64), method=method)
    assert q.config["method"] == method
    yf = m.predict(x)
    assert rel_l2(q.predict(x), yf) < 0.1
    # narrower ranges than min/max on at least one value
    narrower = [
        vid
        for vid, (s, _z) in q.qparams.items()
        if vid in q_minmax.qparams and s < q_minmax.qparams[vid][0] * 0.999
    ]
    assert narrower


def test_percentile_clips_outliers():
    m = cnnx.Sequential([cnnx.Dense(4)], input_shape=(3,))
    x = data((3,), 2000)
    x[0] = 1000.0  # one outlier sample
    q_mm = cnnx.quantize(m, x)
    q_p = cnnx.quantize(m, x, method="percentile", percentile=99.9)
    vin = q_mm.int8_graph().ops[0].attrs["q"]
    vin_p = q_p.int8_graph().ops[0].attrs["q"]
    assert vin_p[0] < vin[0] / 20


def test_exclude_keeps_layers_in_float(quantized):
    _m, _q, x = quantized["lenet"]
    m2 = logits_model(lenet5)
    for i, l in enumerate(m2.layers):
        l.name = f"{type(l).__name__.lower()}{i}"
    q = cnnx.quantize(m2, x, exclude=["dense6"])
    prec = dict(q.precision())
    assert prec["dense6"] == "fp32" and prec["dense5"] == "int8"
    assert rel_l2(q.predict(x), m2.predict(x)) < 0.05
    with pytest.raises(ValueError, match="exclude"):
        cnnx.quantize(m2, x, exclude=["nope"])


def test_python_layer_runs_in_float_op_by_op():
    class Doubler(cnnx.Layer):
        def _build(self, s):
            return s

        def _forward(self, x, training):
            return 2 * x

    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, activation="relu"),
            Doubler(),
            cnnx.Conv2D(3, 3),
            cnnx.Flatten(),
            cnnx.Dense(5),
        ],
        input_shape=(8, 8, 2),
    )
    x = data((8, 8, 2), 32)
    q = cnnx.quantize(m, x)
    assert q._inference_plan() is None  # op by op
    assert [p for _, p in q.precision()] == ["int8", "fp32", "int8", "view", "int8"]
    assert rel_l2(q.predict(x), m.predict(x)) < 0.05


def test_float_only_layers_get_quantize_dequantize_at_their_edges():
    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [
            cnnx.Conv2D(6, 3, activation="tanh"),
            cnnx.Conv2D(4, 3),
            cnnx.Flatten(),
            cnnx.Dense(3, activation="sigmoid"),
        ],
        input_shape=(9, 9, 2),
    )
    x = data((9, 9, 2), 48)
    q = cnnx.quantize(m, x)
    kinds = [op.kind.name for op in q.int8_graph().ops]
    # conv (float store) -> tanh in float -> quantize -> conv -> dense (float store) -> sigmoid
    assert kinds == [
        "quantize",
        "qconv2d",
        "activation",
        "quantize",
        "qconv2d",
        "qdense",
        "activation",
    ]
    assert rel_l2(q.predict(x), m.predict(x)) < 0.05


def test_dense_only_model():
    cnnx.set_seed(0)
    m = cnnx.Sequential([cnnx.Dense(32, activation="relu"), cnnx.Dense(8)], input_shape=(20,))
    x = data((20,), 200)
    q = cnnx.quantize(m, x)
    assert rel_l2(q.predict(x), m.predict(x)) < 0.03


def test_model_taking_any_size(tmp_path):
    """Calibrated at one size, the int8 model runs at others (plan = op-by-op
    reference, close to the float model), and survives save/load."""
    cnnx.set_seed(0)
    L = cnnx.layers
    m = cnnx.Sequential(
        [
            L.Conv2D(8, 3, activation="relu", padding="same"),
            L.Conv2D(8, 3, activation="relu"),
            L.GlobalAvgPool2D(),
            L.Dense(4),
        ],
        input_shape=(None, None, 3),
    )
    q = cnnx.quantize(m, data((12, 12, 3), 32))
    assert all(p == "int8" for _, p in q.precision() if p not in ("fused", "view"))
    q.save(tmp_path / "q.cnnx")
    back = cnnx.load_model(tmp_path / "q.cnnx")
    for size in (12, 20, 7):
        x = data((size, size, 3), 8, seed=size)
        got = q.predict(x)
        np.testing.assert_array_equal(got, q.forward(x))
        np.testing.assert_array_equal(got, back.predict(x))
        assert rel_l2(got, m.predict(x)) < 0.05


def test_deep_functional_model():
    """quantize copies the float model without recursing along its graph
    (a deepcopy of a 300-layer chain overflows Python's stack; ResNet-50
    imported from ONNX did)."""
    cnnx.set_seed(0)
    x = cnnx.Input((6,))
    h = x
    for _ in range(300):
        h = cnnx.Dense(6)(h)
    m = cnnx.Model(x, h)
    m.compile(loss="mse")
    data_x = data((6,), 32)
    q = cnnx.quantize(m, data_x)
    assert q.loss == m.loss
    got = q.predict(data_x)
    np.testing.assert_array_equal(got, q.forward(data_x))
    assert np.isfinite(got).all() and got.shape == m.predict(data_x).shape


# ------------------------------------------------------------------ ONNX


def test_qdq_export_runs_in_onnxruntime(quantized, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    for name in ("lenet", "small_resnet", "inception_like"):
        _m, q, x = quantized[name]
        p = tmp_path / f"{name}.onnx"
        cnnx.onnx.export(q, p)
        s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        y = s.run(None, {"input": x})[0]
        yq = q.predict(x)
        # int32 biases (ONNX) vs float biases (cnnx), float adds in ORT: a few steps apart
        assert rel_l2(y, yq) < 0.02, name


def test_qdq_export_is_byte_exact_with_onnxruntime_qlinearconv(tmp_path):
    """Without biases and with uint8 outputs, cnnx's store and QLinearConv
    compute the same float32 operations: the outputs agree exactly."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    cnnx.set_seed(1)
    m = cnnx.Sequential(
        [
            cnnx.Conv2D(16, 3, padding="same", use_bias=False, activation="relu"),
            cnnx.Conv2D(24, 3, strides=2, use_bias=False),
            cnnx.MaxPool2D(2),
        ],
        input_shape=(16, 16, 3),
    )
    x = data((16, 16, 3), 32)
    q = cnnx.quantize(m, x)
    p = tmp_path / "q.onnx"
    cnnx.onnx.export(q, p)
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    s = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    assert "QLinearConv" in ops
    np.testing.assert_array_equal(s.run(None, {"input": x})[0], q.predict(x))


# ------------------------------------------------------------------ bad input


def test_calibration_data_of_the_wrong_shape(quantized):
    m, _q, _x = quantized["lenet"]
    with pytest.raises(ValueError, match="calibration_data"):
        cnnx.quantize(m, data((28, 28, 1), 8))
    with pytest.raises(ValueError, match="calibration_data"):
        cnnx.quantize(m, np.zeros((0, 32, 32, 3), np.float32))
    with pytest.raises(TypeError, match="calibration_data"):
        cnnx.quantize(m, None)


def test_nan_or_inf_in_calibration_data(quantized):
    m, _q, _x = quantized["lenet"]
    x = data(m.input_shape, 8)
    x[5, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="calibration_data: sample 5"):
        cnnx.quantize(m, x)
    x[5, 1, 2, 0] = np.inf
    with pytest.raises(ValueError, match="calibration_data: sample 5"):
        cnnx.quantize(m, x)


def test_a_layer_that_overflows_on_the_calibration_data_is_named():
    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [cnnx.Conv2D(4, 3, name="c1"), cnnx.Conv2D(4, 3, name="c2"), cnnx.Flatten(), cnnx.Dense(2)],
        input_shape=(8, 8, 1),
    )
    m.get_layer("c2").params["kernel"] = np.full((3, 3, 4, 4), 3e37, np.float32)
    with pytest.raises(ValueError, match="'c2'"):
        cnnx.quantize(m, data((8, 8, 1), 8))


def test_model_with_no_quantizable_layer():
    m = cnnx.Sequential([cnnx.MaxPool2D(2), cnnx.Flatten(), cnnx.Softmax()], input_shape=(4, 4, 2))
    with pytest.raises(ValueError, match="no layer has an int8 kernel"):
        cnnx.quantize(m, data((4, 4, 2), 8))


def test_saturation_prone_layer_stays_in_float_with_a_warning():
    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, activation="relu", name="dead"),
            cnnx.Conv2D(4, 3, name="after"),
            cnnx.Flatten(),
            cnnx.Dense(3, name="head"),
        ],
        input_shape=(8, 8, 1),
    )
    m.get_layer("dead").params["kernel"] = np.zeros((3, 3, 1, 4), np.float32)
    m.get_layer("dead").params["bias"] = -np.ones(4, np.float32)  # relu(-1) = 0 everywhere
    m.get_layer("after").params["bias"] = np.arange(1, 5, dtype=np.float32)
    x = data((8, 8, 1), 16)
    with pytest.warns(QuantizationWarning, match="'dead'.*scale 0"):
        q = cnnx.quantize(m, x)
    prec = dict(q.precision())
    assert prec["after"] == "fp32" and prec["head"] == "int8"
    np.testing.assert_allclose(q.predict(x), m.predict(x), atol=0.05 * np.abs(m.predict(x)).max())


def test_bad_arguments(quantized):
    m, _q, x = quantized["lenet"]
    with pytest.raises(ValueError, match="method"):
        cnnx.quantize(m, x, method="kl")
    with pytest.raises(ValueError, match="percentile"):
        cnnx.quantize(m, x, method="percentile", percentile=20)
    with pytest.raises(ValueError, match="batch_size"):
        cnnx.quantize(m, x, batch_size=0)
    with pytest.raises(TypeError, match="model"):
        cnnx.quantize("lenet", x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cnnx.quantize(m, x, batch_size=7)  # no warning for a healthy model


@pytest.mark.parametrize("c", [8, 16])
@pytest.mark.parametrize("hw", [(28, 28), (7, 9), (2, 3)])
def test_uint8_max_pool_2x2_on_narrow_layers(isa, c, hw):
    """The 2x2 / stride 2 path for 8 and 16 channels (odd sizes drop the last
    row and column, as the floor rule says) against NumPy."""
    import cnnx.functional as F

    h, w = hw
    x = np.random.default_rng(h * w + c).integers(0, 256, (3, h, w, c), dtype=np.uint8)
    y = F.qmax_pool2d(x, 2)
    oh, ow = h // 2, w // 2
    ref = x[:, : 2 * oh, : 2 * ow].reshape(3, oh, 2, ow, 2, c).max(axis=(2, 4))
    np.testing.assert_array_equal(y, ref)


def test_pools_between_float_layers_stay_in_float():
    """An int8 pool reached only from float layers would add a quantize and a
    dequantize and their error, and save nothing: it runs in float32."""
    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [cnnx.Conv2D(4, 3, activation="tanh"), cnnx.MaxPool2D(2), cnnx.Flatten(), cnnx.Softmax()],
        input_shape=(10, 10, 2),
    )
    q = cnnx.quantize(m, data((10, 10, 2), 16))
    assert [p for _, p in q.precision()] == ["int8+fp32", "fp32", "view", "fp32"]
    kinds = [op.kind.name for op in q.int8_graph().ops]
    assert kinds == ["quantize", "qconv2d", "activation", "pool", "activation"]
