"""Pooling: NumPy references, gradient checks, PyTorch parity, every ISA, bad input."""

import doctest
import math
import threading
from fractions import Fraction

import numpy as np
import pytest

import cnnx
import cnnx.functional as F
from cnnx.functional import _pool
from conftest import torch_or_skip


# ------------------------------------------------------------ references


def ref_windows(n, k, s, before, after):
    """Clipped (start, end) windows of a strided pool along one axis."""
    out = (n + before + after - k) // s + 1
    return [(max(i * s - before, 0), min(i * s - before + k, n)) for i in range(out)]


def ref_adaptive_windows(n, out):
    return [
        (math.floor(Fraction(i * n, out)), math.ceil(Fraction((i + 1) * n, out)))
        for i in range(out)
    ]


def ref_pool(x, win_h, win_w, op, divisor=None):
    """Pool NHWC x over explicit windows; op in {'max', 'sum'}. Loops over
    output pixels, vectorised over batch and channels."""
    n, _, _, c = x.shape
    y = np.zeros((n, len(win_h), len(win_w), c), np.float64)
    for i, (h0, h1) in enumerate(win_h):
        for j, (w0, w1) in enumerate(win_w):
            patch = x[:, h0:h1, w0:w1, :].astype(np.float64)
            if op == "max":
                y[:, i, j] = patch.max(axis=(1, 2))
            else:
                y[:, i, j] = patch.sum(axis=(1, 2)) / divisor(i, j, h1 - h0, w1 - w0)
    return y


def ref_max_backward(x, dy, win_h, win_w):
    """Each dy to the first maximum of its window (np.argmax: first occurrence)."""
    n, _, _, c = x.shape
    dx = np.zeros(x.shape, np.float64)
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i, (h0, h1) in enumerate(win_h):
        for j, (w0, w1) in enumerate(win_w):
            patch = x[:, h0:h1, w0:w1, :].reshape(n, -1, c)
            a = np.argmax(patch, axis=1)  # (n, c)
            hh = h0 + a // (w1 - w0)
            ww = w0 + a % (w1 - w0)
            np.add.at(dx, (nn, hh, ww, cc), dy[:, i, j, :])
    return dx


def ref_avg_backward(shape, dy, win_h, win_w, divisor):
    dx = np.zeros(shape, np.float64)
    for i, (h0, h1) in enumerate(win_h):
        for j, (w0, w1) in enumerate(win_w):
            dx[:, h0:h1, w0:w1, :] += (dy[:, i, j, :] / divisor(i, j, h1 - h0, w1 - w0))[
                :, None, None, :
            ]
    return dx


def strided(x, k, s, pads):
    (pt, pb), (pl, pr) = pads
    return (
        ref_windows(x.shape[1], k[0], s[0], pt, pb),
        ref_windows(x.shape[2], k[1], s[1], pl, pr),
    )


def nhwc_to_torch(torch, a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)


def torch_to_nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------- max pooling

MAX_CASES = [
    # shape, pool_size, stride, padding
    ((2, 8, 8, 5), 2, None, 0),
    ((1, 7, 9, 3), 3, 2, 1),
    ((2, 9, 7, 85), (3, 2), (2, 1), (1, 1)),
    ((1, 6, 6, 16), 3, 1, "same"),  # asymmetric would need odd; here 1/1
    ((1, 6, 7, 20), 2, 1, "same"),  # total pad 1: bottom/right only
    ((3, 5, 5, 4), 5, 1, "valid"),
    ((1, 10, 10, 33), 4, 3, ((2, 1), (0, 2))),
]


@pytest.mark.parametrize("shape,k,s,p", MAX_CASES)
def test_max_pool_matches_numpy(shape, k, s, p, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    kk = (k, k) if isinstance(k, int) else k
    ss = kk if s is None else ((s, s) if isinstance(s, int) else s)
    from cnnx.functional._shapes import resolve_padding

    pads = resolve_padding(p, shape[1:3], kk, ss)
    wh, ww = strided(x, kk, ss, pads)
    y = F.max_pool2d(x, k, s, p)
    np.testing.assert_array_equal(y, ref_pool(x, wh, ww, "max").astype(np.float32))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = F.max_pool2d_backward(dy, x, k, s, p)
    np.testing.assert_allclose(dx, ref_max_backward(x, dy, wh, ww), rtol=1e-6, atol=1e-6)


def test_max_pool_ties_go_to_first_maximum(rng):
    # Integer data in {0, 1, 2}: most windows have ties; overlapping windows.
    x = rng.integers(0, 3, size=(2, 9, 9, 19)).astype(np.float32)
    for k, s, p in [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0)]:
        y = F.max_pool2d(x, k, s, p)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        wh, ww = strided(x, (k, k), (s, s), ((p, p), (p, p)))
        dx = F.max_pool2d_backward(dy, x, k, s, p)
        np.testing.assert_allclose(dx, ref_max_backward(x, dy, wh, ww), rtol=1e-5, atol=1e-5)


def test_max_pool_all_equal_window_takes_top_left():
    x = np.zeros((1, 4, 4, 2), np.float32)
    dx = F.max_pool2d_backward(np.ones((1, 2, 2, 2), np.float32), x, 2)
    expect = np.zeros_like(x)
    expect[0, ::2, ::2, :] = 1
    np.testing.assert_array_equal(dx, expect)


def test_max_pool_padding_is_minus_infinity():
    x = -np.ones((1, 2, 2, 1), np.float32) * 5  # all negative: zero padding would win
    y = F.max_pool2d(x, 3, 1, 1)
    np.testing.assert_array_equal(y, np.full((1, 2, 2, 1), -5, np.float32))
    x = np.full((1, 2, 2, 1), -np.inf, np.float32)
    dx = F.max_pool2d_backward(np.ones((1, 2, 2, 1), np.float32), x, 3, 1, 1)
    # every window holds only -inf: PyTorch's rule sends dy to the first real pixel
    np.testing.assert_array_equal(dx[0, :, :, 0], [[4, 0], [0, 0]])


def test_max_pool_nan_propagates():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    x[0, 0, 1, 0] = np.nan
    y = F.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0])
    assert not np.isnan(y[0, 0, 1, 0]) and not np.isnan(y[0, 1, 1, 0])


def test_max_pool_finite_differences(rng):
    # distinct values, so no ties: the max is differentiable
    shape = (1, 6, 6, 3)
    x = (rng.permutation(np.prod(shape)).reshape(shape) * 0.1).astype(np.float32)
    r = rng.standard_normal(F.max_pool2d(x, 3, 2, 1).shape)
    dx = F.max_pool2d_backward(r.astype(np.float32), x, 3, 2, 1)
    eps = 1e-2
    for idx in [(0, 0, 0, 0), (0, 2, 3, 1), (0, 5, 5, 2), (0, 4, 1, 0), (0, 3, 3, 1)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fd = np.sum(F.max_pool2d(xp, 3, 2, 1) * r) - np.sum(F.max_pool2d(xm, 3, 2, 1) * r)
        assert fd / (2 * eps) == pytest.approx(dx[idx], abs=1e-3)


# ---------------------------------------------------------- avg pooling


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,k,s,p", MAX_CASES)
def test_avg_pool_matches_numpy(shape, k, s, p, count_include_pad, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    kk = (k, k) if isinstance(k, int) else k
    ss = kk if s is None else ((s, s) if isinstance(s, int) else s)
    from cnnx.functional._shapes import resolve_padding

    pads = resolve_padding(p, shape[1:3], kk, ss)
    wh, ww = strided(x, kk, ss, pads)
    if count_include_pad:
        div = lambda i, j, a, b: kk[0] * kk[1]  # noqa: E731
    else:
        div = lambda i, j, a, b: a * b  # noqa: E731
    y = F.avg_pool2d(x, k, s, p, count_include_pad=count_include_pad)
    np.testing.assert_allclose(y, ref_pool(x, wh, ww, "sum", div), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = F.avg_pool2d_backward(dy, x, k, s, p, count_include_pad=count_include_pad)
    np.testing.assert_allclose(dx, ref_avg_backward(x.shape, dy, wh, ww, div), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_gradient_is_adjoint_and_matches_finite_differences(count_include_pad, rng):
    x = rng.standard_normal((2, 7, 6, 5)).astype(np.float32)
    args = (3, 2, 1)
    y = F.avg_pool2d(x, *args, count_include_pad=count_include_pad)
    r = rng.standard_normal(y.shape).astype(np.float32)
    dx = F.avg_pool2d_backward(r, x, *args, count_include_pad=count_include_pad)
    # linear map: <A x, r> == <x, A^T r>
    assert np.sum(y.astype(np.float64) * r) == pytest.approx(
        np.sum(x.astype(np.float64) * dx), rel=1e-5
    )
    eps = 1e-2
    for idx in [(0, 0, 0, 0), (1, 6, 5, 4), (0, 3, 2, 1), (1, 1, 4, 2)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fd = np.sum(
            (
                F.avg_pool2d(xp, *args, count_include_pad=count_include_pad)
                - F.avg_pool2d(xm, *args, count_include_pad=count_include_pad)
            )
            * r
        )
        assert fd / (2 * eps) == pytest.approx(dx[idx], abs=2e-3)


# ----------------------------------------------------- adaptive pooling

ADAPTIVE_CASES = [
    ((2, 10, 10, 7), (3, 3)),  # out < n, not dividing: overlapping windows
    ((1, 12, 8, 20), (4, 2)),  # dividing: the course's windows
    ((2, 3, 4, 5), (5, 7)),  # out > n: pixels repeat
    ((1, 7, 7, 85), (7, 7)),  # identity
    ((1, 9, 5, 3), (1, 1)),  # global
    ((1, 5, 11, 17), (2, 13)),  # mixed
]


@pytest.mark.parametrize("shape,out", ADAPTIVE_CASES)
def test_adaptive_pools_match_numpy(shape, out, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    wh = ref_adaptive_windows(shape[1], out[0])
    ww = ref_adaptive_windows(shape[2], out[1])
    div = lambda i, j, a, b: a * b  # noqa: E731
    ya = F.adaptive_avg_pool2d(x, out)
    np.testing.assert_allclose(ya, ref_pool(x, wh, ww, "sum", div), rtol=1e-5, atol=1e-6)
    ym = F.adaptive_max_pool2d(x, out)
    np.testing.assert_array_equal(ym, ref_pool(x, wh, ww, "max").astype(np.float32))
    dy = rng.standard_normal(ya.shape).astype(np.float32)
    np.testing.assert_allclose(
        F.adaptive_avg_pool2d_backward(dy, x, out),
        ref_avg_backward(x.shape, dy, wh, ww, div),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        F.adaptive_max_pool2d_backward(dy, x, out),
        ref_max_backward(x, dy, wh, ww),
        rtol=1e-5,
        atol=1e-6,
    )


def test_adaptive_avg_finite_differences(rng):
    x = rng.standard_normal((1, 7, 5, 3)).astype(np.float32)
    out = (3, 4)
    r = rng.standard_normal((1, 3, 4, 3)).astype(np.float32)
    dx = F.adaptive_avg_pool2d_backward(r, x, out)
    eps = 1e-2
    for idx in [(0, 0, 0, 0), (0, 3, 2, 1), (0, 6, 4, 2), (0, 2, 1, 0)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fd = np.sum((F.adaptive_avg_pool2d(xp, out) - F.adaptive_avg_pool2d(xm, out)) * r)
        assert fd / (2 * eps) == pytest.approx(dx[idx], abs=2e-3)


def test_adaptive_output_size_none_keeps_dimension(rng):
    x = rng.standard_normal((1, 6, 5, 2)).astype(np.float32)
    y = F.adaptive_avg_pool2d(x, (None, 2))
    assert y.shape == (1, 6, 2, 2)
    np.testing.assert_allclose(y, F.adaptive_avg_pool2d(x, (6, 2)))


def test_adaptive_pool_windows_is_the_exact_rule():
    for n in range(1, 40):
        for out in range(1, 45):
            assert F.adaptive_pool_windows(n, out) == ref_adaptive_windows(n, out)


def test_adaptive_pool_windows_equal_course_formula_when_out_divides_n():
    checked = 0
    for n in range(1, 130):
        for out in range(1, n + 1):
            if n % out:
                continue
            stride = n // out
            kernel = n - (out - 1) * stride
            assert F.adaptive_pool_windows(n, out) == [
                (i * stride, i * stride + kernel) for i in range(out)
            ]
            checked += 1
    assert checked > 500


def test_adaptive_pool_equals_strided_pool_when_out_divides_n(rng):
    x = rng.standard_normal((2, 12, 18, 6)).astype(np.float32)
    out = (4, 6)
    s = (12 // 4, 18 // 6)
    k = (12 - 3 * s[0], 18 - 5 * s[1])
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, out), F.avg_pool2d(x, k, s), rtol=1e-6)
    np.testing.assert_array_equal(F.adaptive_max_pool2d(x, out), F.max_pool2d(x, k, s))


def test_adaptive_pool_windows_doctest():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for t in finder.find(
        _pool.adaptive_pool_windows, globs={"adaptive_pool_windows": F.adaptive_pool_windows}
    ):
        runner.run(t)
    assert runner.failures == 0 and runner.tries >= 4


# ------------------------------------------------------- global pooling


def test_global_avg_pool(rng):
    x = rng.standard_normal((3, 5, 7, 70)).astype(np.float32)
    y = F.global_avg_pool2d(x)
    assert y.shape == (3, 70)
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal((3, 70)).astype(np.float32)
    dx = F.global_avg_pool2d_backward(dy, x)
    np.testing.assert_allclose(dx, np.broadcast_to(dy[:, None, None, :] / 35, x.shape), rtol=1e-6)


def test_pooling_never_changes_channels(rng):
    x = rng.standard_normal((2, 32, 32, 8)).astype(np.float32)
    assert F.max_pool2d(x, 2).shape == (2, 16, 16, 8)  # the course's POOL1: 28->14
    assert F.avg_pool2d(x, 5, 1).shape == (2, 28, 28, 8)
    assert F.adaptive_avg_pool2d(x, 5).shape == (2, 5, 5, 8)
    assert F.conv_output_size(28, 2, 0, 2) == F.max_pool2d(x[:, :28, :28], 2).shape[1]


# -------------------------------------------------- every ISA, threads


def test_every_isa_agrees_with_numpy(isa, rng):
    # 85 channels: blocks of 4 vectors, single vectors and a partial vector
    x = rng.standard_normal((2, 9, 8, 85)).astype(np.float32)
    x[0, :3, :3, :5] = 1.0  # some ties
    wh, ww = strided(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
    y = F.max_pool2d(x, 3, 2, 1)
    np.testing.assert_array_equal(y, ref_pool(x, wh, ww, "max").astype(np.float32))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(
        F.max_pool2d_backward(dy, x, 3, 2, 1), ref_max_backward(x, dy, wh, ww), rtol=1e-5, atol=1e-6
    )
    div = lambda i, j, a, b: a * b  # noqa: E731
    np.testing.assert_allclose(
        F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
        ref_pool(x, wh, ww, "sum", div),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        F.avg_pool2d_backward(dy, x, 3, 2, 1, count_include_pad=False),
        ref_avg_backward(x.shape, dy, wh, ww, div),
        rtol=1e-5,
        atol=1e-6,
    )
    ah, aw = ref_adaptive_windows(9, 4), ref_adaptive_windows(8, 11)
    np.testing.assert_allclose(
        F.adaptive_avg_pool2d(x, (4, 11)), ref_pool(x, ah, aw, "sum", div), rtol=1e-5, atol=1e-6
    )
    dya = rng.standard_normal((2, 4, 11, 85)).astype(np.float32)
    np.testing.assert_allclose(
        F.adaptive_max_pool2d_backward(dya, x, (4, 11)),
        ref_max_backward(x, dya, ah, aw),
        rtol=1e-5,
        atol=1e-6,
    )
    x64 = rng.standard_normal((2, 12, 10, 64)).astype(np.float32)  # whole vectors only
    x64[1, :4, :4, :] = 0.5  # ties
    for out in [(3, 2), (5, 4)]:
        bh, bw = ref_adaptive_windows(12, out[0]), ref_adaptive_windows(10, out[1])
        np.testing.assert_allclose(
            F.adaptive_avg_pool2d(x64, out), ref_pool(x64, bh, bw, "sum", div), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(
            F.adaptive_max_pool2d(x64, out), ref_pool(x64, bh, bw, "max").astype(np.float32)
        )
    x3 = rng.standard_normal((1, 4, 4, 3)).astype(np.float32)  # partial vector only
    wh3, ww3 = strided(x3, (2, 2), (2, 2), ((0, 0), (0, 0)))
    np.testing.assert_array_equal(F.max_pool2d(x3, 2), ref_pool(x3, wh3, ww3, "max"))
    xn = np.ones((1, 2, 2, 85), np.float32)
    xn[0, 1, 0, 80] = np.nan
    yn = F.max_pool2d(xn, 2)
    assert np.isnan(yn[0, 0, 0, 80]) and np.isnan(yn).sum() == 1


@pytest.mark.parametrize("case", ["max_rows", "max_overlap", "avg", "adaptive"])
def test_threaded_results_equal_single_thread(case, rng):
    # large enough that the kernels use several threads; batch 1 forces the
    # channel-chunk split of the overlapping max backward
    x = rng.integers(0, 4, size=(1, 48, 40, 48)).astype(np.float32)
    if case == "max_rows":
        f = lambda: F.max_pool2d_backward(np.ones((1, 24, 20, 48), np.float32), x, 2)  # noqa: E731
    elif case == "max_overlap":
        f = lambda: F.max_pool2d_backward(np.ones((1, 48, 40, 48), np.float32), x, 3, 1, 1)  # noqa: E731
    elif case == "avg":
        f = lambda: F.avg_pool2d_backward(np.ones((1, 24, 20, 48), np.float32), x, 3, 2, 1)  # noqa: E731
    else:
        f = lambda: F.adaptive_max_pool2d_backward(  # noqa: E731
            np.ones((1, 50, 30, 48), np.float32), x, (50, 30)
        )
    saved = cnnx.get_num_threads()
    try:
        cnnx.set_num_threads(1)
        one = f()
        cnnx.set_num_threads(2)
        two = f()
    finally:
        cnnx.set_num_threads(saved)
    np.testing.assert_array_equal(one, two)


def test_concurrent_python_threads(rng):
    x = rng.standard_normal((4, 30, 30, 32)).astype(np.float32)
    expect = F.max_pool2d(x, 3, 2, 1)
    results = [None] * 4

    def work(t):
        results[t] = F.max_pool2d(x, 3, 2, 1)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expect)


def test_accepts_array_likes_and_other_dtypes():
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    y = F.max_pool2d(x.tolist(), 2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[0, :, :, 0], [[5, 7], [13, 15]])
    xt = np.asfortranarray(np.arange(32, dtype=np.float32).reshape(2, 4, 4, 1))
    np.testing.assert_array_equal(F.avg_pool2d(xt, 4)[:, 0, 0, 0], [7.5, 23.5])


def test_empty_batch_and_channels():
    assert F.max_pool2d(np.zeros((0, 4, 4, 3), np.float32), 2).shape == (0, 2, 2, 3)
    assert F.avg_pool2d(np.zeros((2, 4, 4, 0), np.float32), 2).shape == (2, 2, 2, 0)
    assert F.adaptive_max_pool2d_backward(
        np.zeros((0, 2, 2, 3)), np.zeros((0, 4, 4, 3)), 2
    ).shape == (0, 4, 4, 3)


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "call,exc,name",
    [
        (lambda x: F.max_pool2d(x[0], 2), ValueError, "x"),
        (lambda x: F.max_pool2d(None, 2), TypeError, "x"),
        (lambda x: F.max_pool2d("abc", 2), TypeError, "x"),
        (lambda x: F.max_pool2d(np.zeros((1, 0, 4, 1)), 1), ValueError, "x"),
        (lambda x: F.max_pool2d(x, 0), ValueError, "pool_size"),
        (lambda x: F.max_pool2d(x, 2.0), TypeError, "pool_size"),
        (lambda x: F.max_pool2d(x, (2, 2, 2)), ValueError, "pool_size"),
        (lambda x: F.max_pool2d(x, 9), ValueError, "pool_size"),
        (lambda x: F.avg_pool2d(x, (2, 9)), ValueError, "pool_size"),
        (lambda x: F.max_pool2d(x, 2, 0), ValueError, "stride"),
        (lambda x: F.max_pool2d(x, 2**63), ValueError, "pool_size"),
        (lambda x: F.max_pool2d(x, 2, 2**63), ValueError, "stride"),
        (lambda x: F.max_pool2d(x, 2, 1, 2**63), ValueError, "padding"),
        (lambda x: F.max_pool2d(x, 2, -1), ValueError, "stride"),
        (lambda x: F.max_pool2d(x, 2, "1"), TypeError, "stride"),
        (lambda x: F.max_pool2d(x, 2, 1, -1), ValueError, "padding"),
        (lambda x: F.max_pool2d(x, 2, 1, 2), ValueError, "padding"),
        (lambda x: F.avg_pool2d(x, 3, 1, ((0, 2), (0, 0))), ValueError, "padding"),
        (lambda x: F.max_pool2d(x, 2, 1, "full"), ValueError, "padding"),
        (lambda x: F.max_pool2d(x, 2, 1, None), TypeError, "padding"),
        (lambda x: F.avg_pool2d(x, 2, count_include_pad=1), TypeError, "count_include_pad"),
        (lambda x: F.max_pool2d_backward(np.zeros((1, 3, 3, 2)), x, 2), ValueError, "dy"),
        (lambda x: F.max_pool2d_backward(None, x, 2), TypeError, "dy"),
        (lambda x: F.avg_pool2d_backward(np.zeros((1, 4, 4, 3)), x, 2), ValueError, "dy"),
        (lambda x: F.adaptive_avg_pool2d(x, 0), ValueError, "output_size"),
        (lambda x: F.adaptive_max_pool2d(x, (2, 2, 2)), ValueError, "output_size"),
        (lambda x: F.adaptive_max_pool2d(x, 2.5), TypeError, "output_size"),
        (lambda x: F.adaptive_avg_pool2d(x, 2**40), ValueError, "output_size"),
        (lambda x: F.adaptive_avg_pool2d_backward(np.zeros((1, 3, 3, 2)), x, 2), ValueError, "dy"),
        (lambda x: F.adaptive_max_pool2d_backward(np.zeros((1, 2, 2, 3)), x, 2), ValueError, "dy"),
        (lambda x: F.global_avg_pool2d_backward(np.zeros((1, 3)), x), ValueError, "dy"),
        (lambda x: F.global_avg_pool2d(x[0]), ValueError, "x"),
        (lambda x: F.adaptive_pool_windows(0, 2), ValueError, "n"),
        (lambda x: F.adaptive_pool_windows(4, 0), ValueError, "out"),
    ],
)
def test_bad_input_names_the_argument(call, exc, name):
    x = np.zeros((1, 8, 8, 2), np.float32)
    with pytest.raises(exc) as e:
        call(x)
    assert str(e.value).startswith(name + ":"), str(e.value)


def test_core_refuses_bad_arguments_without_crashing():
    from cnnx import _core

    x = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError):
        _core.max_pool2d(x, 5, 5, 1, 1, 0, 0, 0, 0)  # window larger than input
    with pytest.raises(ValueError):
        _core.max_pool2d(x, 2, 2, 0, 1, 0, 0, 0, 0)  # stride 0
    with pytest.raises(ValueError):
        _core.avg_pool2d(x, 2, 2, 1, 1, 3, 0, 0, 0, True)  # padding > half window
    with pytest.raises(ValueError):
        _core.max_pool2d_backward(np.zeros((1, 3, 3, 2), np.float32), x, 2, 2, 2, 2, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        _core.adaptive_avg_pool2d(x, 0, 2)
    with pytest.raises(ValueError):
        _core.adaptive_avg_pool2d_backward(np.zeros((1, 2, 2, 2), np.float32), 0, 4)


# ------------------------------------------------------ PyTorch parity


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 1), (4, 3, 2)])
def test_max_pool_parity_with_torch_including_ties(k, s, p, rng):
    torch = torch_or_skip()
    x = rng.integers(-2, 3, size=(2, 11, 10, 21)).astype(np.float32)  # many ties
    xt = nhwc_to_torch(torch, x).clone().requires_grad_(True)
    yt = torch.nn.functional.max_pool2d(xt, k, s, p)
    dy = rng.standard_normal(torch_to_nhwc(yt).shape).astype(np.float32)
    yt.backward(nhwc_to_torch(torch, dy))
    y = F.max_pool2d(x, k, s, p)
    np.testing.assert_array_equal(y, torch_to_nhwc(yt))
    np.testing.assert_allclose(
        F.max_pool2d_backward(dy, x, k, s, p), torch_to_nhwc(xt.grad), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (5, 2, 2)])
def test_avg_pool_parity_with_torch(k, s, p, count_include_pad, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 11, 9, 19)).astype(np.float32)
    xt = nhwc_to_torch(torch, x).clone().requires_grad_(True)
    yt = torch.nn.functional.avg_pool2d(xt, k, s, p, count_include_pad=count_include_pad)
    dy = rng.standard_normal(torch_to_nhwc(yt).shape).astype(np.float32)
    yt.backward(nhwc_to_torch(torch, dy))
    y = F.avg_pool2d(x, k, s, p, count_include_pad=count_include_pad)
    np.testing.assert_allclose(y, torch_to_nhwc(yt), rtol=1e-5, atol=1e-6)
    dx = F.avg_pool2d_backward(dy, x, k, s, p, count_include_pad=count_include_pad)
    np.testing.assert_allclose(dx, torch_to_nhwc(xt.grad), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "n,out",
    [((10, 9), (3, 4)), ((56, 56), (7, 7)), ((3, 4), (5, 7)), ((7, 5), (7, 1)), ((5, 5), (1, 1))],
)
def test_adaptive_parity_with_torch(n, out, rng):
    torch = torch_or_skip()
    x = rng.integers(-3, 4, size=(2, n[0], n[1], 18)).astype(np.float32)  # ties for max
    x += rng.standard_normal(x.shape).astype(np.float32) * (rng.random(x.shape) < 0.5)
    for name in ["avg", "max"]:
        xt = nhwc_to_torch(torch, x).clone().requires_grad_(True)
        yt = getattr(torch.nn.functional, f"adaptive_{name}_pool2d")(xt, out)
        dy = rng.standard_normal(torch_to_nhwc(yt).shape).astype(np.float32)
        yt.backward(nhwc_to_torch(torch, dy))
        y = getattr(F, f"adaptive_{name}_pool2d")(x, out)
        dx = getattr(F, f"adaptive_{name}_pool2d_backward")(dy, x, out)
        np.testing.assert_allclose(y, torch_to_nhwc(yt), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, torch_to_nhwc(xt.grad), rtol=1e-5, atol=1e-5)


def test_max_pool_nan_parity_with_torch():
    torch = torch_or_skip()
    x = np.arange(2 * 6 * 6 * 3, dtype=np.float32).reshape(2, 6, 6, 3) % 7
    x[0, 1, 1, 0] = np.nan
    x[1, 4, 2, 2] = np.nan
    x[1, 4, 3, 2] = np.nan
    xt = nhwc_to_torch(torch, x).clone().requires_grad_(True)
    yt = torch.nn.functional.max_pool2d(xt, 3, 2, 1)
    yt.backward(torch.ones_like(yt))
    y = F.max_pool2d(x, 3, 2, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(torch_to_nhwc(yt)))
    np.testing.assert_array_equal(np.nan_to_num(y), np.nan_to_num(torch_to_nhwc(yt)))
    dx = F.max_pool2d_backward(np.ones(y.shape, np.float32), x, 3, 2, 1)
    np.testing.assert_array_equal(dx, torch_to_nhwc(xt.grad))


@pytest.mark.parametrize(
    "shape", [(2, 9, 7, 17), (1, 28, 28, 16), (3, 6, 10, 1), (1, 4, 4, 40), (2, 2, 3, 8)]
)
def test_max_pool_2x2_fast_path(shape, isa, rng):
    """2x2 / stride 2 / no padding has its own one-pass kernel (AVX-512):
    odd sizes drop the last row/column, channel tails are masked, NaN wins."""
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[rng.integers(0, x.size, 3)] = np.nan
    wh, ww = strided(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
    ref = ref_pool(x, wh, ww, "max").astype(np.float32)
    y = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.nan_to_num(y), np.nan_to_num(ref))
