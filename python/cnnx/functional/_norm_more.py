"""Local response, group and layer normalisation (issue 19), forward and
backward. Inputs are channels-last: ``(m, ..., n_C)``.

- :func:`lrn`: AlexNet's / GoogLeNet's local response normalisation across
  channels, exactly ONNX's ``LRN`` and PyTorch's ``local_response_norm``
  (odd window ``size``; ``alpha`` is divided by ``size``);
- :func:`group_norm`: statistics per example and group of channels, over
  every pixel (Wu & He 2018; PyTorch's ``group_norm``);
- :func:`layer_norm`: statistics per position over the last axis only (the
  channels of one pixel: ConvNeXt's channel LayerNorm; PyTorch's
  ``layer_norm(x, (n_C,))``).

The backward functions recompute what they need from ``x``.
"""

from __future__ import annotations

from typing import Optional

import math
import numbers

import numpy as np

from .. import _core
from .._types import ArrayLike
from .._validate import as_float32, as_int

__all__ = [
    "lrn",
    "lrn_backward",
    "group_norm",
    "group_norm_backward",
    "layer_norm",
    "layer_norm_backward",
    "check_lrn_args",
]


def _number(v, name, positive=False, nonneg=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not math.isfinite(v) or (positive and v <= 0) or (nonneg and v < 0):
        what = (
            "a finite number > 0"
            if positive
            else "a finite number >= 0"
            if nonneg
            else "a finite number"
        )
        raise ValueError(f"{name}: expected {what}, got {v}")
    return v


def check_lrn_args(size: int, alpha: float, beta: float, bias: float):
    """Validated ``(size, alpha, beta, bias)`` of local response normalisation."""
    size = as_int(size, "size")
    if size < 1 or size % 2 == 0:
        raise ValueError(
            f"size: expected an odd window size >= 1 (the window is centred on "
            f"each channel), got {size}"
        )
    return (
        size,
        _number(alpha, "alpha", nonneg=True),
        _number(beta, "beta"),
        _number(bias, "bias", positive=True),
    )


def _x(x, min_ndim=1):
    x = as_float32(x, "x")
    if x.ndim < min_ndim or x.shape[-1] < 1:
        raise ValueError(
            f"x: expected shape (m, ..., n_C) with at least {min_ndim} axes and "
            f"n_C >= 1, got {x.shape}"
        )
    return x


def _grad(dy, x):
    dy = as_float32(dy, "dy")
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected shape {x.shape} (like x), got {dy.shape}")
    return dy


def lrn(
    x: ArrayLike,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    bias: float = 1.0,
):
    """Local response normalisation across the last axis (the channels)::

        y[c] = x[c] / (bias + alpha/size * sum_{|j-c| <= size//2} x[j]^2) ** beta

    ``size`` must be odd (ONNX and PyTorch centre the window differently for
    even sizes). AlexNet uses ``size=5, alpha=1e-4, beta=0.75, bias=2``.
    """
    size, alpha, beta, bias = check_lrn_args(size, alpha, beta, bias)
    return _core.lrn(_x(x), size, alpha, beta, bias)


def lrn_backward(
    dy: ArrayLike,
    x: ArrayLike,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    bias: float = 1.0,
):
    """Gradient of :func:`lrn` with respect to ``x``."""
    size, alpha, beta, bias = check_lrn_args(size, alpha, beta, bias)
    x = _x(x)
    return _core.lrn_backward(_grad(dy, x), x, size, alpha, beta, bias)


def _affine(a, name, c):
    if a is None:
        return None
    a = as_float32(a, name)
    if a.shape != (c,):
        raise ValueError(f"{name}: expected shape ({c},) (one per channel), got {a.shape}")
    return a


def _groups(groups, c):
    groups = as_int(groups, "groups", 1)
    if c % groups:
        raise ValueError(f"groups: must divide the channels ({c}), got {groups}")
    return groups


def group_norm(
    x: ArrayLike,
    groups,
    gamma: Optional[ArrayLike] = None,
    beta: Optional[ArrayLike] = None,
    eps: float = 1e-5,
):
    """Group normalisation of ``x`` ``(m, ..., n_C)``: each example's channels
    split into ``groups`` groups, each normalised by its own mean and (biased)
    variance over all its positions, then ``* gamma + beta`` per channel."""
    x = _x(x, 2)
    c = x.shape[-1]
    groups = _groups(groups, c)
    y, _, _ = _core.group_norm(
        x,
        _affine(gamma, "gamma", c),
        _affine(beta, "beta", c),
        groups,
        _number(eps, "eps", positive=True),
    )
    return y


def group_norm_backward(
    dy: ArrayLike, x: ArrayLike, groups, gamma: Optional[ArrayLike] = None, eps: float = 1e-5
):
    """-> ``(dx, dgamma, dbeta)`` of :func:`group_norm` (statistics recomputed)."""
    x = _x(x, 2)
    c = x.shape[-1]
    groups = _groups(groups, c)
    return _core.group_norm_backward(
        _grad(dy, x),
        x,
        _affine(gamma, "gamma", c),
        None,
        None,
        groups,
        _number(eps, "eps", positive=True),
    )


def layer_norm(
    x: ArrayLike,
    gamma: Optional[ArrayLike] = None,
    beta: Optional[ArrayLike] = None,
    eps: float = 1e-5,
):
    """Layer normalisation over the last axis: every position (pixel) is
    normalised over its n_C values, then ``* gamma + beta``."""
    x = _x(x)
    c = x.shape[-1]
    y, _, _ = _core.layer_norm(
        x, _affine(gamma, "gamma", c), _affine(beta, "beta", c), _number(eps, "eps", positive=True)
    )
    return y


def layer_norm_backward(
    dy: ArrayLike, x: ArrayLike, gamma: Optional[ArrayLike] = None, eps: float = 1e-5
):
    """-> ``(dx, dgamma, dbeta)`` of :func:`layer_norm` (statistics recomputed)."""
    x = _x(x)
    c = x.shape[-1]
    return _core.layer_norm_backward(
        _grad(dy, x), x, _affine(gamma, "gamma", c), None, None, _number(eps, "eps", positive=True)
    )
