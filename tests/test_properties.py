"""Property-based tests (hypothesis): conv2d, max/avg pooling, adaptive
pooling and dense, forward and backward, on random shapes and options,
against NumPy references written here (float64, no cnnx code involved).

Shapes are small and the example counts bounded so the default run takes
seconds; set CNNX_HYPOTHESIS_EXAMPLES=N for a longer search.
"""

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cnnx.functional as F  # noqa: E402

EXAMPLES = int(os.environ.get("CNNX_HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def arrays(rng, shape, ints=False):
    if ints:  # small integers: many exact ties, which exercises the max rules
        return rng.integers(-3, 4, shape).astype(np.float32)
    return rng.uniform(-1, 1, shape).astype(np.float32)


def close(got, want, depth):
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6 * depth + 1e-5)


# ------------------------------------------------------------ references


def resolve(padding, n, f, s, d):
    """((before, after) per axis) from a padding spec, independently of cnnx."""
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if padding == "same":
        out = []
        for ni, fi, si, di in zip(n, f, s, d):
            o = -(-ni // si)
            total = max((o - 1) * si + (fi - 1) * di + 1 - ni, 0)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    if isinstance(padding[0], int):
        return [(padding[0], padding[0]), (padding[1], padding[1])]
    return [tuple(padding[0]), tuple(padding[1])]


def conv_ref(x, w, b, s, d, pads, groups, relu):
    """Forward, and a function computing (dx, dw, db) for a dy."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    m, h, wd, cin = x.shape
    fh, fw, cig, cout = w.shape
    cog = cout // groups
    xp = np.pad(x64, ((0, 0), pads[0], pads[1], (0, 0)))
    hp, wp = xp.shape[1], xp.shape[2]
    oh = (hp - (fh - 1) * d[0] - 1) // s[0] + 1
    ow = (wp - (fw - 1) * d[1] - 1) // s[1] + 1

    def sl(kh, kw):
        return (
            slice(None),
            slice(kh * d[0], kh * d[0] + (oh - 1) * s[0] + 1, s[0]),
            slice(kw * d[1], kw * d[1] + (ow - 1) * s[1] + 1, s[1]),
        )

    y = np.zeros((m, oh, ow, cout))
    for g in range(groups):
        ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
        for kh in range(fh):
            for kw in range(fw):
                y[..., co] += xp[sl(kh, kw) + (ci,)] @ w64[kh, kw, :, co]
    if b is not None:
        y += b
    if relu:
        y = np.maximum(y, 0)

    def backward(dy):
        dy = dy.astype(np.float64)
        dxp = np.zeros_like(xp)
        dw = np.zeros_like(w64)
        for g in range(groups):
            ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
            for kh in range(fh):
                for kw in range(fw):
                    dxp[sl(kh, kw) + (ci,)] += dy[..., co] @ w64[kh, kw, :, co].T
                    dw[kh, kw, :, co] = np.einsum(
                        "mhwc,mhwo->co", xp[sl(kh, kw) + (ci,)], dy[..., co]
                    )
        dx = dxp[:, pads[0][0] : pads[0][0] + h, pads[1][0] : pads[1][0] + wd]
        return dx, dw, dy.sum(axis=(0, 1, 2))

    return y, backward


def windows_ref(x, rows, cols, is_max, divisors=None):
    """Pool over explicit windows rows[i] = (start, end), cols[j] likewise
    (in input coordinates, already clipped). Returns (y, backward)."""
    m, h, w, c = x.shape
    x64 = x.astype(np.float64)
    oh, ow = len(rows), len(cols)
    y = np.zeros((m, oh, ow, c))
    arg = {}
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            win = x64[:, h0:h1, w0:w1, :].reshape(m, -1, c)
            if is_max:
                k = win.argmax(axis=1)  # the FIRST maximum, row-major
                arg[i, j] = k
                y[:, i, j, :] = np.take_along_axis(win, k[:, None, :], 1)[:, 0]
            else:
                y[:, i, j, :] = win.sum(axis=1) / divisors[i][j]

    def backward(dy):
        dy = dy.astype(np.float64)
        dx = np.zeros_like(x64)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                ww = w1 - w0
                if is_max:
                    k = arg[i, j]
                    mm, cc = np.meshgrid(np.arange(m), np.arange(c), indexing="ij")
                    np.add.at(dx, (mm, h0 + k // ww, w0 + k % ww, cc), dy[:, i, j, :])
                else:
                    dx[:, h0:h1, w0:w1, :] += dy[:, i, j, None, None, :] / divisors[i][j]
        return dx

    return y, backward


def strided_windows(n, k, s, p0, p1):
    out = (n + p0 + p1 - k) // s + 1
    return [(max(i * s - p0, 0), min(i * s - p0 + k, n)) for i in range(out)]


# ---------------------------------------------------------------- conv2d


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3, "depthwise"]))
    if groups == "depthwise":
        cin = draw(st.integers(1, 6))
        groups, cout = cin, cin * draw(st.integers(1, 2))
    else:
        cin = groups * draw(st.integers(1, 4))
        cout = groups * draw(st.integers(1, 5))
    fh, fw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(
        st.one_of(
            st.sampled_from(["valid", "same"]),
            st.integers(0, 2),
            st.tuples(st.integers(0, 2), st.integers(0, 2)),
            st.tuples(
                st.tuples(st.integers(0, 2), st.integers(0, 2)),
                st.tuples(st.integers(0, 2), st.integers(0, 2)),
            ),
        )
    )
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    pads = resolve(padding, (h, w), (fh, fw), s, d)
    # the dilated filter must fit in the padded input
    if h + sum(pads[0]) < (fh - 1) * d[0] + 1 or w + sum(pads[1]) < (fw - 1) * d[1] + 1:
        h = max(h, (fh - 1) * d[0] + 1)
        w = max(w, (fw - 1) * d[1] + 1)
        pads = resolve(padding, (h, w), (fh, fw), s, d)
    return dict(
        m=draw(st.integers(1, 3)),
        h=h,
        w=w,
        cin=cin,
        cout=cout,
        fh=fh,
        fw=fw,
        s=s,
        d=d,
        padding=padding,
        pads=pads,
        groups=groups,
        bias=draw(st.booleans()),
        relu=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@SETTINGS
@given(conv_cases())
def test_conv2d_forward_and_backward_match_numpy(c):
    rng = np.random.default_rng(c["seed"])
    x = arrays(rng, (c["m"], c["h"], c["w"], c["cin"]))
    w = arrays(rng, (c["fh"], c["fw"], c["cin"] // c["groups"], c["cout"]))
    b = arrays(rng, (c["cout"],)) if c["bias"] else None
    y_ref, backward = conv_ref(x, w, b, c["s"], c["d"], c["pads"], c["groups"], c["relu"])
    depth = c["fh"] * c["fw"] * c["cin"]
    y = F.conv2d(
        x,
        w,
        b,
        stride=c["s"],
        padding=c["padding"],
        dilation=c["d"],
        groups=c["groups"],
        activation="relu" if c["relu"] else None,
    )
    close(y, y_ref, depth)
    dy = arrays(rng, y_ref.shape)
    dx, dw, db = F.conv2d_backward(
        dy, x, w, stride=c["s"], padding=c["padding"], dilation=c["d"], groups=c["groups"]
    )
    dx_ref, dw_ref, db_ref = backward(dy)
    close(dx, dx_ref, depth)
    close(dw, dw_ref, c["m"] * y_ref.shape[1] * y_ref.shape[2])
    close(db, db_ref, dy.size)


# --------------------------------------------------------------- pooling


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(
        st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
    )
    pads = (
        (draw(st.integers(0, kh // 2)), draw(st.integers(0, kh // 2))),
        (draw(st.integers(0, kw // 2)), draw(st.integers(0, kw // 2))),
    )
    h = draw(st.integers(max(1, kh - sum(pads[0])), 10))
    w = draw(st.integers(max(1, kw - sum(pads[1])), 10))
    return dict(
        m=draw(st.integers(1, 2)),
        h=h,
        w=w,
        c=draw(st.integers(1, 20)),
        k=(kh, kw),
        stride=stride,
        pads=pads,
        include=draw(st.booleans()),
        ints=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@SETTINGS
@given(pool_cases())
def test_max_and_avg_pool_match_numpy(c):
    rng = np.random.default_rng(c["seed"])
    x = arrays(rng, (c["m"], c["h"], c["w"], c["c"]), ints=c["ints"])
    kh, kw = c["k"]
    s = (
        c["k"]
        if c["stride"] is None
        else ((c["stride"], c["stride"]) if isinstance(c["stride"], int) else c["stride"])
    )
    (pt, pb), (pl, pr) = c["pads"]
    rows = strided_windows(c["h"], kh, s[0], pt, pb)
    cols = strided_windows(c["w"], kw, s[1], pl, pr)
    args = dict(pool_size=c["k"], stride=c["stride"], padding=c["pads"])

    y_ref, back = windows_ref(x, rows, cols, True)
    y = F.max_pool2d(x, **args)
    np.testing.assert_array_equal(y, y_ref)  # a max is exact
    dy = arrays(rng, y.shape)
    close(F.max_pool2d_backward(dy, x, **args), back(dy), kh * kw)

    div = [
        [kh * kw if c["include"] else (r1 - r0) * (c1 - c0) for (c0, c1) in cols]
        for (r0, r1) in rows
    ]
    y_ref, back = windows_ref(x, rows, cols, False, div)
    close(F.avg_pool2d(x, count_include_pad=c["include"], **args), y_ref, kh * kw)
    close(F.avg_pool2d_backward(dy, x, count_include_pad=c["include"], **args), back(dy), kh * kw)


@SETTINGS
@given(
    st.integers(1, 2),
    st.integers(1, 11),
    st.integers(1, 11),
    st.integers(1, 17),
    st.integers(1, 13),
    st.integers(1, 13),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_adaptive_pools_match_numpy(m, h, w, c, oh, ow, ints, seed):
    rng = np.random.default_rng(seed)
    x = arrays(rng, (m, h, w, c), ints=ints)
    rows = [((i * h) // oh, -(-(i + 1) * h // oh)) for i in range(oh)]
    cols = [((j * w) // ow, -(-(j + 1) * w // ow)) for j in range(ow)]
    assert F.adaptive_pool_windows(h, oh) == rows
    dy = arrays(rng, (m, oh, ow, c))

    y_ref, back = windows_ref(x, rows, cols, True)
    np.testing.assert_array_equal(F.adaptive_max_pool2d(x, (oh, ow)), y_ref)
    close(F.adaptive_max_pool2d_backward(dy, x, (oh, ow)), back(dy), h * w)

    div = [[(r1 - r0) * (c1 - c0) for (c0, c1) in cols] for (r0, r1) in rows]
    y_ref, back = windows_ref(x, rows, cols, False, div)
    close(F.adaptive_avg_pool2d(x, (oh, ow)), y_ref, h * w)
    close(F.adaptive_avg_pool2d_backward(dy, x, (oh, ow)), back(dy), h * w)


# ----------------------------------------------------------------- dense


@SETTINGS
@given(
    st.integers(1, 40),
    st.integers(1, 70),
    st.integers(1, 50),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_dense_forward_and_backward_match_numpy(m, n_in, n_out, bias, relu, seed):
    rng = np.random.default_rng(seed)
    x = arrays(rng, (m, n_in))
    w = arrays(rng, (n_in, n_out))
    b = arrays(rng, (n_out,)) if bias else None
    y_ref = x.astype(np.float64) @ w.astype(np.float64) + (0 if b is None else b)
    if relu:
        y_ref = np.maximum(y_ref, 0)
    close(F.dense(x, w, b, activation="relu" if relu else None), y_ref, n_in)
    dy = arrays(rng, (m, n_out))
    dx, dw, db = F.dense_backward(dy, x, w)
    close(dx, dy.astype(np.float64) @ w.T.astype(np.float64), n_out)
    close(dw, x.T.astype(np.float64) @ dy.astype(np.float64), m)
    close(db, dy.astype(np.float64).sum(axis=0), m)
