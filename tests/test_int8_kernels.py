"""int8 kernels (cnnx.functional.q*): against NumPy references on every ISA,
bit-identical across ISAs, ONNX Runtime's QLinearConv rounding, the
quantization error of a quantized convolution against the float one, and
bad input."""

import numpy as np
import pytest

import cnnx
import cnnx.functional as F
from cnnx import _core

from conftest import supported_isas


# ------------------------------------------------------------- references


def ref_store(acc, x_scale, w_scale, bias=None, activation=None, out_scale=None, out_zero_point=0):
    """The store of cnnx/int8.h in NumPy: float32 constants, one fma (in
    float64: the product of two float32 is exact there), round half to even."""
    acc = np.asarray(acc, np.int64)
    assert np.abs(acc).max(initial=0) < 2**31
    mult = np.float32(x_scale) * np.asarray(w_scale, np.float32)
    offs = np.zeros_like(mult) if bias is None else np.asarray(bias, np.float32)
    u8 = out_scale is not None
    if u8:
        mult = mult / np.float32(out_scale)
        offs = offs / np.float32(out_scale)
    v = (
        acc.astype(np.float32).astype(np.float64) * mult.astype(np.float64)
        + offs.astype(np.float64)
    ).astype(np.float32)
    if u8:
        lo, hi = 0, 255
        if activation in ("relu", "relu6"):
            lo = out_zero_point
        if activation == "relu6":
            six = np.float32(6.0) / np.float32(out_scale)
            hi = min(255, out_zero_point + (255 if six >= 255 else int(np.rint(six))))
        v = np.clip(v, lo - out_zero_point, hi - out_zero_point)
        return (np.rint(v).astype(np.int32) + out_zero_point).astype(np.uint8)
    if activation in ("relu", "relu6"):
        v = np.maximum(v, np.float32(0))
    if activation == "relu6":
        v = np.minimum(v, np.float32(6))
    return v


def ref_conv_acc(x, w, za, stride, pads, dilation, groups):
    """sum (x - za) * w in int64, padding with za (real 0)."""
    n, h, wd, c = x.shape
    kh, kw, cg, co = w.shape
    (pt, pb), (pl, pr) = pads
    sh, sw = stride
    dh, dw = dilation
    xp = np.full((n, h + pt + pb, wd + pl + pr, c), za, np.int64)
    xp[:, pt : pt + h, pl : pl + wd] = x
    xp -= za
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (wd + pl + pr - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, oh, ow, co), np.int64)
    cog = co // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[
                    :,
                    i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                    j * dw : j * dw + (ow - 1) * sw + 1 : sw,
                    g * cg : (g + 1) * cg,
                ]
                out[..., g * cog : (g + 1) * cog] += patch @ w[
                    i, j, :, g * cog : (g + 1) * cog
                ].astype(np.int64)
    return out


def _u8(rng, shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _s8(rng, shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


# ----------------------------------------------------------------- qmatmul


@pytest.mark.parametrize("za", [0, 128, 255])
@pytest.mark.parametrize("out", ["float32", "uint8", "int32"])
def test_qmatmul_matches_reference(isa, za, out):
    rng = np.random.default_rng(za + len(out))
    for m, k, n in [(1, 1, 1), (7, 13, 5), (33, 67, 45), (65, 130, 97), (3, 1031, 17)]:
        a = _u8(rng, (m, k))
        w = _s8(rng, (k, n))
        ws = rng.uniform(0.001, 0.02, n).astype(np.float32)
        b = rng.uniform(-2, 2, n).astype(np.float32)
        for act in (None, "relu", "relu6"):
            kw = {}
            if out == "uint8":
                kw = dict(out_scale=0.3, out_zero_point=(za * 7) % 256)
            elif out == "int32":
                kw = dict(out_dtype="int32")
            bias = None if out == "int32" else b
            got = F.qmatmul(
                a, 0.05, za, w, ws, b=bias, activation=None if out == "int32" else act, **kw
            )
            acc = (a.astype(np.int64) - za) @ w.astype(np.int64)
            if out == "int32":
                assert got.dtype == np.int32
                np.testing.assert_array_equal(got, acc)
                break
            want = ref_store(
                acc, 0.05, ws, bias, act, kw.get("out_scale"), kw.get("out_zero_point", 0)
            )
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{isa} {m}x{k}x{n} {act}")


def test_qmatmul_every_kernel_bit_identical():
    """Each micro-kernel that runs here (including the AVX-VNNI code compiled
    in EVEX form) gives exactly the portable kernel's bytes."""
    rng = np.random.default_rng(1)
    a = _u8(rng, (131, 523))
    w = _s8(rng, (523, 77))
    ws = rng.uniform(0.001, 0.01, 77).astype(np.float32)
    b = rng.uniform(-1, 1, 77).astype(np.float32)
    results = {}
    try:
        for name in _core._qgemm_kernels():
            if not _core._qgemm_kernel_runs(name):
                continue
            _core._set_qgemm_kernel(name)
            p = F.qpack_matmul(w, ws)
            assert p.kernel == name
            results[name] = (
                F.qmatmul(a, 0.02, 131, p, b=b, activation="relu"),
                F.qmatmul(a, 0.02, 131, p, b=b, out_scale=0.1, out_zero_point=3),
            )
    finally:
        _core._set_qgemm_kernel("")
    base = results.pop("u8s8_gemm_4x16_generic")
    assert results, "only the portable kernel runs here"
    for name, (f32, u8) in results.items():
        np.testing.assert_array_equal(f32, base[0], err_msg=name)
        np.testing.assert_array_equal(u8, base[1], err_msg=name)


def test_qmatmul_accumulator_extremes(isa):
    """|acc| close to 2**31 (K = 65536, x = 255, w = -128) stays exact and
    saturates to 0 / 255 through the uint8 store."""
    k = 65536
    a = np.full((2, k), 255, np.uint8)
    a[1, ::2] = 0
    w = np.empty((k, 2), np.int8)
    w[:, 0] = -128
    w[:, 1] = 127
    acc = F.qmatmul(a, 1.0, 0, w, np.ones(2, np.float32), out_dtype="int32")
    want = a.astype(np.int64) @ w.astype(np.int64)
    assert np.abs(want).max() > 2**30
    np.testing.assert_array_equal(acc, want)
    q = F.qmatmul(a, 1.0, 0, w, np.ones(2, np.float32), out_scale=1.0, out_zero_point=128)
    np.testing.assert_array_equal(q, np.where(want > 0, 255, 0))
    with pytest.raises(ValueError, match="w: K = 65537"):
        F.qpack_matmul(np.zeros((65537, 1), np.int8), 1.0)


# ----------------------------------------------------------------- qconv2d

CONV_CASES = [
    # x shape, w shape, stride, padding, dilation, groups
    ((2, 7, 9, 5), (3, 3, 5, 7), 1, "same", 1, 1),
    ((1, 8, 8, 16), (1, 1, 16, 33), 1, "valid", 1, 1),
    ((3, 5, 6, 7), (1, 1, 7, 9), 1, "valid", 1, 1),
    ((1, 9, 7, 12), (1, 1, 12, 20), 2, "valid", 1, 1),
    ((2, 11, 10, 12), (3, 2, 4, 9), (2, 1), ((2, 0), (1, 1)), (1, 2), 3),
    ((1, 12, 13, 3), (7, 7, 3, 8), 2, 3, 1, 1),
    ((1, 9, 9, 8), (3, 3, 1, 8), 1, 1, 1, 8),
    ((2, 10, 7, 19), (5, 3, 1, 19), 2, ((2, 2), (1, 1)), 1, 19),
    ((1, 6, 6, 37), (3, 3, 1, 37), 1, 2, 2, 37),
    ((1, 6, 6, 4), (3, 3, 1, 12), 1, "same", 1, 4),
    ((1, 4, 4, 64), (3, 3, 64, 70), 1, "same", 1, 1),
    ((2, 9, 8, 16), (3, 3, 16, 24), 2, 1, 1, 1),
    ((1, 7, 6, 8), (3, 3, 8, 12), 1, 2, 2, 1),
    ((1, 3, 3, 4), (5, 5, 4, 8), 1, 4, 1, 1),
    ((3, 5, 5, 8), (3, 3, 4, 10), 1, "same", 1, 2),
    ((1, 6, 6, 3), (3, 3, 3, 4), 1, "valid", 1, 1),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_qconv2d_matches_reference(isa, case):
    xs, wsh, stride, padding, dilation, groups = CONV_CASES[case]
    rng = np.random.default_rng(case)
    x, w = _u8(rng, xs), _s8(rng, wsh)
    ws = rng.uniform(0.001, 0.02, wsh[3]).astype(np.float32)
    b = rng.uniform(-2, 2, wsh[3]).astype(np.float32)
    za = [0, 128, 255, 61][case % 4]
    p = F.qpack_conv2d(w, ws, groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    s = cnnx.functional._conv._geometry(xs, wsh, stride, padding, dilation, groups)
    pads = ((s[3][0], s[3][1]), (s[3][2], s[3][3]))
    acc = ref_conv_acc(x, w, za, s[0], pads, s[1], groups)
    got = F.qconv2d(x, 0.04, za, p, out_dtype="int32", **kw)
    np.testing.assert_array_equal(got, acc)
    got = F.qconv2d(x, 0.04, za, p, b=b, activation="relu", out_scale=0.2, out_zero_point=17, **kw)
    np.testing.assert_array_equal(got, ref_store(acc, 0.04, ws, b, "relu", 0.2, 17))
    got = F.qconv2d(x, 0.04, za, w, ws, b=b, activation="relu6", **kw)
    np.testing.assert_array_equal(got, ref_store(acc, 0.04, ws, b, "relu6"))
    algo = F.qconv2d_algorithm(xs, wsh, **kw)
    assert algo == (
        "qdepthwise"
        if groups == xs[3] and groups > 1
        else "qgemm_1x1"
        if wsh[:2] == (1, 1) and stride == 1 and padding == "valid"
        else "qgemm_patches"
    )


def test_qconv2d_bit_identical_across_isas():
    rng = np.random.default_rng(7)
    x = _u8(rng, (2, 14, 14, 32))
    w = _s8(rng, (3, 3, 32, 48))
    wd = _s8(rng, (3, 3, 1, 32))
    ws = rng.uniform(0.001, 0.01, 48).astype(np.float32)
    saved = _core.active_isa()
    outs = []
    try:
        for level in supported_isas():
            _core.set_active_isa(level)
            outs.append(
                (
                    F.qconv2d(
                        x,
                        0.03,
                        100,
                        w,
                        ws,
                        padding="same",
                        stride=2,
                        out_scale=0.5,
                        out_zero_point=9,
                    ),
                    F.qconv2d(
                        x, 0.03, 100, wd, ws[:32], padding="same", groups=32, activation="relu"
                    ),
                )
            )
    finally:
        _core.set_active_isa(saved)
    for got in outs[1:]:
        np.testing.assert_array_equal(got[0], outs[0][0])
        np.testing.assert_array_equal(got[1], outs[0][1])


def test_packed_weights_follow_isa_changes():
    """Weights packed under one ISA are repacked when another one is active."""
    rng = np.random.default_rng(3)
    x, w = _u8(rng, (1, 6, 6, 8)), _s8(rng, (3, 3, 8, 16))
    p = F.qpack_conv2d(w, 0.01)
    y0 = F.qconv2d(x, 0.1, 5, p, padding="same")
    saved = _core.active_isa()
    try:
        _core.set_active_isa("generic")
        y1 = F.qconv2d(x, 0.1, 5, p, padding="same")
        assert p.kernel == "u8s8_gemm_4x16_generic"
    finally:
        _core.set_active_isa(saved)
    np.testing.assert_array_equal(y0, y1)
    assert p.nbytes > 0 and p.scales.shape == (16,) and p.weights is w or p.weights.base is not None


def test_qconv2d_close_to_float_conv(isa):
    """Quantize x (per tensor) and w (per channel), run qconv2d, and compare
    with F.conv2d: every output within the worst-case quantisation error
    sum(|dx||w| + |x||dw| + |dx||dw|), with |dx| <= x_scale/2, |dw| <= w_scale/2."""
    rng = np.random.default_rng(11)
    x = rng.uniform(-1.0, 3.0, (2, 12, 12, 16)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 16, 24)) * 0.2).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, 24).astype(np.float32)
    xs, xz = F.quantization_params(x.min(), x.max())
    xq = F.quantize(x, xs, xz)
    wq, ws = F.quantize_weights(w)
    kw = dict(stride=1, padding="same")
    y = F.qconv2d(xq, xs, xz, wq, ws, b=b, **kw)
    ref = F.conv2d(x, w, b, **kw)
    dx, dw = xs / 2, ws / 2
    bound = (
        F.conv2d(np.abs(x), np.broadcast_to(dw, w.shape), **kw)
        + F.conv2d(np.full_like(x, dx), np.abs(w), **kw)
        + F.conv2d(np.full_like(x, dx), np.broadcast_to(dw, w.shape), **kw)
    )
    err = np.abs(y - ref)
    assert (err <= bound * 1.0001 + 1e-4).all(), float((err - bound).max())
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 0.02
    # Requantised to uint8: at most half an output step more.
    ys, yz = F.quantization_params(ref.min(), ref.max())
    yq = F.qconv2d(xq, xs, xz, wq, ws, b=b, out_scale=ys, out_zero_point=yz, **kw)
    y_back = F.dequantize(yq, ys, yz)
    assert (np.abs(y_back - ref) <= bound * 1.0001 + ys / 2 + 1e-4).all()


def test_qconv2d_matches_onnxruntime_qlinearconv():
    """ONNX Runtime's QLinearConv (uint8 x, int8 per-channel w, uint8 y) gives
    the same bytes: the same scale product x_scale*w_scale/y_scale, one
    rounding of float(acc)*scale (no bias), ties to even, the same clamp."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    x = _u8(rng, (1, 10, 10, 16))
    w = _s8(rng, (3, 3, 16, 24))
    w[w == -128] = -127  # ONNX Runtime's int8 weights are symmetric
    ws = rng.uniform(0.002, 0.01, 24).astype(np.float32)
    xs, xz, ys, yz = 0.05, 131, 0.7, 60
    wt = np.ascontiguousarray(w.transpose(3, 2, 0, 1))  # OIHW
    inits = [
        numpy_helper.from_array(np.array(xs, np.float32), "xs"),
        numpy_helper.from_array(np.array(xz, np.uint8), "xz"),
        numpy_helper.from_array(wt, "w"),
        numpy_helper.from_array(ws, "ws"),
        numpy_helper.from_array(np.zeros(24, np.int8), "wz"),
        numpy_helper.from_array(np.array(ys, np.float32), "ys"),
        numpy_helper.from_array(np.array(yz, np.uint8), "yz"),
    ]
    node = helper.make_node(
        "QLinearConv",
        ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
        ["y"],
        pads=[1, 1, 1, 1],
        strides=[1, 1],
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, None)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
    want = want.transpose(0, 2, 3, 1)
    got = F.qconv2d(x, xs, xz, w, ws, padding=1, out_scale=ys, out_zero_point=yz)
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------- pooling, add, (de)quantize


@pytest.mark.parametrize(
    "shape,pool,stride,padding",
    [
        ((2, 7, 9, 5), 2, None, 0),
        ((1, 8, 8, 67), 3, 2, 1),
        ((1, 5, 6, 130), (3, 2), 1, "same"),
        ((3, 7, 7, 33), 7, None, 0),
    ],
)
def test_qpool_matches_reference(isa, shape, pool, stride, padding):
    rng = np.random.default_rng(2)
    x = _u8(rng, shape)
    ymax = F.qmax_pool2d(x, pool, stride, padding)
    np.testing.assert_array_equal(
        ymax, F.max_pool2d(x.astype(np.float32), pool, stride, padding).astype(np.uint8)
    )
    # Average: sums of (x - zx) over the window's real pixels via a float pool
    # of ones (the pixel count) and of x (the sum), both exact in float32.
    xs, xz, ys, yz = 0.1, 100, 0.07, 30
    ones = np.ones_like(x, np.float32)
    for include in (True, False):
        y = F.qavg_pool2d(
            x,
            xs,
            xz,
            pool,
            stride,
            padding,
            count_include_pad=include,
            out_scale=ys,
            out_zero_point=yz,
        )
        area = F.avg_pool2d(ones, pool, stride, padding, count_include_pad=True)
        cnt = F.avg_pool2d(ones, pool, stride, padding, count_include_pad=False)
        kh, kw = (pool, pool) if isinstance(pool, int) else pool
        n_real = np.rint(area * kh * kw).astype(np.int64)
        s = np.rint(
            F.avg_pool2d(x.astype(np.float32), pool, stride, padding, count_include_pad=True)
            * kh
            * kw
        ).astype(np.int64)
        div = np.full_like(n_real, kh * kw) if include else n_real
        assert np.allclose(cnt * n_real, n_real)  # the float pool agrees on the counts
        mul = (np.float32(xs) / np.float32(ys)) / div.astype(np.float32)
        v = (s - n_real * xz).astype(np.float32) * mul
        want = (np.rint(np.clip(v, -yz, 255 - yz)) + yz).astype(np.uint8)
        np.testing.assert_array_equal(y, want)


def test_qadd_matches_reference(isa):
    rng = np.random.default_rng(4)
    for n in (1, 7, 33, 1000, 70001):
        a, b = _u8(rng, (n,)), _u8(rng, (n,))
        for act, yz in ((None, 255), ("relu", 20)):
            y = F.qadd(a, 0.03, 128, b, 0.05, 0, 0.06, yz, activation=act)
            t = (b.astype(np.float32) - 0) * (np.float32(0.05) / np.float32(0.06))
            v = (
                (a.astype(np.float32) - 128).astype(np.float64)
                * np.float64(np.float32(0.03) / np.float32(0.06))
                + t
            ).astype(np.float32)
            lo = 0 if act else -yz
            want = (np.rint(np.clip(v, lo, 255 - yz)) + yz).astype(np.uint8)
            np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("zp", [0, 128, 255])
def test_quantize_dequantize(isa, zp):
    rng = np.random.default_rng(zp)
    x = rng.uniform(-40, 40, (3, 1001)).astype(np.float32)
    x[0, :41] = 0.25 * (np.arange(41) - 20)  # exact halves of the scale: ties to even
    q = F.quantize(x, 0.125, zp)
    want = np.clip(np.rint(x / np.float32(0.125)) + zp, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(q, want)
    back = F.dequantize(q, 0.125, zp)
    np.testing.assert_array_equal(back, (q.astype(np.float32) - zp) * np.float32(0.125))
    assert back.dtype == np.float32 and back.shape == x.shape


def test_quantization_params_and_weights():
    s, z = F.quantization_params(-1.0, 3.0)
    assert z == 64 and abs(s - 4 / 255) < 1e-7
    assert F.quantization_params(0.5, 2.0)[1] == 0  # widened to include 0
    assert F.quantization_params(-2.0, -0.5)[1] == 255
    assert F.quantization_params(0.0, 0.0) == (1.0, 0)
    w = np.array([[0.5, 0.0, -1.0], [-0.25, 0.0, 0.5]], np.float32)
    q, ws = F.quantize_weights(w)
    np.testing.assert_array_equal(
        ws, np.array([0.5, 1.0, 1.0], np.float32) / np.array([127, 1, 127], np.float32)
    )
    np.testing.assert_array_equal(q, [[127, 0, -127], [-64, 0, 64]])  # -63.5 -> -64, 63.5 -> 64
    assert q.dtype == np.int8


# -------------------------------------------------------------- bad input


def test_bad_input_is_refused():
    x = np.zeros((1, 4, 4, 3), np.uint8)
    w = np.zeros((3, 3, 3, 2), np.int8)
    with pytest.raises(TypeError, match="^x: expected dtype uint8"):
        F.qconv2d(x.astype(np.float32), 0.1, 0, w, 1.0)
    with pytest.raises(TypeError, match="^w: expected dtype int8"):
        F.qpack_conv2d(w.astype(np.int16), 1.0)
    with pytest.raises(ValueError, match="^x_scale: expected a finite scale > 0"):
        F.qconv2d(x, 0.0, 0, w, 1.0)
    with pytest.raises(ValueError, match="^x_scale"):
        F.qconv2d(x, float("nan"), 0, w, 1.0)
    with pytest.raises(ValueError, match="^x_zero_point: expected an int in 0..255"):
        F.qconv2d(x, 0.1, 256, w, 1.0)
    with pytest.raises(ValueError, match="^w_scale: expected finite scales > 0"):
        F.qconv2d(x, 0.1, 0, w, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="^w_scale: expected a scalar or shape"):
        F.qconv2d(x, 0.1, 0, w, np.ones(3))
    with pytest.raises(ValueError, match="^w_scale: required"):
        F.qconv2d(x, 0.1, 0, w)
    with pytest.raises(ValueError, match="^b: contains NaN"):
        F.qconv2d(x, 0.1, 0, w, 1.0, b=np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="^out_scale: required"):
        F.qconv2d(x, 0.1, 0, w, 1.0, out_dtype="uint8")
    with pytest.raises(ValueError, match="^out_scale"):
        F.qconv2d(x, 0.1, 0, w, 1.0, out_scale=-1.0)
    with pytest.raises(ValueError, match="^activation"):
        F.qconv2d(x, 0.1, 0, w, 1.0, activation="tanh")
    with pytest.raises(ValueError, match="^w: expected 3 input channels per group"):
        F.qconv2d(x, 0.1, 0, np.zeros((3, 3, 2, 2), np.int8), 1.0)
    with pytest.raises(ValueError, match="^w: the filter"):
        F.qconv2d(np.zeros((1, 2, 2, 3), np.uint8), 0.1, 0, w, 1.0)
    p = F.qpack_conv2d(w, 1.0)
    with pytest.raises(ValueError, match="^w_scale: the packed weights carry"):
        F.qconv2d(x, 0.1, 0, p, 1.0)
    with pytest.raises(ValueError, match="^w: packed for conv2d"):
        F.qmatmul(np.zeros((2, 3), np.uint8), 0.1, 0, p)
    with pytest.raises(ValueError, match="^a: expected 3 columns"):
        F.qmatmul(np.zeros((2, 4), np.uint8), 0.1, 0, np.zeros((3, 2), np.int8), 1.0)
    with pytest.raises(ValueError, match="^x: contains NaN or infinity"):
        F.quantize(np.array([1.0, np.inf]), 0.1, 0)
    with pytest.raises(ValueError, match="^x: contains NaN or infinity"):
        F.quantize(np.array([np.nan]), 0.1, 0)
    with pytest.raises(ValueError, match="^scale"):
        F.quantize(np.array([1.0]), 1e-60, 0)  # 0 as a float32
    with pytest.raises(ValueError, match="^b: expected the shape of a"):
        F.qadd(np.zeros(3, np.uint8), 0.1, 0, np.zeros(4, np.uint8), 0.1, 0, 0.1, 0)
    with pytest.raises(ValueError, match="^activation"):
        F.qadd(np.zeros(3, np.uint8), 0.1, 0, np.zeros(3, np.uint8), 0.1, 0, 0.1, 0, "relu6")
    with pytest.raises(ValueError, match="^padding: at most half"):
        F.qmax_pool2d(x, 2, padding=2)
    with pytest.raises(TypeError, match="^q: expected dtype uint8"):
        F.dequantize(np.zeros(3, np.int8), 0.1, 0)
    with pytest.raises(ValueError, match="^w: contains NaN"):
        F.quantize_weights(np.array([np.nan], np.float32))
