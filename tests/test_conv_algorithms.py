"""The speed paths of conv2d, each against the float64 NumPy reference of
test_conv.py on every ISA level: Winograd F(4x4,3x3) for wide 3x3 stride-1
layers (forward, the stride-1 backward-data that reuses it, and
backward-weights as F(3x3,4x4); tiled and weight-stationary forms; exact
fallback on NaN/inf), F(2x2,5x5) for 5x5 stride-1 layers, and the
pixel-vectorised direct kernels for very few channels ("planar", AVX-512,
and "planar_flat" for <= 4 outputs, AVX2 and AVX-512) with their
backward-weights counterpart."""

import numpy as np
import pytest

import cnnx.functional as F

from test_conv import _close, _data, ref_conv, ref_conv_backward

# (x shape, w shape, stride, padding, dilation, groups)
WINOGRAD = {
    # output not a multiple of the 4x4 tile, channels not multiples of 16
    "odd-sizes": ((2, 11, 13, 40), (3, 3, 40, 36), 1, 1, 1, 1),
    "valid": ((4, 10, 9, 32), (3, 3, 32, 48), 1, "valid", 1, 1),
    # (at least 16 output tiles: fewer go to the direct kernel at AVX-512)
    "asymmetric-pads": ((2, 9, 10, 32), (3, 3, 32, 33), 1, ((2, 0), (0, 2)), 1, 1),
    "big-pads": ((2, 6, 7, 32), (3, 3, 32, 40), 1, 3, 1, 1),  # dx gets negative pads
    "groups": ((4, 8, 8, 64), (3, 3, 32, 64), 1, 1, 1, 2),  # channel offsets
    "weight-stationary": ((4, 8, 8, 128), (3, 3, 128, 160), 1, 1, 1, 1),
    "many-blocks": ((3, 24, 20, 32), (3, 3, 32, 64), 1, "same", 1, 1),
    # transformed weights over 4 MB: threads take output-channel slices
    "big-u-sliced": ((4, 16, 16, 256), (3, 3, 256, 128), 1, 1, 1, 1),
    # F(2x2,5x5)
    "5x5-lenet": ((3, 14, 14, 8), (5, 5, 8, 16), 1, "valid", 1, 1),
    "5x5-odd": ((2, 11, 9, 12), (5, 5, 12, 20), 1, 2, 1, 1),
    "5x5-few-out-full-pad": ((2, 10, 10, 16), (5, 5, 16, 8), 1, 4, 1, 1),  # LeNet conv2's dx
    "5x5-wide": ((1, 9, 10, 40), (5, 5, 40, 36), 1, "same", 1, 1),
    # backward-data over dy's 2x2 tiles (the adjoint of F(2x2,5x5)): odd dy,
    # more than 8 / 16 channels, pads
    "5x5-dx-odd": ((2, 13, 12, 8), (5, 5, 8, 16), 1, "valid", 1, 1),
    "5x5-dx-wide": ((2, 12, 14, 20), (5, 5, 20, 12), 1, 1, 1, 1),
    "5x5-dx-asym": ((1, 11, 10, 9), (5, 5, 9, 10), 1, ((1, 0), (0, 1)), 1, 1),
}

PLANAR = {
    "lenet": ((3, 32, 32, 3), (5, 5, 3, 8), 1, "valid", 1, 1),
    "rgb-3x3": ((2, 20, 45, 3), (3, 3, 3, 64), 1, 1, 1, 1),
    "stem-s2": ((2, 40, 60, 3), (7, 7, 3, 20), 2, 3, 1, 1),
    "one-channel-odd-cout": ((2, 16, 14, 1), (3, 3, 1, 5), 1, "same", 1, 1),
    "stride-dilation": ((1, 30, 40, 4), (3, 2, 4, 12), (2, 3), (1, 2), (2, 3), 1),
    "groups": ((2, 18, 30, 6), (3, 3, 3, 16), 1, 1, 1, 2),
    "asymmetric": ((1, 15, 29, 2), (4, 3, 2, 9), 1, ((0, 3), (2, 1)), 1, 1),
    # rows of <= 16 pixels: a tile is 3 rows (and 2 or 1 at the bottom)
    "short-rows-rgb": ((2, 16, 15, 3), (3, 3, 3, 20), 1, 1, 1, 1),
    "short-rows-few-out": ((2, 12, 12, 16), (3, 3, 16, 8), 1, 2, 1, 1),
    "few-out-wide-in": ((2, 13, 40, 24), (3, 3, 24, 6), 1, "same", 1, 1),
    # backward-weights for <= 4 input and 16..64 output channels per group
    "groups-wide": ((2, 18, 14, 6), (3, 3, 3, 32), 1, 1, 1, 2),
    "dilated-48": ((1, 21, 31, 2), (3, 3, 2, 48), 1, 2, 2, 1),
}

# <= 4 output channels at stride 1 ("planar_flat", AVX2 and AVX-512): flat padded rows
PLANAR_FLAT = {
    "one-out-dilated": ((2, 14, 25, 5), (3, 3, 5, 1), 1, 2, 2, 1),
    "two-out-valid": ((1, 9, 24, 3), (3, 3, 3, 2), 1, "valid", 1, 1),
    "three-out-odd": ((3, 13, 21, 8), (3, 3, 8, 3), 1, 1, 1, 1),
    "four-out-groups": ((2, 11, 30, 8), (3, 3, 4, 8), 1, 1, 1, 2),
    "asymmetric": ((1, 15, 29, 6), (4, 3, 6, 3), 1, ((0, 3), (2, 1)), 1, 1),
    "wide-in-rect": ((2, 10, 17, 40), (2, 4, 40, 4), (1, 1), "same", 1, 1),
}

# The direct kernel with packed weights ("direct", AVX2 and AVX-512):
# per-tap segments from the image, merged filter rows on a padded band,
# partial channel blocks, groups; strided ones also run backward-data by
# stride phases.
DIRECT = {
    "strided-wide": ((2, 15, 13, 40), (3, 3, 40, 72), 2, 1, 1, 1),
    "stem-7x7-s2": ((1, 37, 41, 3), (7, 7, 3, 64), 2, 3, 1, 1),
    "rgb-3x3-odd-out": ((2, 17, 19, 3), (3, 3, 3, 40), 1, "same", 1, 1),
    "strided-groups": ((2, 14, 14, 64), (3, 3, 32, 64), 2, 1, 1, 2),
    "asym-stride-pads": ((2, 11, 16, 48), (3, 4, 48, 36), (1, 2), ((1, 0), (2, 1)), 1, 1),
    "1x1-stride2": ((3, 9, 8, 64), (1, 1, 64, 96), 2, "valid", 1, 1),
}


def _check(case, rng):
    xs, ws, s, p, d, g = case
    x, w, b = _data(rng, xs, ws)
    want = ref_conv(x, w, b, s, p, d, g)
    _close(F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g), want)
    _close(
        F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g, activation="relu"),
        np.maximum(want, 0),
    )
    dy = rng.standard_normal(want.shape).astype(np.float32)
    got = F.conv2d_backward(dy, x, w, stride=s, padding=p, dilation=d, groups=g)
    for a, r in zip(got, ref_conv_backward(dy, x, w, s, p, d, g)):
        _close(a, r)


@pytest.mark.parametrize("name", sorted(WINOGRAD))
def test_winograd_matches_reference(name, isa, rng):
    xs, ws, s, p, d, g = WINOGRAD[name]
    algo = F.conv2d_algorithm(xs, ws, stride=s, padding=p, dilation=d, groups=g)
    if isa == "avx512":
        assert algo == "winograd"
    elif isa == "avx2" and ws[0] == 5:  # 3x3: AVX-512 only
        # AVX2 runs 5x5 layers with >= 16 outputs per group on the direct
        # kernel (1.9x F(2x2,5x5) on LeNet's conv2); dx stays on Winograd.
        assert algo == ("direct" if ws[3] // g >= 16 else "winograd")
    _check(WINOGRAD[name], rng)


@pytest.mark.parametrize("name", sorted(PLANAR))
def test_planar_matches_reference(name, isa, rng):
    xs, ws, s, p, d, g = PLANAR[name]
    if isa == "avx512":
        # 32 or more outputs per group: the direct kernel (faster there)
        want = "direct" if ws[3] // g >= 32 else "planar"
        assert F.conv2d_algorithm(xs, ws, stride=s, padding=p, dilation=d, groups=g) == want
    _check(PLANAR[name], rng)


@pytest.mark.parametrize("name", sorted(PLANAR_FLAT))
def test_planar_flat_matches_reference(name, isa, rng):
    xs, ws, s, p, d, g = PLANAR_FLAT[name]
    if isa in ("avx2", "avx512"):
        assert (
            F.conv2d_algorithm(xs, ws, stride=s, padding=p, dilation=d, groups=g) == "planar_flat"
        )
    _check(PLANAR_FLAT[name], rng)


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_direct_matches_reference(name, isa, rng):
    xs, ws, s, p, d, g = DIRECT[name]
    if isa in ("avx2", "avx512"):
        assert F.conv2d_algorithm(xs, ws, stride=s, padding=p, dilation=d, groups=g) == "direct"
    _check(DIRECT[name], rng)


def test_rgb_layers_dx_on_the_flat_kernel(isa, rng):
    """LeNet conv1's dx (3 channels) runs on the flat kernel with "full" padding."""
    _check(((2, 32, 32, 3), (5, 5, 3, 8), 1, "valid", 1, 1), rng)
    _check(((2, 20, 18, 3), (3, 3, 3, 64), 1, 1, 1, 1), rng)


def test_empty_batch_on_the_new_paths(isa):
    for xs, ws, p in [((0, 8, 8, 32), (3, 3, 32, 32), 1), ((0, 32, 32, 3), (5, 5, 3, 8), 0)]:
        x = np.zeros(xs, np.float32)
        w = np.ones(ws, np.float32)
        y = F.conv2d(x, w, padding=p)
        assert y.shape == (0,) + y.shape[1:] and y.size == 0
        dx, dw, db = F.conv2d_backward(np.zeros(y.shape, np.float32), x, w, padding=p)
        assert dx.shape == xs and not dw.any() and not db.any()


def test_few_tiles_go_to_the_direct_kernel(isa, rng):
    """A batch with fewer than 16 output tiles (7x7 at batch 1) skips Winograd's
    per-call weight transform on AVX-512; the result is the same."""
    xs, ws = (1, 7, 7, 64), (3, 3, 64, 64)
    if isa == "avx512":
        assert F.conv2d_algorithm(xs, ws, padding=1) == "direct"
        assert F.conv2d_algorithm((4,) + xs[1:], ws, padding=1) == "winograd"
    _check((xs, ws, 1, 1, 1, 1), rng)


def test_winograd_error_is_small_against_the_output_scale(isa, rng):
    """F(4x4,3x3) rounds more than a direct sum; it stays within 3e-5 of the
    output's largest magnitude on a 256-channel layer (tests allow 1e-4)."""
    x, w, b = _data(rng, (2, 12, 12, 256), (3, 3, 256, 64))
    y = F.conv2d(x, w, b, padding=1)
    want = ref_conv(x, w, b, 1, 1)
    assert np.abs(y - want).max() <= 3e-5 * np.abs(want).max()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_winograd_keeps_nan_and_inf_local(isa, bad, rng):
    """Winograd's transforms would spread a NaN/inf over a whole 6x6 tile (and
    turn inf into NaN); such inputs or weights go through an exact path."""
    x, w, b = _data(rng, (2, 12, 12, 32), (3, 3, 32, 32))
    x[0, 5, 6, 3] = bad
    y = F.conv2d(x, w, b, padding=1)
    with np.errstate(invalid="ignore"):
        want = ref_conv(x, w, b, 1, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
    fin = np.isfinite(want)
    _close(y[fin], want[fin])
    x[0, 5, 6, 3] = 0.0
    w[1, 2, 4, 7] = bad
    y = F.conv2d(x, w, b, padding=1)
    with np.errstate(invalid="ignore"):
        want = ref_conv(x, w, b, 1, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_winograd_backward_weights_nan_and_inf_as_direct(isa, bad, rng):
    """The Winograd dw would spread a NaN/inf of x or dy differently from the
    direct sum; such inputs go through the GEMM path (same NaN pattern as
    the reference)."""
    x, w, _ = _data(rng, (2, 9, 9, 32), (3, 3, 32, 40))
    dy = rng.standard_normal((2, 9, 9, 40)).astype(np.float32)
    for arr, idx in ((x, (1, 4, 0, 5)), (dy, (0, 8, 8, 3))):
        arr[idx] = bad
        _, dw, _ = F.conv2d_backward(dy, x, w, padding=1, need_dx=False)
        with np.errstate(invalid="ignore"):
            _, want, _ = ref_conv_backward(dy, x, w, 1, 1)
        np.testing.assert_array_equal(np.isnan(dw), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(dw), np.isinf(want))
        arr[idx] = 0.0


def test_winograd_backward_weights_error_is_small(isa, rng):
    """dw sums over every pixel; Winograd's rounding stays within 3e-5 of the
    largest |dw| (tests allow 1e-4)."""
    x, w, _ = _data(rng, (4, 16, 16, 64), (3, 3, 64, 48))
    dy = rng.standard_normal((4, 16, 16, 48)).astype(np.float32)
    _, dw, _ = F.conv2d_backward(dy, x, w, padding=1, need_dx=False)
    _, want, _ = ref_conv_backward(dy, x, w, 1, 1)
    assert np.abs(dw - want).max() <= 3e-5 * np.abs(want).max()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_winograd_backward_data_5x5_nan_and_inf_as_direct(isa, bad, rng):
    x, w, _ = _data(rng, (2, 14, 14, 8), (5, 5, 8, 16))
    dy = rng.standard_normal((2, 10, 10, 16)).astype(np.float32)
    dy[1, 3, 6, 2] = bad
    dx, _, _ = F.conv2d_backward(dy, x, w)
    with np.errstate(invalid="ignore"):
        want, _, _ = ref_conv_backward(dy, x, w)
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(dx), np.isinf(want))


def test_concurrent_calls_match_sequential(rng):
    """Thread-local scratch: the speed paths called from several Python
    threads at once (the GIL is released) give the sequential results."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [
        WINOGRAD["odd-sizes"],
        WINOGRAD["weight-stationary"],
        WINOGRAD["5x5-lenet"],
        PLANAR["lenet"],
        PLANAR["stem-s2"],
        PLANAR["short-rows-few-out"],
    ]
    data = []
    for xs, ws, s, p, d, g in cases:
        x, w, b = _data(rng, xs, ws)
        y = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        data.append((x, w, b, dy, s, p, d, g))

    def run(i):
        x, w, b, dy, s, p, d, g = data[i % len(data)]
        y = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
        return (y,) + tuple(F.conv2d_backward(dy, x, w, stride=s, padding=p, dilation=d, groups=g))

    want = [run(i) for i in range(len(data))]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(run, range(4 * len(data))))
    for i, res in enumerate(got):
        for a, r in zip(res, want[i % len(data)]):
            # (dynamic scheduling may change the order of partial sums)
            np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(r).max()))
