"""cnnx.filters against naive NumPy loops written here (no scipy)."""

import numpy as np
import pytest

from cnnx import filters as flt
from cnnx import functional as F

if not hasattr(F, "conv2d"):  # the conv engine lands separately
    pytest.skip("F.conv2d not available in this build", allow_module_level=True)


# --- independent references ---------------------------------------------------


def naive_full_correlate(a, k):
    """Full cross-correlation by explicit loops over a zero-padded copy."""
    a = np.asarray(a, np.float64)
    k = np.asarray(k, np.float64)
    kh, kw = k.shape
    p = np.zeros((a.shape[0] + 2 * (kh - 1), a.shape[1] + 2 * (kw - 1)))
    p[kh - 1 : kh - 1 + a.shape[0], kw - 1 : kw - 1 + a.shape[1]] = a
    out = np.zeros((a.shape[0] + kh - 1, a.shape[1] + kw - 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            s = 0.0
            for u in range(kh):
                for v in range(kw):
                    s += p[i + u, j + v] * k[u, v]
            out[i, j] = s
    return out


def naive_full_convolve(a, k):
    """Full convolution straight from the definition: sum a[m, n] k[i-m, j-n]."""
    a = np.asarray(a, np.float64)
    k = np.asarray(k, np.float64)
    H, W = a.shape
    kh, kw = k.shape
    out = np.zeros((H + kh - 1, W + kw - 1))
    for m in range(H):
        for n in range(W):
            for u in range(kh):
                for v in range(kw):
                    out[m + u, n + v] += a[m, n] * k[u, v]
    return out


def crop(full, kh, kw, mode, shape, flipped):
    H, W = shape
    if mode == "full":
        return full
    if mode == "valid":
        return full[kh - 1 : H, kw - 1 : W]
    # same: correlation = Conv2D's "same" (before = (k-1)//2 of padding);
    # convolution = centred crop of full (start (k-1)//2)
    if flipped:
        r0, c0 = (kh - 1) // 2, (kw - 1) // 2
    else:
        r0, c0 = (kh - 1) - (kh - 1) // 2, (kw - 1) - (kw - 1) // 2
    return full[r0 : r0 + H, c0 : c0 + W]


# --- the kernels ----------------------------------------------------------------


def test_kernels_as_in_the_course():
    np.testing.assert_array_equal(flt.vertical_edge(), [[1, 0, -1], [1, 0, -1], [1, 0, -1]])
    np.testing.assert_array_equal(flt.horizontal_edge(), [[1, 1, 1], [0, 0, 0], [-1, -1, -1]])
    np.testing.assert_array_equal(flt.sobel(1), [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    np.testing.assert_array_equal(flt.sobel(0), [[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    np.testing.assert_array_equal(flt.scharr(1), [[3, 0, -3], [10, 0, -10], [3, 0, -3]])
    np.testing.assert_array_equal(flt.scharr("horizontal"), [[3, 10, 3], [0, 0, 0], [-3, -10, -3]])
    np.testing.assert_array_equal(flt.sobel("vertical"), flt.sobel(1))
    for k in (flt.vertical_edge(), flt.sobel(0), flt.scharr(1)):
        assert k.dtype == np.float32 and k.sum() == 0
    with pytest.raises(ValueError, match="^axis"):
        flt.sobel(2)
    with pytest.raises(ValueError, match="^axis"):
        flt.scharr("diagonal")


def test_course_vertical_edge_example():
    # the course's 6x6 image: bright left half (10), dark right half (0)
    img = np.array([[10, 10, 10, 0, 0, 0]] * 6, dtype=np.float32)
    out = flt.correlate2d(img, flt.vertical_edge())
    np.testing.assert_array_equal(out, [[0, 30, 30, 0]] * 4)
    # dark-to-bright gives the negative edge
    np.testing.assert_array_equal(
        flt.correlate2d(img[:, ::-1], flt.vertical_edge()), [[0, -30, -30, 0]] * 4
    )
    # no response to a horizontal edge detector
    assert np.all(flt.correlate2d(img, flt.horizontal_edge()) == 0)


# --- correlate / convolve vs naive loops --------------------------------------------


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("kshape", [(3, 3), (2, 4), (5, 1), (1, 1)])
def test_correlate_and_convolve_vs_naive(rng, mode, kshape):
    a = rng.standard_normal((9, 11)).astype(np.float32)
    k = rng.standard_normal(kshape).astype(np.float32)
    corr = flt.correlate2d(a, k, mode)
    conv = flt.convolve2d(a, k, mode)
    ref_corr = crop(naive_full_correlate(a, k), *kshape, mode, a.shape, False)
    ref_conv = crop(naive_full_convolve(a, k), *kshape, mode, a.shape, True)
    assert corr.shape == ref_corr.shape and conv.shape == ref_conv.shape
    np.testing.assert_allclose(corr, ref_corr, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv, ref_conv, rtol=1e-5, atol=1e-5)
    if mode == "same":
        assert corr.shape == a.shape == conv.shape


def test_convolution_is_flipped_correlation(rng):
    a = rng.standard_normal((7, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    np.testing.assert_allclose(flt.convolve2d(a, k), flt.correlate2d(a, k[::-1, ::-1]), atol=1e-6)
    assert not np.allclose(flt.convolve2d(a, k), flt.correlate2d(a, k), atol=1e-3)


def test_multichannel_filters_each_channel(rng):
    a = rng.standard_normal((6, 7, 3)).astype(np.float32)
    k = rng.standard_normal((3, 2)).astype(np.float32)
    out = flt.correlate2d(a, k, "same")
    assert out.shape == (6, 7, 3)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], flt.correlate2d(a[..., c], k, "same"), atol=1e-6)
        ref = crop(naive_full_correlate(a[..., c], k), 3, 2, "same", (6, 7), False)
        np.testing.assert_allclose(out[..., c], ref, rtol=1e-5, atol=1e-5)


def test_bad_arguments():
    a = np.zeros((5, 5), np.float32)
    with pytest.raises(ValueError, match="^mode"):
        flt.correlate2d(a, flt.sobel(), "circular")
    with pytest.raises(ValueError, match="^kernel"):
        flt.correlate2d(a, np.zeros((7, 7)))
    with pytest.raises(ValueError, match="^kernel"):
        flt.convolve2d(a, np.zeros(3))
    with pytest.raises(ValueError, match="^image"):
        flt.correlate2d(np.zeros((2, 3, 4, 5)), flt.sobel())
    with pytest.raises(TypeError, match="^image"):
        flt.correlate2d("abc", flt.sobel())


# --- associativity ------------------------------------------------------------------


def test_associativity_demo_numerically():
    d = flt.associativity_demo(n=10, f=3, seed=0)
    scale = d["scale"]
    assert d["convolution_gap"] < 1e-4 * scale
    assert d["correlation_gap"] > 0.05 * scale
    # and against the naive references, in float64
    rng = np.random.default_rng(0)
    A = rng.standard_normal((10, 10)).astype(np.float32)
    B = rng.standard_normal((3, 3)).astype(np.float32)
    C = rng.standard_normal((3, 3)).astype(np.float32)
    left = naive_full_convolve(naive_full_convolve(A, B), C)
    right = naive_full_convolve(A, naive_full_convolve(B, C))
    np.testing.assert_allclose(left, right, atol=1e-9)
    np.testing.assert_allclose(d["conv_left"], left, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d["conv_right"], left, rtol=1e-4, atol=1e-4)
    corr_left = naive_full_correlate(naive_full_correlate(A, B), C)
    np.testing.assert_allclose(d["corr_left"], corr_left, rtol=1e-4, atol=1e-4)


def test_edge_responses_keys_and_gray(rng):
    rgb = rng.uniform(0, 1, (12, 10, 3)).astype(np.float32)
    r = flt.edge_responses(rgb)
    assert set(r) == {
        "vertical",
        "horizontal",
        "sobel_x",
        "sobel_y",
        "scharr_x",
        "scharr_y",
        "sobel_magnitude",
    }
    gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    ref = crop(naive_full_correlate(gray, flt.sobel(1)), 3, 3, "same", gray.shape, False)
    np.testing.assert_allclose(r["sobel_x"], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        r["sobel_magnitude"], np.hypot(r["sobel_x"], r["sobel_y"]), atol=1e-6
    )
