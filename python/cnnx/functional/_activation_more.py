"""More activations (issue 19), forward and backward: ELU, SELU, GELU (erf
and tanh forms), SiLU (Swish), Hardswish, Hardsigmoid, ReLU6 and Clip,
Softplus, Softsign, LogSoftmax and PReLU. Elementwise ones take any shape.

Definitions follow PyTorch (and ONNX where it has the operator). Every
backward takes the forward INPUT ``x`` (log-softmax: its output ``y``); at a
kink the gradient is PyTorch's: Clip and Hardsigmoid pass it only strictly
inside their linear range, Hardswish's is ``(2x + 3)/6`` strictly between -3
and 3 (0 at -3, 1 at 3).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _core
from .._types import ArrayLike
from .._validate import as_float32
from ._activation import _axis, _same_shape

__all__ = [
    "elu",
    "elu_backward",
    "selu",
    "selu_backward",
    "gelu",
    "gelu_backward",
    "silu",
    "silu_backward",
    "hardswish",
    "hardswish_backward",
    "hardsigmoid",
    "hardsigmoid_backward",
    "relu6",
    "relu6_backward",
    "clip",
    "clip_backward",
    "softplus",
    "softplus_backward",
    "softsign",
    "softsign_backward",
    "log_softmax",
    "log_softmax_backward",
    "prelu",
    "prelu_backward",
    "SELU_ALPHA",
    "SELU_SCALE",
    "GELU_FORMS",
]

#: SELU's constants (Klambauer et al. 2017), as PyTorch and ONNX
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

#: ``approximate=`` values of gelu: the exact erf form and the tanh approximation
GELU_FORMS = ("none", "tanh")

_PW = _core.Pointwise


def _number(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


def _bounds(min_value, max_value):
    lo = _number(min_value, "min_value")
    hi = _number(max_value, "max_value")
    if lo > hi:
        raise ValueError(
            f"min_value: must not exceed max_value, got min_value={lo} > max_value={hi}"
        )
    return lo, hi


def gelu_form(approximate):
    """``approximate`` (False/"none": erf, True/"tanh") -> the Pointwise kind."""
    if approximate is True or approximate == "tanh":
        return _PW.gelu_tanh
    if approximate is False or approximate is None or approximate == "none":
        return _PW.gelu
    raise ValueError(
        f"approximate: expected 'none' (the erf form), 'tanh', True or False, got {approximate!r}"
    )


def _fwd(x, kind, a=0.0, b=0.0):
    return _core.pointwise(as_float32(x, "x"), kind, a, b)


def _bwd(dy, x, kind, a=0.0, b=0.0):
    x = as_float32(x, "x")
    dy = as_float32(dy, "dy")
    _same_shape(dy, x, "dy", "x")
    return _core.pointwise_backward(dy, x, kind, a, b)


def elu(x: ArrayLike, alpha: float = 1.0):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return _fwd(x, _PW.elu, _number(alpha, "alpha"))


def elu_backward(dy: ArrayLike, x: ArrayLike, alpha: float = 1.0):
    """``dy`` where ``x > 0``, else ``dy * alpha * exp(x)``."""
    return _bwd(dy, x, _PW.elu, _number(alpha, "alpha"))


def selu(x: ArrayLike):
    """``SELU_SCALE * elu(x, SELU_ALPHA)``: self-normalising."""
    return _fwd(x, _PW.selu, SELU_ALPHA, SELU_SCALE)


def selu_backward(dy: ArrayLike, x: ArrayLike):
    """Gradient of :func:`selu` w.r.t. ``x``: ``dy * SELU_SCALE`` where ``x > 0``, else ``dy *
    SELU_SCALE * SELU_ALPHA * exp(x)``."""
    return _bwd(dy, x, _PW.selu, SELU_ALPHA, SELU_SCALE)


def gelu(x: ArrayLike, approximate="none"):
    """``x * Phi(x)`` with Phi the standard normal CDF (``approximate="none"``), or
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``"tanh"``)."""
    return _fwd(x, gelu_form(approximate))


def gelu_backward(dy: ArrayLike, x: ArrayLike, approximate="none"):
    """erf form: ``dy * (Phi(x) + x phi(x))``; tanh form: its derivative."""
    return _bwd(dy, x, gelu_form(approximate))


def silu(x: ArrayLike):
    """``x * sigmoid(x)`` (Swish)."""
    return _fwd(x, _PW.silu)


def silu_backward(dy: ArrayLike, x: ArrayLike):
    """``dy * s * (1 + x * (1 - s))``, ``s = sigmoid(x)``."""
    return _bwd(dy, x, _PW.silu)


def hardswish(x: ArrayLike):
    """``x * relu6(x + 3) / 6``."""
    return _fwd(x, _PW.hardswish)


def hardswish_backward(dy: ArrayLike, x: ArrayLike):
    """Gradient of :func:`hardswish` w.r.t. ``x``: ``dy * (2x + 3) / 6`` on ``(-3, 3)``,
    ``dy`` for ``x >= 3``, else 0 (PyTorch 2.x's values at +-3)."""
    return _bwd(dy, x, _PW.hardswish)


def hardsigmoid(x: ArrayLike, alpha: float = 1.0 / 6.0, beta: float = 0.5):
    """``max(0, min(1, alpha * x + beta))``; the defaults are PyTorch's and
    Keras's ``relu6(x + 3) / 6`` (ONNX's HardSigmoid defaults to alpha 0.2)."""
    return _fwd(x, _PW.hardsigmoid, _number(alpha, "alpha"), _number(beta, "beta"))


def hardsigmoid_backward(dy: ArrayLike, x: ArrayLike, alpha: float = 1.0 / 6.0, beta: float = 0.5):
    """Gradient of :func:`hardsigmoid` w.r.t. ``x``: ``dy * alpha`` where ``0 < alpha * x +
    beta < 1``, else 0."""
    return _bwd(dy, x, _PW.hardsigmoid, _number(alpha, "alpha"), _number(beta, "beta"))


def clip(x: ArrayLike, min_value, max_value):
    """``min(max(x, min_value), max_value)`` (NaN stays NaN); ``min_value <= max_value``."""
    lo, hi = _bounds(min_value, max_value)
    return _fwd(x, _PW.clip, lo, hi)


def clip_backward(dy: ArrayLike, x: ArrayLike, min_value, max_value):
    """``dy`` where ``min_value < x < max_value``, else 0."""
    lo, hi = _bounds(min_value, max_value)
    return _bwd(dy, x, _PW.clip, lo, hi)


def relu6(x: ArrayLike):
    """``clip(x, 0, 6)`` (MobileNet)."""
    return _fwd(x, _PW.clip, 0.0, 6.0)


def relu6_backward(dy: ArrayLike, x: ArrayLike):
    """Gradient of :func:`relu6` w.r.t. ``x``: ``dy`` where ``0 < x < 6``, else 0."""
    return _bwd(dy, x, _PW.clip, 0.0, 6.0)


def softplus(x: ArrayLike):
    """``log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))``: no overflow."""
    return _fwd(x, _PW.softplus)


def softplus_backward(dy: ArrayLike, x: ArrayLike):
    """``dy * sigmoid(x)``."""
    return _bwd(dy, x, _PW.softplus)


def softsign(x: ArrayLike):
    """``x / (1 + |x|)``."""
    return _fwd(x, _PW.softsign)


def softsign_backward(dy: ArrayLike, x: ArrayLike):
    """``dy / (1 + |x|)^2``."""
    return _bwd(dy, x, _PW.softsign)


def log_softmax(x: ArrayLike, axis=-1):
    """``x - max - log(sum(exp(x - max)))`` along ``axis``: the log of softmax,
    stable for any finite logits."""
    x = as_float32(x, "x")
    return _core.log_softmax(x, _axis(axis, x.ndim))


def log_softmax_backward(dy: ArrayLike, y: ArrayLike, axis=-1):
    """From the forward *output* ``y``: ``dy - exp(y) * sum(dy, axis)``."""
    y = as_float32(y, "y")
    dy = as_float32(dy, "dy")
    _same_shape(dy, y, "dy", "y")
    return _core.log_softmax_backward(dy, y, _axis(axis, y.ndim))


def _prelu_args(x, slope):
    x = as_float32(x, "x")
    slope = as_float32(slope, "slope")
    if x.ndim < 1:
        raise ValueError(f"x: expected a batch (m, ...), got shape {x.shape}")
    if slope.size != 1 and (
        slope.ndim > x.ndim - 1 or slope.shape != x.shape[x.ndim - slope.ndim :]
    ):
        raise ValueError(
            f"slope: expected a scalar, shape {x.shape[-1:]} (one per channel) or "
            f"the trailing axes of x {x.shape[1:]}, got shape {slope.shape}"
        )
    return x, slope


def prelu(x: ArrayLike, slope: ArrayLike):
    """``x`` where ``x > 0``, else ``slope * x``. ``slope``: one value (shared),
    one per channel (the last axis), or any trailing axes of x (broadcast)."""
    x, slope = _prelu_args(x, slope)
    return _core.prelu(x, slope.reshape(-1))


def prelu_backward(dy: ArrayLike, x: ArrayLike, slope: ArrayLike):
    """-> ``(dx, dslope)``: ``dx = dy`` where ``x > 0`` else ``slope * dy``;
    ``dslope`` sums ``dy * x`` over the positions where ``x <= 0`` (shaped like slope)."""
    shape = np.shape(slope)
    x, slope = _prelu_args(x, slope)
    dy = as_float32(dy, "dy")
    _same_shape(dy, x, "dy", "x")
    dx, ds = _core.prelu_backward(dy, x, slope.reshape(-1))
    return dx, ds.reshape(shape)
