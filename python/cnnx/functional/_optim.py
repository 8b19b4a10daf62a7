"""Fused optimiser updates: one C++ pass over flat float32 buffers, in place,
with the GIL released. ``cnnx.optim.SGD`` / ``Adam`` / ``AdamW`` are built on
these; the semantics are exactly ``torch.optim``'s."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._types import ArrayLike
from .._validate import as_float32


def _buf(a, name, n=None):
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        got = str(a.dtype) if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name}: expected a float32 NumPy array (updated in place), got {got}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name}: expected a writeable C-contiguous array (updated in place)")
    if n is not None and a.size != n:
        raise ValueError(f"{name}: expected {n} elements (like param), got {a.size}")
    return a


def _num(v, name, lo=None, hi=None, open_lo=False, open_hi=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    v = float(v)
    bad = not np.isfinite(v)
    if lo is not None:
        bad = bad or v < lo or (open_lo and v == lo)
    if hi is not None:
        bad = bad or v > hi or (open_hi and v == hi)
    if bad:
        raise ValueError(
            f"{name}: expected a number in {'(' if open_lo else '['}{lo}, "
            f"{hi}{')' if open_hi else ']'}, got {v}"
        )
    return v


def _grad(grad, n):
    g = as_float32(grad, "grad")
    if g.size != n:
        raise ValueError(f"grad: expected {n} elements (like param), got {g.size}")
    return g


def sgd_update(
    param: ArrayLike,
    grad: ArrayLike,
    velocity=None,
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
):
    """One SGD step in place (``torch.optim.SGD``, dampening 0)::

        g = grad + weight_decay * param
        v = momentum * v + g                       (momentum > 0; v starts at 0)
        g = g + momentum * v if nesterov else v
        param -= lr * g

    ``param`` and ``velocity`` are float32 C-contiguous arrays of any shape,
    updated in place; ``velocity`` is needed when ``momentum > 0``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> p = np.ones(3, np.float32); g = np.full(3, 0.5, np.float32)
        >>> F.sgd_update(p, g, lr=0.1)                                # in place
        >>> p
        array([0.95, 0.95, 0.95], dtype=float32)
    """
    param = _buf(param, "param")
    grad = _grad(grad, param.size)
    lr = _num(lr, "lr", 0.0)
    momentum = _num(momentum, "momentum", 0.0, 1.0)
    weight_decay = _num(weight_decay, "weight_decay", 0.0)
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov: Nesterov momentum needs momentum > 0")
    if momentum > 0.0:
        if velocity is None:
            raise ValueError("velocity: needed when momentum > 0 (start with zeros)")
        velocity = _buf(velocity, "velocity", param.size)
    else:
        velocity = None
    _core.sgd_update(param, grad, velocity, lr, momentum, bool(nesterov), weight_decay)


def adam_update(
    param: ArrayLike,
    grad: ArrayLike,
    m: ArrayLike,
    v: ArrayLike,
    step,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
):
    """One Adam (``decoupled=False``, L2 added to the gradient) or AdamW
    (``decoupled=True``: ``param *= 1 - lr * weight_decay``) step in place,
    bias-corrected, exactly ``torch.optim.Adam`` / ``AdamW``::

        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g**2
        param -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

    ``step`` counts from 1 (the step being taken); ``m``, ``v`` start at zero.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> p = np.ones(3, np.float32); g = np.ones(3, np.float32)
        >>> m = np.zeros(3, np.float32); v = np.zeros(3, np.float32)
        >>> F.adam_update(p, g, m, v, step=1, lr=0.1)                 # first step moves by lr
        >>> np.round(p, 4)
        array([0.9, 0.9, 0.9], dtype=float32)
    """
    param = _buf(param, "param")
    grad = _grad(grad, param.size)
    m = _buf(m, "m", param.size)
    v = _buf(v, "v", param.size)
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step: expected an int, got {type(step).__name__} {step!r}")
    if step < 1:
        raise ValueError(f"step: expected an int >= 1 (the step being taken), got {step}")
    lr = _num(lr, "lr", 0.0)
    beta1 = _num(beta1, "beta1", 0.0, 1.0, open_hi=True)
    beta2 = _num(beta2, "beta2", 0.0, 1.0, open_hi=True)
    eps = _num(eps, "eps", 0.0, open_lo=True)
    weight_decay = _num(weight_decay, "weight_decay", 0.0)
    _core.adam_update(
        param, grad, m, v, int(step), lr, beta1, beta2, eps, weight_decay, bool(decoupled)
    )
