"""2-D convolution, forward and backward, on the C++ core.

Layouts: ``x`` NHWC ``(m, n_H, n_W, n_C_prev)``, ``w`` HWIO
``(f_h, f_w, n_C_prev // groups, n_C)``, ``b`` ``(n_C,)``. The operation is
cross-correlation (no filter flip), as in every deep-learning library; the
output has ``floor((n + p_before + p_after - ((f - 1)*d + 1)) / s) + 1``
pixels along each dimension (the course's ``floor((n + 2p - f)/s) + 1``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _core
from .._types import ArrayLike, IntPair, Padding
from .._validate import as_float32, as_int, as_pair, check_size
from ._shapes import output_hw, resolve_padding

_ACTIVATIONS = (None, "relu")
_MAX_EXTENT = 2**40  # per-axis limit of padded inputs, filters and strides


def _geometry(x_shape, w_shape, stride, padding, dilation, groups):
    """Validated (stride, dilation, groups, flat pads, out_hw) for these shapes."""
    s = as_pair(stride, "stride", 1)
    d = as_pair(dilation, "dilation", 1)
    g = as_int(groups, "groups", 1)
    _, h, wd, c_in = x_shape
    f_h, f_w, c_in_g, c_out = w_shape
    if c_in < 1:
        raise ValueError(f"x: expected at least one channel, got shape {x_shape}")
    if h < 1 or wd < 1:
        raise ValueError(f"x: expected a non-empty image (n_H, n_W >= 1), got shape {x_shape}")
    if f_h < 1 or f_w < 1 or c_out < 1:
        raise ValueError(
            f"w: expected a non-empty (f_h, f_w, n_C_prev/groups, n_C) filter, got shape {w_shape}"
        )
    if c_in % g or c_out % g:
        raise ValueError(
            f"groups: {g} must divide both the input channels ({c_in}) and the "
            f"output channels ({c_out})"
        )
    if c_in_g * g != c_in:
        raise ValueError(
            f"w: expected {c_in // g} input channels per group (x has {c_in} "
            f"channels, groups={g}), got shape {w_shape}"
        )
    # Keep every pixel coordinate far from int64 overflow in the kernels.
    if max(s) >= _MAX_EXTENT:
        raise ValueError(f"stride: expected values below 2**40, got {s}")
    if max(d) >= _MAX_EXTENT:
        raise ValueError(f"dilation: expected values below 2**40, got {d}")
    for f, dd in ((f_h, d[0]), (f_w, d[1])):
        if (f - 1) * dd + 1 >= _MAX_EXTENT:
            raise ValueError(
                f"dilation: the dilated filter ((f - 1)*d + 1 = ({f} - 1)*{dd} + 1 "
                f"pixels) must span fewer than 2**40 pixels"
            )
    pads = resolve_padding(padding, (h, wd), (f_h, f_w), s, d)
    for n, (p0, p1) in zip((h, wd), pads):
        if n + p0 + p1 >= _MAX_EXTENT:
            raise ValueError(
                f"padding: the padded input ({n} + {p0} + {p1} pixels) must span "
                f"fewer than 2**40 pixels per axis"
            )
    try:
        out = output_hw((h, wd), (f_h, f_w), pads, s, d)
    except ValueError as e:
        msg = str(e)
        raise ValueError("w: " + msg[3:] if msg.startswith("f: ") else msg) from None
    if out[0] * out[1] * c_out >= 2**62:
        raise ValueError(
            f"padding: each output image would hold {out[0]}x{out[1]}x{c_out} values, "
            f"too many to index"
        )
    flat = (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    return s, d, g, flat, out


# Layers call conv2d with the same geometry every step: validating it once
# saves tens of microseconds per call, which matters at batch 1. The key uses
# repr() so that 1, True and 1.0 stay distinct (only 1 is valid).
_GEOMETRY_CACHE: dict[tuple, Any] = {}


def _prepare(x, w, stride, padding, dilation, groups):
    x = as_float32(x, "x", ndim=4)
    w = as_float32(w, "w", ndim=4)
    key = (x.shape[1:], w.shape, repr(stride), repr(padding), repr(dilation), repr(groups))
    geo = _GEOMETRY_CACHE.get(key)
    if geo is None:
        check_size(x.shape, "x")
        check_size(w.shape, "w")
        geo = _geometry(x.shape, w.shape, stride, padding, dilation, groups)
        if len(_GEOMETRY_CACHE) > 512:
            _GEOMETRY_CACHE.clear()
        _GEOMETRY_CACHE[key] = geo
    elif x.shape[0] >= 2**40:
        check_size(x.shape, "x")
    s, d, g, flat, out = geo
    if x.shape[0] * out[0] * out[1] * w.shape[3] >= 2**61:  # NumPy: "array is too big"
        raise ValueError(
            f"x: a batch of {x.shape[0]} gives outputs of {out[0]}x{out[1]}x"
            f"{w.shape[3]} values each, too many to allocate"
        )
    return x, w, s, d, g, flat, out


def conv2d(
    x: ArrayLike,
    w: ArrayLike,
    b: Optional[ArrayLike] = None,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
    groups=1,
    activation: Optional[str] = None,
):
    """Convolution (cross-correlation) of NHWC ``x`` with HWIO ``w``.

    Args:
        x: ``(m, n_H, n_W, n_C_prev)``.
        w: ``(f_h, f_w, n_C_prev // groups, n_C)``.
        b: optional bias ``(n_C,)``.
        stride, dilation: int or ``(h, w)``.
        padding: ``"valid"``, ``"same"`` (TensorFlow rule: output ``ceil(n/s)``,
            odd pixel bottom/right), an int, ``(p_h, p_w)`` or
            ``((top, bottom), (left, right))``; zeros are padded.
        groups: channel groups; ``groups == n_C_prev`` is depthwise.
        activation: ``None`` or ``"relu"``, fused into the kernel.

    Returns ``(m, n_H_out, n_W_out, n_C)`` float32.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.random.rand(2, 32, 32, 3).astype(np.float32)      # NHWC
        >>> w = np.random.rand(5, 5, 3, 8).astype(np.float32)        # HWIO
        >>> F.conv2d(x, w).shape                                     # "valid": 32 - 5 + 1 = 28
        (2, 28, 28, 8)
        >>> F.conv2d(x, w, padding="same", stride=2).shape           # ceil(32 / 2) = 16
        (2, 16, 16, 8)
    """
    x, w, s, d, g, pads, _ = _prepare(x, w, stride, padding, dilation, groups)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected None or 'relu', got {activation!r}")
    if b is not None:
        b = as_float32(b, "b", ndim=1)
        if b.shape[0] != w.shape[3]:
            raise ValueError(f"b: expected shape ({w.shape[3]},), got {b.shape}")
    return _core.conv2d_forward(x, w, b, s, d, pads, g, activation == "relu")


def conv2d_backward(
    dy: ArrayLike,
    x: ArrayLike,
    w: ArrayLike,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
    groups=1,
    need_dx: bool = True,
):
    """Gradients of :func:`conv2d` -> ``(dx, dw, db)``.

    ``dy`` is dL/dy (already through any activation's derivative). ``dx`` is
    ``None`` when ``need_dx=False`` (e.g. the first layer), which saves its cost.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.random.rand(2, 8, 8, 3).astype(np.float32)
        >>> w = np.random.rand(3, 3, 3, 4).astype(np.float32)
        >>> dy = np.ones((2, 6, 6, 4), np.float32)
        >>> dx, dw, db = F.conv2d_backward(dy, x, w)
        >>> dx.shape, dw.shape, db.shape
        ((2, 8, 8, 3), (3, 3, 3, 4), (4,))
    """
    x, w, s, d, g, pads, out = _prepare(x, w, stride, padding, dilation, groups)
    dy = as_float32(dy, "dy", ndim=4)
    expect = (x.shape[0], out[0], out[1], w.shape[3])
    if dy.shape != expect:
        raise ValueError(f"dy: expected shape {expect} (the output of conv2d), got {dy.shape}")
    if not isinstance(need_dx, (bool, np.bool_)):
        raise TypeError(f"need_dx: expected a bool, got {type(need_dx).__name__}")
    return _core.conv2d_backward(dy, x, w, s, d, pads, g, bool(need_dx))


def conv2d_algorithm(
    x_shape,
    w_shape,
    stride: IntPair = 1,
    padding: Padding = "valid",
    dilation: IntPair = 1,
    groups=1,
):
    """Name of the algorithm :func:`conv2d` uses for these shapes
    (``"gemm_1x1"``, ``"implicit_gemm"``, ``"implicit_gemm_t"``, ``"igemm"``,
    ``"depthwise"``).

    Examples:
        >>> import cnnx.functional as F
        >>> F.conv2d_algorithm((8, 56, 56, 64), (1, 1, 64, 128))   # a 1x1 convolution is one GEMM
        'gemm_1x1'
    """
    x = np.empty((1,) + tuple(x_shape)[1:], np.float32)
    w = np.empty(tuple(w_shape), np.float32)
    x, w, s, d, g, pads, _ = _prepare(x, w, stride, padding, dilation, groups)
    # the choice can depend on the batch size: pass it (x itself is one image)
    return _core.conv2d_algorithm(x, w, s, d, pads, g, n=int(tuple(x_shape)[0]))
