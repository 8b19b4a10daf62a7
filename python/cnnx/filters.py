"""Edge detectors, and convolution vs cross-correlation (the course's edge
detection section), computed by the same engine as ``Conv2D``.

The classic 3x3 filters, as the course writes them::

    vertical_edge()     horizontal_edge()   sobel(axis=1)      scharr(axis=1)
    [[1, 0, -1],        [[ 1,  1,  1],      [[1, 0, -1],       [[ 3, 0,  -3],
     [1, 0, -1],         [ 0,  0,  0],       [2, 0, -2],        [10, 0, -10],
     [1, 0, -1]]         [-1, -1, -1]]       [1, 0, -1]]        [ 3, 0,  -3]]

``axis=1`` differentiates along the width (n_W), so it responds to
*vertical* edges; ``axis=0`` is the transpose and responds to horizontal
ones. A bright-left/dark-right edge gives a positive response.

Convolution vs cross-correlation
--------------------------------
What a CNN layer computes (``F.conv2d``, ``Conv2D``) is *cross-correlation*:
the kernel slides over the image as written,

    correlate2d(A, K)[i, j] = sum_{u,v} A[i+u, j+v] * K[u, v].

The mathematician's *convolution* flips the kernel first (both axes):
``convolve2d(A, K) == correlate2d(A, K[::-1, ::-1])``. For learned filters
the difference does not matter (the network just learns the flipped filter),
which is why deep-learning libraries skip the flip. But only true
convolution is associative,

    (A * B) * C == A * (B * C)         (in "full" mode)

and :func:`associativity_demo` checks both claims numerically: the
convolution gap is round-off, the cross-correlation gap is not.
"""

import numpy as np

from . import functional as F
from ._validate import as_float32

__all__ = [
    "vertical_edge",
    "horizontal_edge",
    "sobel",
    "scharr",
    "correlate2d",
    "convolve2d",
    "edge_responses",
    "associativity_demo",
]


def vertical_edge():
    """The course's vertical edge detector ``[[1,0,-1]]*3`` (3x3 float32)."""
    return np.array([[1, 0, -1]] * 3, dtype=np.float32)


def horizontal_edge():
    """The course's horizontal edge detector: the transpose of :func:`vertical_edge`."""
    return np.ascontiguousarray(vertical_edge().T)


def _axis(axis):
    if isinstance(axis, str):
        table = {"vertical": 1, "x": 1, "w": 1, "horizontal": 0, "y": 0, "h": 0}
        if axis.lower() not in table:
            raise ValueError(f"axis: expected 0, 1, 'vertical' or 'horizontal', got {axis!r}")
        return table[axis.lower()]
    if isinstance(axis, (bool, np.bool_)) or axis not in (0, 1):
        raise ValueError(f"axis: expected 0, 1, 'vertical' or 'horizontal', got {axis!r}")
    return int(axis)


def _derivative(side, center, axis):
    k = np.array([[side, 0, -side], [center, 0, -center], [side, 0, -side]], dtype=np.float32)
    return k if _axis(axis) == 1 else np.ascontiguousarray(k.T)


def sobel(axis=1):
    """Sobel filter ``[[1,0,-1],[2,0,-2],[1,0,-1]]``: weight 2 on the centre
    row. ``axis=1`` (or ``"vertical"``) finds vertical edges, ``axis=0``
    (``"horizontal"``) horizontal ones (the transpose)."""
    return _derivative(1, 2, axis)


def scharr(axis=1):
    """Scharr filter ``[[3,0,-3],[10,0,-10],[3,0,-3]]`` (better rotational
    symmetry than Sobel). ``axis`` as in :func:`sobel`."""
    return _derivative(3, 10, axis)


_MODES = ("valid", "same", "full")


def _pads(mode, kh, kw, flipped):
    """Zero padding that turns a valid correlation into the requested mode."""
    if mode == "valid":
        return ((0, 0), (0, 0))
    if mode == "full":
        return ((kh - 1, kh - 1), (kw - 1, kw - 1))

    # "same": the output has the input's size. Correlation follows the
    # "same" padding of Conv2D (odd pixel after); convolution is the centred
    # crop of the full result (as scipy.signal does). Equal for odd kernels.
    def split(k):
        t = k - 1
        return (t - t // 2, t // 2) if flipped else (t // 2, t - t // 2)

    return (split(kh), split(kw))


def _run(image, kernel, mode, flipped):
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode: expected 'valid', 'same' or 'full', got {mode!r}")
    img = as_float32(image, "image")
    if img.ndim not in (2, 3):
        raise ValueError(f"image: expected (n_H, n_W) or (n_H, n_W, n_C), got shape {img.shape}")
    k = as_float32(kernel, "kernel", 2)
    if k.size == 0 or img.size == 0:
        raise ValueError(f"image: empty input (image {img.shape}, kernel {k.shape})")
    kh, kw = k.shape
    pads = _pads(mode, kh, kw, flipped)
    if mode == "valid" and (kh > img.shape[0] or kw > img.shape[1]):
        raise ValueError(
            f"kernel: {k.shape} is larger than the image {img.shape[:2]} "
            "(use mode='same' or 'full')"
        )
    if flipped:
        k = k[::-1, ::-1]
    # Each channel is one item of a batch of 1-channel images: (n_C, n_H, n_W, 1).
    x = img[None, :, :, None] if img.ndim == 2 else np.moveaxis(img, 2, 0)[..., None]
    w = np.ascontiguousarray(k)[:, :, None, None]
    y = F.conv2d(np.ascontiguousarray(x), w, padding=pads)
    return y[0, :, :, 0] if img.ndim == 2 else np.ascontiguousarray(np.moveaxis(y[..., 0], 0, 2))


def correlate2d(image, kernel, mode="valid"):
    """Cross-correlation, what CNN layers compute: ``sum A[i+u, j+v] K[u, v]``.

    ``image``: ``(n_H, n_W)`` or ``(n_H, n_W, n_C)`` (each channel filtered
    on its own); ``kernel``: ``(f_h, f_w)``. ``mode``: ``"valid"`` (no
    padding, ``n - f + 1``), ``"same"`` (Conv2D's same padding, output size
    = input size) or ``"full"`` (pad ``f - 1`` each side, ``n + f - 1``).
    Runs on ``F.conv2d``.
    """
    return _run(image, kernel, mode, flipped=False)


def convolve2d(image, kernel, mode="valid"):
    """True convolution: cross-correlation with the kernel flipped on both axes.

    Same arguments as :func:`correlate2d`; ``"same"`` is the centred crop of
    the ``"full"`` result. Associative in ``"full"`` mode:
    ``convolve2d(convolve2d(A, B, "full"), C, "full") ==
    convolve2d(A, convolve2d(B, C, "full"), "full")``.
    """
    return _run(image, kernel, mode, flipped=True)


def edge_responses(image, mode="same"):
    """Responses of the course's four detectors to a grayscale image.

    Returns a dict name -> 2-D array: ``vertical``, ``horizontal``,
    ``sobel_x``/``sobel_y`` (vertical/horizontal edges), ``scharr_x``/
    ``scharr_y`` and ``sobel_magnitude`` (``hypot`` of the two Sobels).
    An RGB ``(n_H, n_W, 3)`` image is converted to gray first.
    """
    img = as_float32(image, "image")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        elif img.shape[2] in (3, 4):
            img = img[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        else:
            raise ValueError(f"image: expected gray or RGB(A), got shape {img.shape}")
    if img.ndim != 2:
        raise ValueError(f"image: expected (n_H, n_W) or (n_H, n_W, 3), got shape {img.shape}")
    img = np.ascontiguousarray(img)
    out = {
        "vertical": correlate2d(img, vertical_edge(), mode),
        "horizontal": correlate2d(img, horizontal_edge(), mode),
        "sobel_x": correlate2d(img, sobel(1), mode),
        "sobel_y": correlate2d(img, sobel(0), mode),
        "scharr_x": correlate2d(img, scharr(1), mode),
        "scharr_y": correlate2d(img, scharr(0), mode),
    }
    out["sobel_magnitude"] = np.hypot(out["sobel_x"], out["sobel_y"])
    return out


def associativity_demo(n=12, f=3, seed=0):
    """Check ``(A*B)*C = A*(B*C)`` for convolution and for cross-correlation.

    ``A`` is a random ``n x n`` image, ``B`` and ``C`` random ``f x f``
    kernels; everything in ``"full"`` mode. Returns a dict with the largest
    absolute differences ``convolution_gap`` (float32 round-off, ~1e-6 of
    the values' scale) and ``correlation_gap`` (of the order of the values),
    plus ``scale`` (the largest |value| of the result) and the four arrays.
    """
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)).astype(np.float32)
    B = rng.standard_normal((f, f)).astype(np.float32)
    C = rng.standard_normal((f, f)).astype(np.float32)
    conv_left = convolve2d(convolve2d(A, B, "full"), C, "full")
    conv_right = convolve2d(A, convolve2d(B, C, "full"), "full")
    corr_left = correlate2d(correlate2d(A, B, "full"), C, "full")
    corr_right = correlate2d(A, correlate2d(B, C, "full"), "full")
    return {
        "convolution_gap": float(np.max(np.abs(conv_left - conv_right))),
        "correlation_gap": float(np.max(np.abs(corr_left - corr_right))),
        "scale": float(np.max(np.abs(conv_left))),
        "conv_left": conv_left,
        "conv_right": conv_right,
        "corr_left": corr_left,
        "corr_right": corr_right,
    }
