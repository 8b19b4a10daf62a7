"""Activations (ReLU, LeakyReLU, sigmoid, tanh, softmax), forward and
backward. Elementwise, any shape; softmax along one axis."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._types import ArrayLike
from .._validate import as_float32


def _same_shape(a, ref, name, ref_name):
    if a.shape != ref.shape:
        raise ValueError(f"{name}: expected shape {ref.shape} (like {ref_name}), got {a.shape}")


def _as_float(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


def _axis(axis, ndim):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis: expected an int, got {type(axis).__name__} {axis!r}")
    axis = int(axis)
    if ndim == 0:
        raise ValueError("x: softmax needs at least a 1-D array, got a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: expected an int in [{-ndim}, {ndim}), got {axis}")
    return axis % ndim


def relu(x: ArrayLike):
    """``max(x, 0)`` elementwise.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.relu(np.array([-1.0, 0.0, 2.0, np.nan], np.float32))   # NaN stays NaN
        array([ 0.,  0.,  2., nan], dtype=float32)
    """
    return _core.relu(as_float32(x, "x"))


def relu_backward(dy: ArrayLike, x: ArrayLike):
    """``dy`` where ``x > 0``, else 0 (the forward input ``x``).

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.relu_backward(np.ones(3, np.float32), np.array([-1.0, 0.5, 2.0], np.float32))
        array([0., 1., 1.], dtype=float32)
    """
    x = as_float32(x, "x")
    dy = as_float32(dy, "dy")
    _same_shape(dy, x, "dy", "x")
    return _core.relu_backward(dy, x)


def leaky_relu(x: ArrayLike, alpha: float = 0.01):
    """``x`` where ``x > 0``, else ``alpha * x``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.leaky_relu(np.array([-10.0, 3.0], np.float32), alpha=0.1)
        array([-1.,  3.], dtype=float32)
    """
    alpha = _as_float(alpha, "alpha")
    return _core.leaky_relu(as_float32(x, "x"), alpha)


def leaky_relu_backward(dy: ArrayLike, x: ArrayLike, alpha: float = 0.01):
    """``dy`` where ``x > 0``, else ``alpha * dy``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.leaky_relu_backward(np.ones(2, np.float32), np.array([-10.0, 3.0], np.float32), 0.1)
        array([0.1, 1. ], dtype=float32)
    """
    alpha = _as_float(alpha, "alpha")
    x = as_float32(x, "x")
    dy = as_float32(dy, "dy")
    _same_shape(dy, x, "dy", "x")
    return _core.leaky_relu_backward(dy, x, alpha)


def sigmoid(x: ArrayLike):
    """``1 / (1 + exp(-x))``, saturating to 0 and 1 without overflow.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.sigmoid(np.array([0.0], np.float32))
        array([0.5], dtype=float32)
    """
    return _core.sigmoid(as_float32(x, "x"))


def sigmoid_backward(dy: ArrayLike, y: ArrayLike):
    """From the forward *output* ``y``: ``dy * y * (1 - y)``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> y = F.sigmoid(np.array([0.0], np.float32))               # backward takes the output
        >>> F.sigmoid_backward(np.ones(1, np.float32), y)
        array([0.25], dtype=float32)
    """
    y = as_float32(y, "y")
    dy = as_float32(dy, "dy")
    _same_shape(dy, y, "dy", "y")
    return _core.sigmoid_backward(dy, y)


def tanh(x: ArrayLike):
    """Hyperbolic tangent elementwise.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.tanh(np.array([0.0], np.float32))
        array([0.], dtype=float32)
    """
    return _core.tanh(as_float32(x, "x"))


def tanh_backward(dy: ArrayLike, y: ArrayLike):
    """From the forward *output* ``y``: ``dy * (1 - y**2)``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> y = F.tanh(np.array([0.0], np.float32))
        >>> F.tanh_backward(np.ones(1, np.float32), y)
        array([1.], dtype=float32)
    """
    y = as_float32(y, "y")
    dy = as_float32(dy, "dy")
    _same_shape(dy, y, "dy", "y")
    return _core.tanh_backward(dy, y)


def softmax(x: ArrayLike, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis`` (the row maximum is subtracted
    first, so large logits do not overflow).

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.softmax(np.array([[0.0, 0.0], [1000.0, 1000.0]], np.float32))   # stable for large logits
        array([[0.5, 0.5],
               [0.5, 0.5]], dtype=float32)
    """
    x = as_float32(x, "x")
    return _core.softmax(x, _axis(axis, x.ndim))


def softmax_backward(dy: ArrayLike, y: ArrayLike, axis=-1):
    """From the forward *output* ``y``: ``y * (dy - sum(dy * y, axis))``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> y = F.softmax(np.zeros((1, 2), np.float32))
        >>> F.softmax_backward(np.array([[1.0, 0.0]], np.float32), y)
        array([[ 0.25, -0.25]], dtype=float32)
    """
    y = as_float32(y, "y")
    dy = as_float32(dy, "dy")
    _same_shape(dy, y, "dy", "y")
    return _core.softmax_backward(dy, y, _axis(axis, y.ndim))
