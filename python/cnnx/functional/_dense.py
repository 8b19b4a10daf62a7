"""Dense (fully-connected) layer on the core SGEMM."""

from __future__ import annotations

from typing import Optional

import math


from .. import _core
from .._types import ArrayLike
from .._validate import as_float32

_ACTIVATIONS = (None, "relu")


def _check_x_w(x, w):
    x = as_float32(x, "x")
    w = as_float32(w, "w", ndim=2)
    if x.ndim < 1:
        raise ValueError("x: expected an array of shape (..., n_in), got a scalar")
    if x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"w: expected {x.shape[-1]} rows (x has n_in = {x.shape[-1]}), got shape {w.shape}"
        )
    return x, w


def dense(
    x: ArrayLike, w: ArrayLike, b: Optional[ArrayLike] = None, activation: Optional[str] = None
):
    """Fully-connected layer ``y = activation(x @ w + b)``.

    ``x``: ``(..., n_in)`` (usually ``(m, n_in)``); ``w``: ``(n_in, n_out)``;
    ``b``: ``(n_out,)`` or None; ``activation``: None or ``"relu"`` (fused
    into the GEMM's store: no extra pass over ``y``). Returns ``(..., n_out)``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.ones((4, 3), np.float32); w = np.full((3, 2), 0.5, np.float32)
        >>> F.dense(x, w, np.array([1, -5], np.float32), activation="relu")[0]
        array([2.5, 0. ], dtype=float32)
    """
    x, w = _check_x_w(x, w)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected None or 'relu', got {activation!r}")
    n_out = w.shape[1]
    if b is not None:
        b = as_float32(b, "b", ndim=1)
        if b.shape[0] != n_out:
            raise ValueError(f"b: expected shape ({n_out},), got {b.shape}")
    lead = x.shape[:-1]
    x2 = x.reshape(math.prod(lead), w.shape[0])  # not -1: n_in may be 0
    y = _core.dense(x2, w, b, activation == "relu")
    return y.reshape(lead + (n_out,))


def dense_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, need_dx: bool = True):
    """Gradients of ``y = x @ w + b``: returns ``(dx, dw, db)``.

    ``dx = dy @ w.T``, ``dw = x.T @ dy``, ``db = dy.sum(0)``, computed by
    transposed GEMMs on the stored arrays (no transposed copies). With
    ``need_dx=False`` (first layer) ``dx`` is None. An activation fused in the
    forward pass is not undone here: apply e.g. :func:`relu_backward` first.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.ones((4, 3), np.float32); w = np.ones((3, 2), np.float32)
        >>> dx, dw, db = F.dense_backward(np.ones((4, 2), np.float32), x, w)
        >>> dx.shape, dw.shape, db.tolist()
        ((4, 3), (3, 2), [4.0, 4.0])
    """
    x, w = _check_x_w(x, w)
    dy = as_float32(dy, "dy")
    n_in, n_out = w.shape
    expect = x.shape[:-1] + (n_out,)
    if dy.shape != expect:
        raise ValueError(f"dy: expected shape {expect}, got {dy.shape}")
    dx, dw, db = _core.dense_backward(
        dy.reshape(math.prod(x.shape[:-1]), n_out),
        x.reshape(math.prod(x.shape[:-1]), n_in),
        w,
        bool(need_dx),
        True,
        True,
    )
    if dx is not None:
        dx = dx.reshape(x.shape)
    return dx, dw, db
