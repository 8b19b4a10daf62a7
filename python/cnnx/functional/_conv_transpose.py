"""Transposed 2-D convolution ("deconvolution"), forward and backward.

Layouts: ``x`` NHWC ``(m, n_H, n_W, n_C_prev)``, ``w`` ``(f_h, f_w, n_C // groups,
n_C_prev)`` (Keras's Conv2DTranspose kernel; PyTorch's ConvTranspose2d weight
``(n_C_prev, n_C // groups, f_h, f_w)`` is ``w.transpose(3, 2, 0, 1)``), ``b``
``(n_C,)``.

Every input pixel spreads a ``w``-weighted copy of itself over an f x f
patch of the output, patches ``s`` pixels apart: the backward-data pass of
an ordinary convolution. Output size per axis::

    (n - 1)*s - p_before - p_after + d*(f - 1) + output_padding + 1

``padding``: ``"valid"`` (none), ``"same"`` (output ``n*s``: Keras's rule), an
int, ``(p_h, p_w)`` or ``((top, bottom), (left, right))``. ``output_padding``
(None, an int or a pair) adds rows at the bottom / columns at the right; it
must be smaller than the stride or the dilation. With ``output_padding=None``
Keras's sizes apply: ``"valid"`` gives ``n*s + max(f_eff - s, 0)``, ``"same"``
``n*s``, explicit pads no extra row.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .._types import ArrayLike, IntPair, Padding
from .._validate import as_float32, as_int, as_pair, check_size
from ._shapes import same_padding

__all__ = [
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose_geometry",
    "conv_transpose_output_size",
]


def conv_transpose_output_size(
    n, f, padding: Padding = 0, stride: IntPair = 1, dilation: IntPair = 1, output_padding=0
):
    """``(n - 1)*s - p_before - p_after + d*(f - 1) + output_padding + 1`` for one axis
    (``padding`` an int for both sides or a pair ``(before, after)``)."""
    if isinstance(padding, (tuple, list)):
        p0, p1 = (as_int(p, "padding", 0) for p in padding)
    else:
        p0 = p1 = as_int(padding, "padding", 0)
    n, f = as_int(n, "n", 1), as_int(f, "f", 1)
    s, d = as_int(stride, "stride", 1), as_int(dilation, "dilation", 1)
    op = as_int(output_padding, "output_padding", 0)
    return (n - 1) * s - p0 - p1 + d * (f - 1) + op + 1


def _pads_and_output_padding(padding, output_padding, in_hw, kernel_hw, strides, dilations):
    """((top, bottom), (left, right)) and (op_h, op_w), Keras's rules when output_padding is None."""
    f_eff = [(f - 1) * d + 1 for f, d in zip(kernel_hw, dilations)]
    ops = None if output_padding is None else as_pair(output_padding, "output_padding", 0)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in ("valid", "same"):
            raise ValueError(
                f"padding: expected 'valid', 'same', an int, (p_h, p_w) or "
                f"((top, bottom), (left, right)), got {padding!r}"
            )
        if mode == "valid":
            pads = ((0, 0), (0, 0))
            if ops is None:
                ops = tuple(max(s - fe, 0) for s, fe in zip(strides, f_eff))
        elif ops is None:  # the conv whose gradient this is, on an n*s input, with "same"
            pads = tuple(
                same_padding(n * s, f, s, d)
                for n, f, s, d in zip(in_hw, kernel_hw, strides, dilations)
            )
            ops = tuple(s - fe + p0 + p1 for s, fe, (p0, p1) in zip(strides, f_eff, pads))
        else:  # Keras: a symmetric f_eff // 2 once output_padding is given
            pads = tuple((fe // 2, fe // 2) for fe in f_eff)
    else:
        if padding is None:
            raise TypeError("padding: expected 'valid', 'same', an int or a pair, got None")
        if (
            isinstance(padding, (tuple, list))
            and len(padding) == 2
            and all(isinstance(p, (tuple, list)) for p in padding)
        ):
            pads = tuple(as_pair(p, "padding", 0) for p in padding)
        else:
            ph, pw = as_pair(padding, "padding", 0)
            pads = ((ph, ph), (pw, pw))
        if ops is None:
            ops = (0, 0)
    for op, s, d, axis in zip(ops, strides, dilations, ("height", "width")):
        if op >= s and op >= d:
            raise ValueError(
                f"output_padding: must be smaller than the stride or the dilation "
                f"(PyTorch's rule), got {op} for the {axis} with stride {s} and "
                f"dilation {d}"
            )
    return pads, ops


def conv_transpose_geometry(
    input_shape,
    kernel_size: IntPair,
    filters,
    strides: IntPair = 1,
    padding: Padding = "valid",
    output_padding=None,
    dilation: IntPair = 1,
    groups=1,
):
    """The validated geometry of a transposed convolution on an ``(n_H, n_W, n_C_prev)``
    input: a dict with ``pads`` ((top, bottom), (left, right)), ``output_padding``,
    ``strides``, ``dilation``, ``groups`` and ``output_shape`` (n_H', n_W', filters)."""
    h, w, c = (int(v) for v in input_shape)
    kh, kw = as_pair(kernel_size, "kernel_size", 1)
    filters = as_int(filters, "filters", 1)
    s = as_pair(strides, "strides", 1)
    d = as_pair(dilation, "dilation", 1)
    g = as_int(groups, "groups", 1)
    if c % g or filters % g:
        raise ValueError(
            f"groups: {g} must divide both the input channels ({c}) and the filters ({filters})"
        )
    if max(s + d) >= 2**20 or max(kh, kw) >= 2**20:
        raise ValueError(
            f"strides: strides, dilations and kernel sizes must be below 2**20, "
            f"got strides {s}, dilation {d}, kernel {(kh, kw)}"
        )
    pads, ops = _pads_and_output_padding(padding, output_padding, (h, w), (kh, kw), s, d)
    out = tuple(
        conv_transpose_output_size(n, f, p, st, dd, op)
        for n, f, p, st, dd, op in zip((h, w), (kh, kw), pads, s, d, ops)
    )
    if min(out) < 1:
        raise ValueError(
            f"padding: {pads} removes the whole output (size {out} from "
            f"(n-1)*s - pads + d*(f-1) + output_padding + 1)"
        )
    check_size((1,) + out + (filters,), "padding")
    return {
        "pads": pads,
        "output_padding": ops,
        "strides": s,
        "dilation": d,
        "groups": g,
        "kernel_size": (kh, kw),
        "output_shape": out + (filters,),
    }


def _prepare(x, w, stride, padding, output_padding, dilation, groups):
    x = as_float32(x, "x", ndim=4)
    w = as_float32(w, "w", ndim=4)
    check_size(x.shape, "x")
    if min(x.shape[1:]) < 1:
        raise ValueError(f"x: expected a non-empty (m, n_H, n_W, n_C_prev) batch, got {x.shape}")
    if min(w.shape) < 1:
        raise ValueError(
            f"w: expected a non-empty (f_h, f_w, n_C/groups, n_C_prev) filter, got {w.shape}"
        )
    g = as_int(groups, "groups", 1)
    if w.shape[3] != x.shape[3]:
        raise ValueError(
            f"w: expected its last axis to be x's {x.shape[3]} channels "
            f"(f_h, f_w, n_C/groups, n_C_prev), got shape {w.shape}"
        )
    geo = conv_transpose_geometry(
        x.shape[1:], w.shape[:2], w.shape[2] * g, stride, padding, output_padding, dilation, g
    )
    (pt, pb), (pl, pr) = geo["pads"]
    return x, w, geo, (pt, pb, pl, pr)


def conv_transpose2d(
    x: ArrayLike,
    w: ArrayLike,
    b: Optional[ArrayLike] = None,
    stride: IntPair = 1,
    padding: Padding = "valid",
    output_padding=None,
    dilation: IntPair = 1,
    groups=1,
    activation: Optional[str] = None,
):
    """Transposed convolution of NHWC ``x`` with ``w`` ``(f_h, f_w, n_C // groups, n_C_prev)``.

    Returns ``(m, n_H', n_W', n_C)``; see the module docstring for sizes,
    ``padding`` and ``output_padding``. ``activation``: None or ``"relu"``
    (fused into the store).
    """
    x, w, geo, pads = _prepare(x, w, stride, padding, output_padding, dilation, groups)
    if activation not in (None, "relu"):
        raise ValueError(f"activation: expected None or 'relu', got {activation!r}")
    n_out = w.shape[2] * geo["groups"]
    if b is not None:
        b = as_float32(b, "b", ndim=1)
        if b.shape[0] != n_out:
            raise ValueError(f"b: expected shape ({n_out},), got {b.shape}")
    return _core.conv_transpose2d_forward(
        x,
        w,
        b,
        geo["strides"],
        geo["dilation"],
        pads,
        geo["output_padding"],
        geo["groups"],
        activation == "relu",
    )


def conv_transpose2d_backward(
    dy: ArrayLike,
    x: ArrayLike,
    w: ArrayLike,
    stride: IntPair = 1,
    padding: Padding = "valid",
    output_padding=None,
    dilation: IntPair = 1,
    groups=1,
    need_dx: bool = True,
):
    """Gradients of :func:`conv_transpose2d` -> ``(dx, dw, db)`` (``dx`` None when
    ``need_dx=False``). ``dy`` is dL/dy, already through any activation."""
    x, w, geo, pads = _prepare(x, w, stride, padding, output_padding, dilation, groups)
    dy = as_float32(dy, "dy", ndim=4)
    expect = (x.shape[0],) + geo["output_shape"]
    if dy.shape != expect:
        raise ValueError(
            f"dy: expected shape {expect} (the output of conv_transpose2d), got {dy.shape}"
        )
    if not isinstance(need_dx, (bool, np.bool_)):
        raise TypeError(f"need_dx: expected a bool, got {type(need_dx).__name__}")
    return _core.conv_transpose2d_backward(
        dy,
        x,
        w,
        geo["strides"],
        geo["dilation"],
        pads,
        geo["output_padding"],
        geo["groups"],
        bool(need_dx),
    )
