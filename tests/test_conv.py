"""conv2d / conv2d_backward against a naive NumPy reference (float64),
finite differences, PyTorch (when installed), bad input and peak memory."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnnx.functional as F
from cnnx.functional._shapes import resolve_padding

from conftest import torch_or_skip


# ----------------------------------------------------------------------------
# The reference: written from the definition, float64, loops over filter taps.
# ----------------------------------------------------------------------------
def _geometry(x_shape, w_shape, stride, padding, dilation):
    s = (stride, stride) if np.isscalar(stride) else tuple(stride)
    d = (dilation, dilation) if np.isscalar(dilation) else tuple(dilation)
    (t, b), (l, r) = resolve_padding(padding, x_shape[1:3], w_shape[:2], s, d)
    kh, kw = w_shape[:2]
    oh = (x_shape[1] + t + b - (kh - 1) * d[0] - 1) // s[0] + 1
    ow = (x_shape[2] + l + r - (kw - 1) * d[1] - 1) // s[1] + 1
    return s, d, (t, b, l, r), oh, ow


def _tap(xp, i, j, s, d, oh, ow):
    """xp[:, i*dh + oh'*sh, j*dw + ow'*sw, :] for all output pixels."""
    return xp[
        :,
        i * d[0] : i * d[0] + (oh - 1) * s[0] + 1 : s[0],
        j * d[1] : j * d[1] + (ow - 1) * s[1] + 1 : s[1],
        :,
    ]


def ref_conv(x, w, b=None, stride=1, padding="valid", dilation=1, groups=1):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    s, d, (t, bo, l, r), oh, ow = _geometry(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (t, bo), (l, r), (0, 0)))
    n, kh, kw, cout = x.shape[0], w.shape[0], w.shape[1], w.shape[3]
    cig, cog = x.shape[3] // groups, cout // groups
    y = np.zeros((n, oh, ow, cout))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = _tap(xp, i, j, s, d, oh, ow)[..., g * cig : (g + 1) * cig]
                y[..., g * cog : (g + 1) * cog] += patch @ w[i, j, :, g * cog : (g + 1) * cog]
    if b is not None:
        y += np.asarray(b, np.float64)
    return y


def ref_conv_backward(dy, x, w, stride=1, padding="valid", dilation=1, groups=1):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    dy = np.asarray(dy, np.float64)
    s, d, (t, bo, l, r), oh, ow = _geometry(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (t, bo), (l, r), (0, 0)))
    dxp = np.zeros_like(xp)
    kh, kw, cout = w.shape[0], w.shape[1], w.shape[3]
    cig, cog = x.shape[3] // groups, cout // groups
    dw = np.zeros_like(w)
    for g in range(groups):
        dyg = dy[..., g * cog : (g + 1) * cog]
        for i in range(kh):
            for j in range(kw):
                patch = _tap(xp, i, j, s, d, oh, ow)[..., g * cig : (g + 1) * cig]
                dw[i, j, :, g * cog : (g + 1) * cog] = np.einsum("nhwc,nhwk->ck", patch, dyg)
                _tap(dxp, i, j, s, d, oh, ow)[..., g * cig : (g + 1) * cig] += (
                    dyg @ w[i, j, :, g * cog : (g + 1) * cog].T
                )
    dx = dxp[:, t : t + x.shape[1], l : l + x.shape[2], :]
    return dx, dw, dy.sum(axis=(0, 1, 2))


# (x shape, w shape, stride, padding, dilation, groups)
CASES = {
    "1x1-image": ((2, 1, 1, 3), (1, 1, 3, 4), 1, "valid", 1, 1),
    "1x1-image-same3x3": ((2, 1, 1, 3), (3, 3, 3, 5), 1, "same", 1, 1),
    "filter-as-large-as-padded": ((2, 3, 4, 2), (5, 6, 2, 3), 1, 1, 1, 1),
    "stride-gt-filter": ((2, 9, 10, 3), (2, 2, 3, 4), 3, "valid", 1, 1),
    "dilation-with-padding": ((2, 8, 7, 3), (3, 3, 3, 5), 1, 2, 2, 1),
    "dilation-stride-padding": ((2, 11, 9, 4), (3, 2, 4, 6), (2, 1), (1, 2), (2, 3), 1),
    "even-filter-same": ((2, 7, 6, 3), (4, 2, 3, 5), 1, "same", 1, 1),
    "even-filter-same-s2": ((2, 7, 8, 3), (4, 4, 3, 5), 2, "same", 1, 1),
    "asymmetric-pads": ((1, 6, 7, 2), (3, 3, 2, 3), 1, ((1, 2), (0, 3)), 1, 1),
    "1x1-gemm": ((3, 5, 4, 7), (1, 1, 7, 33), 1, "valid", 1, 1),
    "1x1-stride2": ((2, 7, 6, 5), (1, 1, 5, 9), 2, "valid", 1, 1),
    "1x1-padded": ((2, 3, 3, 4), (1, 1, 4, 6), 1, 1, 1, 1),
    "groups": ((2, 6, 6, 6), (3, 3, 2, 9), 1, 1, 1, 3),
    "groups-1x1": ((2, 4, 4, 8), (1, 1, 2, 12), 1, "valid", 1, 4),
    "groups-s2": ((2, 9, 9, 4), (3, 3, 2, 6), 2, "same", 1, 2),
    "depthwise": ((2, 7, 7, 5), (3, 3, 1, 5), 1, "same", 1, 5),
    "depthwise-mult": ((2, 6, 7, 4), (3, 3, 1, 8), 2, 1, 1, 4),
    "depthwise-dilated": ((1, 9, 9, 3), (3, 3, 1, 3), 1, 2, 2, 3),
    "lenet-like": ((3, 12, 12, 3), (5, 5, 3, 8), 1, "valid", 1, 1),
    "wide": ((2, 9, 9, 20), (3, 3, 20, 40), 1, 1, 1, 1),
    "wide-s2": ((2, 9, 9, 20), (3, 3, 20, 40), 2, 1, 1, 1),
    "stem-like": ((2, 17, 17, 3), (7, 7, 3, 16), 2, 3, 1, 1),
    "threaded": ((4, 16, 16, 32), (3, 3, 32, 48), 1, 1, 1, 1),
    "threaded-s2": ((4, 16, 16, 32), (3, 3, 32, 48), 2, 1, 1, 1),
    "deep-long": ((4, 20, 20, 32), (3, 3, 32, 48), 1, 1, 1, 1),
    "few-pixels-many-channels": ((1, 4, 4, 64), (3, 3, 64, 160), 1, 1, 1, 1),
}


def _data(rng, xs, ws, bias=True):
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[:3]))).astype(np.float32)
    b = rng.standard_normal(ws[3]).astype(np.float32) if bias else None
    return x, w, b


def _close(got, want, rtol=1e-4, atol=1e-4):
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_backward_match_reference(name, rng):
    xs, ws, s, p, d, g = CASES[name]
    x, w, b = _data(rng, xs, ws)
    y = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    want = ref_conv(x, w, b, s, p, d, g)
    assert y.shape == want.shape and y.dtype == np.float32
    _close(y, want)
    yr = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g, activation="relu")
    _close(yr, np.maximum(want, 0))
    dy = rng.standard_normal(want.shape).astype(np.float32)
    dx, dw, db = F.conv2d_backward(dy, x, w, stride=s, padding=p, dilation=d, groups=g)
    rdx, rdw, rdb = ref_conv_backward(dy, x, w, s, p, d, g)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (ws[3],)
    _close(dx, rdx)
    _close(dw, rdw)
    _close(db, rdb)
    none, dw2, db2 = F.conv2d_backward(
        dy, x, w, stride=s, padding=p, dilation=d, groups=g, need_dx=False
    )
    assert none is None
    _close(dw2, rdw)


@pytest.mark.parametrize(
    "name",
    [
        "lenet-like",
        "wide-s2",
        "groups-s2",
        "depthwise-mult",
        "1x1-gemm",
        "dilation-stride-padding",
        "threaded",
    ],
)
def test_every_isa(name, isa, rng):
    xs, ws, s, p, d, g = CASES[name]
    x, w, b = _data(rng, xs, ws)
    y = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    _close(y, ref_conv(x, w, b, s, p, d, g))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = F.conv2d_backward(dy, x, w, stride=s, padding=p, dilation=d, groups=g)
    for a, r in zip(got, ref_conv_backward(dy, x, w, s, p, d, g)):
        _close(a, r)


def test_random_shapes(rng):
    for _ in range(25):
        g = int(rng.choice([1, 1, 1, 2, 3]))
        cin = g * int(rng.integers(1, 6))
        cout = g * int(rng.integers(1, 7))
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        mode = rng.integers(0, 3)
        p = (
            "same"
            if mode == 0
            else ("valid" if mode == 1 else tuple(int(v) for v in rng.integers(0, 3, 2)))
        )
        pads = resolve_padding(p, (1, 1), (kh, kw), s, d)  # only to size the image below
        h = int(rng.integers(max(1, (kh - 1) * d[0] + 1 - sum(pads[0])), 12))
        wd = int(rng.integers(max(1, (kw - 1) * d[1] + 1 - sum(pads[1])), 12))
        xs, ws = (int(rng.integers(1, 4)), h, wd, cin), (kh, kw, cin // g, cout)
        try:
            want = ref_conv(np.zeros(xs), np.zeros(ws), None, s, p, d, g)
        except ValueError:
            continue
        if min(want.shape[1:3]) < 1:
            continue
        x, w, b = _data(rng, xs, ws)
        cfg = dict(stride=s, padding=p, dilation=d, groups=g)
        _close(F.conv2d(x, w, b, **cfg), ref_conv(x, w, b, s, p, d, g))
        dy = rng.standard_normal(want.shape).astype(np.float32)
        for a, r in zip(
            F.conv2d_backward(dy, x, w, **cfg), ref_conv_backward(dy, x, w, s, p, d, g)
        ):
            _close(a, r)


def test_empty_batch():
    x = np.zeros((0, 8, 8, 3), np.float32)
    w = np.ones((3, 3, 3, 4), np.float32)
    y = F.conv2d(x, w, np.ones(4), padding="same")
    assert y.shape == (0, 8, 8, 4)
    dx, dw, db = F.conv2d_backward(y, x, w, padding="same")
    assert dx.shape == x.shape
    assert np.all(dw == 0) and np.all(db == 0)
    y = F.conv2d(np.zeros((0, 5, 5, 4)), np.ones((3, 3, 1, 4)), groups=4)
    assert y.shape == (0, 3, 3, 4)


def test_output_size_formula_and_same_padding():
    x = np.zeros((1, 32, 32, 3), np.float32)
    assert F.conv2d(x, np.zeros((5, 5, 3, 8))).shape == (1, 28, 28, 8)  # 32 - 5 + 1
    assert F.conv2d(x, np.zeros((3, 3, 3, 8)), stride=2, padding=1).shape == (1, 16, 16, 8)
    for s in (1, 2, 3):
        for f in (1, 2, 3, 4, 5):
            y = F.conv2d(np.zeros((1, 11, 10, 1)), np.zeros((f, f, 1, 1)), stride=s, padding="same")
            assert y.shape[1:3] == (-(-11 // s), -(-10 // s))


def test_same_padding_puts_odd_pixel_bottom_right(rng):
    # A 2x2 filter with "same": one pad pixel, at the bottom/right (TensorFlow rule).
    x = rng.standard_normal((1, 3, 3, 1)).astype(np.float32)
    w = np.zeros((2, 2, 1, 1), np.float32)
    w[0, 0] = 1.0  # picks the top-left tap: y == x exactly when no pad is on top/left
    np.testing.assert_array_equal(F.conv2d(x, w, padding="same"), x)


def test_finite_differences_of_reference_and_cnnx(rng):
    # 1) The float64 reference backward agrees with central differences of
    #    the reference forward (so it is a valid oracle) ...
    cfgs = [
        ((1, 5, 6, 2), (3, 2, 2, 3), (2, 1), "same", (1, 2), 1),
        ((2, 4, 4, 4), (3, 3, 2, 4), 1, 1, 1, 2),
        ((1, 5, 5, 3), (3, 3, 1, 6), 1, "same", 1, 3),
    ]
    for xs, ws, s, p, d, g in cfgs:
        x = rng.standard_normal(xs)
        w = rng.standard_normal(ws)
        b = rng.standard_normal(ws[3])
        dy = rng.standard_normal(ref_conv(x, w, b, s, p, d, g).shape)
        dx, dw, db = ref_conv_backward(dy, x, w, s, p, d, g)

        def loss(x_, w_, b_):
            return float(np.sum(ref_conv(x_, w_, b_, s, p, d, g) * dy))

        eps = 1e-6
        for arr, grad, which in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
            for idx in [tuple(rng.integers(0, n) for n in arr.shape) for _ in range(6)]:
                args_p = [x.copy(), w.copy(), b.copy()]
                args_m = [x.copy(), w.copy(), b.copy()]
                args_p[which][idx] += eps
                args_m[which][idx] -= eps
                num = (loss(*args_p) - loss(*args_m)) / (2 * eps)
                assert abs(num - grad[idx]) <= 1e-6 * max(1, abs(num)), (which, idx)
        # 2) ... and cnnx's gradients agree with it, and with finite
        #    differences of cnnx's own forward (float32, loose tolerance).
        x32, w32, b32, dy32 = (a.astype(np.float32) for a in (x, w, b, dy))
        got = F.conv2d_backward(dy32, x32, w32, stride=s, padding=p, dilation=d, groups=g)
        for a, r in zip(got, (dx, dw, db)):
            _close(a, r)
        eps32 = 1e-2
        for idx in [tuple(rng.integers(0, n) for n in w.shape) for _ in range(4)]:
            wp, wm = w32.copy(), w32.copy()
            wp[idx] += eps32
            wm[idx] -= eps32
            cfg = dict(stride=s, padding=p, dilation=d, groups=g)
            num = (
                np.sum(F.conv2d(x32, wp, b32, **cfg).astype(np.float64) * dy)
                - np.sum(F.conv2d(x32, wm, b32, **cfg).astype(np.float64) * dy)
            ) / (2 * eps32)
            assert abs(num - got[1][idx]) <= 2e-2 * max(1, abs(num))


def test_algorithm_choice(isa):
    narrow = F.conv2d_algorithm((64, 32, 32, 3), (5, 5, 3, 8))
    assert narrow == {"generic": "implicit_gemm_t", "avx2": "igemm", "avx512": "planar"}[isa]
    assert (
        F.conv2d_algorithm((64, 14, 14, 8), (5, 5, 8, 16))
        == {"generic": "implicit_gemm", "avx2": "direct", "avx512": "winograd"}[isa]
    )
    assert F.conv2d_algorithm((8, 56, 56, 256), (1, 1, 256, 64)) == "gemm_1x1"
    assert (
        F.conv2d_algorithm((8, 56, 56, 64), (3, 3, 64, 64), padding=1)
        == {"generic": "implicit_gemm", "avx2": "direct", "avx512": "winograd"}[isa]
    )
    assert F.conv2d_algorithm((8, 56, 56, 64), (3, 3, 64, 128), stride=2, padding=1) == (
        "implicit_gemm" if isa == "generic" else "direct"
    )
    assert F.conv2d_algorithm((8, 56, 56, 64), (3, 3, 1, 64), padding=1, groups=64) == "depthwise"


def _torch_ref(torch, x, w, b, s, pads, d, g, dy):
    tnn = torch.nn.functional
    xt = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
    wt = torch.tensor(w).permute(3, 2, 0, 1).contiguous().requires_grad_()
    bt = torch.tensor(b).requires_grad_()
    t, bo, l, r = pads
    y = tnn.conv2d(tnn.pad(xt, (l, r, t, bo)), wt, bt, stride=s, dilation=d, groups=g)
    y.backward(torch.tensor(dy).permute(0, 3, 1, 2))
    return (
        y.detach().permute(0, 2, 3, 1).numpy(),
        xt.grad.permute(0, 2, 3, 1).numpy(),
        wt.grad.permute(2, 3, 1, 0).numpy(),
        bt.grad.numpy(),
    )


@pytest.mark.parametrize(
    "name",
    [
        "lenet-like",
        "dilation-stride-padding",
        "even-filter-same-s2",
        "groups-s2",
        "depthwise-mult",
        "threaded",
        "stem-like",
    ],
)
def test_pytorch_parity(name, rng):
    torch = torch_or_skip()
    xs, ws, s, p, d, g = CASES[name]
    x, w, b = _data(rng, xs, ws)
    sp = (s, s) if np.isscalar(s) else s
    dp = (d, d) if np.isscalar(d) else d
    (t, bo), (l, r) = resolve_padding(p, xs[1:3], ws[:2], sp, dp)
    y = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty, tdx, tdw, tdb = _torch_ref(torch, x, w, b, sp, (t, bo, l, r), dp, g, dy)
    _close(y, ty)
    for a, r_ in zip(
        F.conv2d_backward(dy, x, w, stride=s, padding=p, dilation=d, groups=g), (tdx, tdw, tdb)
    ):
        _close(a, r_)


# ----------------------------------------------------------------------------
# Bad input: ValueError/TypeError naming the argument, before any kernel.
# ----------------------------------------------------------------------------
X = np.zeros((2, 8, 8, 4), np.float32)
W = np.zeros((3, 3, 4, 6), np.float32)


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(x=np.zeros((8, 8, 4))), ValueError, "x"),
        (dict(x="abc"), TypeError, "x"),
        (dict(x=None), TypeError, "x"),
        (dict(w=np.zeros((3, 3, 4))), ValueError, "w"),
        (dict(w=np.zeros((3, 3, 5, 6))), ValueError, "w"),
        (dict(w=np.zeros((11, 3, 4, 6))), ValueError, "w"),
        (dict(w=np.zeros((3, 3, 4, 0))), ValueError, "w"),
        (dict(b=np.zeros(5)), ValueError, "b"),
        (dict(b=np.zeros((6, 1))), ValueError, "b"),
        (dict(stride=0), ValueError, "stride"),
        (dict(stride=1.5), TypeError, "stride"),
        (dict(stride=(1, 2, 3)), ValueError, "stride"),
        (dict(padding="full"), ValueError, "padding"),
        (dict(padding=-1), ValueError, "padding"),
        (dict(padding=None), TypeError, "padding"),
        (dict(dilation=0), ValueError, "dilation"),
        (dict(dilation=5), ValueError, "w"),
        (dict(groups=0), ValueError, "groups"),
        (dict(groups=3), ValueError, "groups"),
        (dict(groups=2.0), TypeError, "groups"),
        (dict(activation="tanh"), ValueError, "activation"),
    ],
)
def test_bad_input(kwargs, exc, name):
    args = dict(x=X, w=W, b=None, stride=1, padding="valid", dilation=1, groups=1)
    args.update(kwargs)
    with pytest.raises(exc, match=f"^{name}"):
        F.conv2d(**args)


def test_bad_backward_input():
    dy = np.zeros((2, 6, 6, 6), np.float32)
    with pytest.raises(ValueError, match="^dy"):
        F.conv2d_backward(np.zeros((2, 5, 6, 6)), X, W)
    with pytest.raises(ValueError, match="^dy"):
        F.conv2d_backward(np.zeros((6, 6, 6)), X, W)
    with pytest.raises(ValueError, match="^w"):
        F.conv2d_backward(dy, X, np.zeros((3, 3, 3, 6)))
    with pytest.raises(TypeError, match="^need_dx"):
        F.conv2d_backward(dy, X, W, need_dx="no")
    dx, dw, db = F.conv2d_backward(dy, X, W)
    assert dx.shape == X.shape


def test_accepts_array_likes_and_other_dtypes():
    x = np.arange(2 * 4 * 4 * 2).reshape(2, 4, 4, 2)  # int64, converted
    w = np.ones((2, 2, 2, 3), np.float64)
    y = F.conv2d(x[:, ::-1], w, [1, 2, 3])  # non-contiguous view
    _close(y, ref_conv(x[:, ::-1], w, [1, 2, 3]))


# ----------------------------------------------------------------------------
# Working memory: forward + backward on res-64@56 at batch 64 must not grow
# the peak RSS by more than 64 MB beyond the arrays themselves (no im2col).
# ----------------------------------------------------------------------------
_RSS_SCRIPT = textwrap.dedent("""
    import json, numpy as np, cnnx.functional as F

    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    n, h, c = 64, 56, 64
    rng = np.random.default_rng(0)
    # warm-up on a small image: load code, start the thread pool
    F.conv2d_backward(np.ones((2, 8, 8, c), np.float32), np.ones((2, 8, 8, c), np.float32),
                      np.ones((3, 3, c, c), np.float32), padding=1)
    x = rng.standard_normal((n, h, h, c), dtype=np.float32)
    w = rng.standard_normal((3, 3, c, c), dtype=np.float32) * 0.05
    dy = rng.standard_normal((n, h, h, c), dtype=np.float32)
    base = hwm()
    y = F.conv2d(x, w, padding=1)
    dx, dw, db = F.conv2d_backward(dy, x, w, padding=1)
    peak = hwm()
    arrays = y.nbytes + dx.nbytes + dw.nbytes + db.nbytes
    print(json.dumps({"growth": peak - base, "arrays": arrays, "inputs": x.nbytes + dy.nbytes}))
""")


def test_peak_rss_bounded_by_tiles_not_batch():
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    extra = r["growth"] - r["arrays"]
    # an im2col of this batch would be 64*56*56*576*4 B = 462 MB
    assert extra <= 64 * 2**20, r
