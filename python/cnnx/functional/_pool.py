"""Pooling in NHWC: max, average, adaptive (average and max) and global
average, forward and backward.

Pooling has no parameters and never changes the number of channels n_C: it
slides a ``pool_size`` window over n_H and n_W of every channel separately.
With a window f, stride s and padding p the output has, on each axis,

    floor((n + 2p - f) / s) + 1

pixels, exactly as a convolution (``conv_output_size``); the channel count
stays n_C.  (The course notes print this formula with a misplaced bracket.)

Rules, shared with PyTorch:

* ``stride`` defaults to ``pool_size`` (non-overlapping windows).
* ``padding`` is ``"valid"``, ``"same"`` (TensorFlow's rule), an int,
  ``(p_h, p_w)`` or ``((top, bottom), (left, right))``.  Each side may pad at
  most half the window (``pool_size // 2``), so every window holds at least
  one real pixel; ``"same"`` always satisfies this.
* Max pooling pads with -inf, so padding never wins.  The gradient of each
  window goes to its FIRST maximum in row-major window order (ties: the
  top-left one).  A window holding a NaN outputs NaN.
* Average pooling pads with zeros; ``count_include_pad=True`` divides by the
  full window ``f_h*f_w``, ``False`` by the number of real pixels it covers.
* ``ceil_mode=True`` (max and average) rounds the output size up:
  ``ceil((n + 2p - f)/s) + 1``, minus one when the last window would start
  at or beyond ``n + p_before`` (PyTorch's rule: every window starts inside
  the input or its left/top padding). Such a last window may run past the
  padded input; it is clipped, and with ``count_include_pad`` its divisor
  counts only up to the padded edge (PyTorch, ONNX Runtime).
* ``dilation`` (max pooling): a window's taps are d pixels apart, so it
  spans ``(f - 1)*d + 1`` pixels, exactly as a dilated convolution's.
* Adaptive pooling takes the output size instead, with windows
  ``start = floor(i*n/out)``, ``end = ceil((i+1)*n/out)`` (see
  :func:`adaptive_pool_windows`), for outputs smaller or larger than n.

Every function checks its arguments first and raises ValueError/TypeError
whose message starts with the argument's name.
"""

from __future__ import annotations

from typing import Optional

from .. import _core
from .._types import ArrayLike, IntPair, Padding
from .._validate import as_float32, as_int, as_pair, check_size
from ._shapes import resolve_padding

__all__ = [
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "adaptive_pool_windows",
]

# --------------------------------------------------------------- arguments


def _input(x, name="x"):
    x = as_float32(x, name, ndim=4)
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"{name}: expected n_H and n_W >= 1, got shape {x.shape}")
    return x


def pool_output_size(n, f, pads, s, d=1, ceil_mode: bool = False):
    """Output length of a pool along one axis (see the module docstring)."""
    span = (f - 1) * d + 1
    room = n + pads[0] + pads[1] - span
    if not ceil_mode:
        return room // s + 1
    out = -(-room // s) + 1
    if (out - 1) * s >= n + pads[0]:  # the last window must start inside
        out -= 1
    return out


def _geometry(x, pool_size, stride, padding, dilation=1, ceil_mode=False):
    """-> (kh, kw, sh, sw, pt, pb, pl, pr, oh, ow) for an NHWC array x."""
    kh, kw = as_pair(pool_size, "pool_size", 1)
    sh, sw = (kh, kw) if stride is None else as_pair(stride, "stride", 1)
    dh, dw = as_pair(dilation, "dilation", 1)
    _bool(ceil_mode, "ceil_mode")
    if kh * kw >= 2**31:  # the kernels' limit (pool2d_check), checked here by name
        raise ValueError(f"pool_size: window of {kh}x{kw} is too large (at most 2**31 - 1 pixels)")
    if max(sh, sw) >= 2**40:
        raise ValueError(f"stride: expected values below 2**40, got ({sh}, {sw})")
    if max(dh, dw) >= 2**31:
        raise ValueError(f"dilation: expected values below 2**31, got ({dh}, {dw})")
    n_h, n_w = x.shape[1], x.shape[2]
    (pt, pb), (pl, pr) = resolve_padding(padding, (n_h, n_w), (kh, kw), (sh, sw), (dh, dw))
    if max(pt, pb) > kh // 2 or max(pl, pr) > kw // 2:
        raise ValueError(
            f"padding: at most half the pool size on each side (pool {kh}x{kw} allows "
            f"{kh // 2} rows and {kw // 2} columns), got (({pt}, {pb}), ({pl}, {pr}))"
        )
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if n_h + pt + pb < eh or n_w + pl + pr < ew:
        raise ValueError(
            f"pool_size: the {eh}x{ew} window is larger than the padded input "
            f"({n_h + pt + pb}x{n_w + pl + pr})"
        )
    oh = pool_output_size(n_h, kh, (pt, pb), sh, dh, ceil_mode)
    ow = pool_output_size(n_w, kw, (pl, pr), sw, dw, ceil_mode)
    return kh, kw, sh, sw, pt, pb, pl, pr, oh, ow


def _grad(dy, shape):
    dy = as_float32(dy, "dy", ndim=len(shape))
    if dy.shape != tuple(shape):
        raise ValueError(f"dy: expected shape {tuple(shape)} (the forward output), got {dy.shape}")
    return dy


def _bool(v, name):
    if not isinstance(v, bool):
        raise TypeError(f"{name}: expected True or False, got {type(v).__name__} {v!r}")
    return v


def _output_size(output_size, x):
    """int, or (h, w) where None keeps that input dimension."""
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"output_size: expected an int or a pair (h, w), got {output_size!r}")
        dims = [
            x.shape[1 + k] if v is None else as_int(v, "output_size", 1)
            for k, v in enumerate(output_size)
        ]
        oh, ow = dims
    else:
        oh, ow = as_pair(output_size, "output_size", 1)
    if oh >= 2**31 or ow >= 2**31:
        raise ValueError(f"output_size: too large, got ({oh}, {ow})")
    check_size((x.shape[0], oh, ow, x.shape[3]), "output_size")
    return oh, ow


# ------------------------------------------------------------- the windows


def adaptive_pool_windows(n: int, out: int):
    """The input windows ``[(start, end), ...]`` of adaptive pooling along one axis.

    Output ``i`` of ``out`` pools input pixels ``start <= t < end`` of ``n`` with::

        start = floor(i * n / out)
        end   = ceil((i + 1) * n / out)

    This works for any ``out >= 1``, smaller or larger than ``n``: windows may
    differ in size by one and overlap, and with ``out > n`` pixels repeat.

    When ``out`` divides ``n`` it is the course's formula exactly::

        stride = n // out
        kernel = n - (out - 1) * stride      # = stride
        padding = 0

    so window ``i`` is ``(i*stride, i*stride + kernel)``:

    >>> adaptive_pool_windows(6, 3)          # stride 2, kernel 2
    [(0, 2), (2, 4), (4, 6)]
    >>> [(i * 2, i * 2 + 2) for i in range(3)]
    [(0, 2), (2, 4), (4, 6)]

    When it does not, the formula is only an approximation.  For 5 -> 3 it
    gives stride 1, kernel 3 (windows (0,3), (1,4), (2,5)), while the exact
    rule gives

    >>> adaptive_pool_windows(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    >>> adaptive_pool_windows(2, 4)          # upsampling repeats pixels
    [(0, 1), (0, 1), (1, 2), (1, 2)]
    """
    n = as_int(n, "n", 1)
    out = as_int(out, "out", 1)
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


# ------------------------------------------------------------ max pooling


def max_pool2d(
    x: ArrayLike,
    pool_size: IntPair,
    stride: Optional[IntPair] = None,
    padding: Padding = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
):
    """Max pooling of NHWC ``x`` -> ``(m, n_H_out, n_W_out, n_C)``.

    Padding counts as -inf. ``stride`` defaults to ``pool_size``. Example: a
    2x2 pool with stride 2 halves n_H and n_W (28x28x8 -> 14x14x8).
    ``dilation`` spaces the window's taps; ``ceil_mode`` rounds the output
    size up (see the module docstring).
    """
    x = _input(x)
    dh, dw = as_pair(dilation, "dilation", 1)
    g = _geometry(x, pool_size, stride, padding, (dh, dw), ceil_mode)
    return _core.max_pool2d(x, *g[:8], dh, dw, ceil_mode)


def max_pool2d_backward(
    dy: ArrayLike,
    x: ArrayLike,
    pool_size: IntPair,
    stride: Optional[IntPair] = None,
    padding: Padding = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
):
    """Gradient of :func:`max_pool2d` w.r.t. ``x``.

    Each ``dy`` goes to the first maximum of its window (row-major order),
    recomputed from ``x``; overlapping windows add up.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
        >>> dx = F.max_pool2d_backward(np.ones((1, 2, 2, 1), np.float32), x, 2)
        >>> dx[0, :, :, 0]                                         # the gradient goes to each maximum
        array([[0., 0., 0., 0.],
               [0., 1., 0., 1.],
               [0., 0., 0., 0.],
               [0., 1., 0., 1.]], dtype=float32)
    """
    x = _input(x)
    dh, dw = as_pair(dilation, "dilation", 1)
    g = _geometry(x, pool_size, stride, padding, (dh, dw), ceil_mode)
    dy = _grad(dy, (x.shape[0], g[8], g[9], x.shape[3]))
    return _core.max_pool2d_backward(dy, x, *g[:8], dh, dw, ceil_mode)


# -------------------------------------------------------- average pooling


def avg_pool2d(
    x: ArrayLike,
    pool_size: IntPair,
    stride: Optional[IntPair] = None,
    padding: Padding = 0,
    count_include_pad: bool = True,
    ceil_mode: bool = False,
):
    """Average pooling of NHWC ``x`` -> ``(m, n_H_out, n_W_out, n_C)``.

    Padding counts as zeros; ``count_include_pad`` chooses whether the padded
    pixels count in the divisor (PyTorch's default, True) or not.
    ``ceil_mode`` rounds the output size up (see the module docstring).

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
        >>> F.avg_pool2d(x, 2)[0, :, :, 0]
        array([[ 2.5,  4.5],
               [10.5, 12.5]], dtype=float32)
    """
    x = _input(x)
    g = _geometry(x, pool_size, stride, padding, 1, ceil_mode)
    return _core.avg_pool2d(x, *g[:8], _bool(count_include_pad, "count_include_pad"), ceil_mode)


def avg_pool2d_backward(
    dy: ArrayLike,
    x: ArrayLike,
    pool_size: IntPair,
    stride: Optional[IntPair] = None,
    padding: Padding = 0,
    count_include_pad: bool = True,
    ceil_mode: bool = False,
):
    """Gradient of :func:`avg_pool2d` w.r.t. ``x`` (only x's shape is used).

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.zeros((1, 4, 4, 1), np.float32)
        >>> F.avg_pool2d_backward(np.ones((1, 2, 2, 1), np.float32), x, 2)[0, :2, :2, 0]
        array([[0.25, 0.25],
               [0.25, 0.25]], dtype=float32)
    """
    x = _input(x)
    g = _geometry(x, pool_size, stride, padding, 1, ceil_mode)
    dy = _grad(dy, (x.shape[0], g[8], g[9], x.shape[3]))
    return _core.avg_pool2d_backward(
        dy, x.shape[1], x.shape[2], *g[:8], _bool(count_include_pad, "count_include_pad"), ceil_mode
    )


# ------------------------------------------------------- adaptive pooling


def adaptive_avg_pool2d(x: ArrayLike, output_size: IntPair):
    """Adaptive average pooling to ``output_size`` (int or ``(h, w)``; None keeps a dim).

    Windows follow :func:`adaptive_pool_windows` on each axis.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.random.rand(2, 28, 28, 3).astype(np.float32)
        >>> F.adaptive_avg_pool2d(x, 7).shape                      # any n -> 7
        (2, 7, 7, 3)
        >>> F.adaptive_avg_pool2d(x, (4, None)).shape              # None keeps that dimension
        (2, 4, 28, 3)
    """
    x = _input(x)
    oh, ow = _output_size(output_size, x)
    return _core.adaptive_avg_pool2d(x, oh, ow)


def adaptive_avg_pool2d_backward(dy: ArrayLike, x: ArrayLike, output_size: IntPair):
    """Gradient of :func:`adaptive_avg_pool2d` w.r.t. ``x`` (only x's shape is used).

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.random.rand(1, 6, 6, 2).astype(np.float32)
        >>> F.adaptive_avg_pool2d_backward(np.ones((1, 3, 3, 2), np.float32), x, 3).shape
        (1, 6, 6, 2)
    """
    x = _input(x)
    oh, ow = _output_size(output_size, x)
    dy = _grad(dy, (x.shape[0], oh, ow, x.shape[3]))
    return _core.adaptive_avg_pool2d_backward(dy, x.shape[1], x.shape[2])


def adaptive_max_pool2d(x: ArrayLike, output_size: IntPair):
    """Adaptive max pooling to ``output_size`` (int or ``(h, w)``; None keeps a dim).

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
        >>> F.adaptive_max_pool2d(x, 2)[0, :, :, 0]
        array([[14., 17.],
               [32., 35.]], dtype=float32)
    """
    x = _input(x)
    oh, ow = _output_size(output_size, x)
    return _core.adaptive_max_pool2d(x, oh, ow)


def adaptive_max_pool2d_backward(dy: ArrayLike, x: ArrayLike, output_size: IntPair):
    """Gradient of :func:`adaptive_max_pool2d`: each dy to its window's first maximum.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
        >>> dx = F.adaptive_max_pool2d_backward(np.ones((1, 2, 2, 1), np.float32), x, 2)
        >>> float(dx.sum()), float(dx[0, 5, 5, 0])
        (4.0, 1.0)
    """
    x = _input(x)
    oh, ow = _output_size(output_size, x)
    dy = _grad(dy, (x.shape[0], oh, ow, x.shape[3]))
    return _core.adaptive_max_pool2d_backward(dy, x)


# --------------------------------------------------------- global pooling


def global_avg_pool2d(x: ArrayLike):
    """Mean over n_H and n_W: ``(m, n_H, n_W, n_C) -> (m, n_C)``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.ones((2, 7, 7, 16), np.float32)
        >>> F.global_avg_pool2d(x).shape                           # (m, n_H, n_W, n_C) -> (m, n_C)
        (2, 16)
    """
    return _core.global_avg_pool2d(_input(x))


def global_avg_pool2d_backward(dy: ArrayLike, x: ArrayLike):
    """Gradient of :func:`global_avg_pool2d`: ``dy / (n_H*n_W)`` at every pixel.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.ones((1, 2, 2, 3), np.float32)
        >>> F.global_avg_pool2d_backward(np.ones((1, 3), np.float32), x)[0, :, :, 0]
        array([[0.25, 0.25],
               [0.25, 0.25]], dtype=float32)
    """
    x = _input(x)
    dy = _grad(dy, (x.shape[0], x.shape[3]))
    return _core.global_avg_pool2d_backward(dy, x.shape[1], x.shape[2])
