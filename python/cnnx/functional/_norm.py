"""Batch normalisation over all axes but the last (NHWC activations or
``(m, n_features)``), forward and backward."""

from __future__ import annotations

from typing import Optional

import numbers
from collections import namedtuple

import numpy as np

from .. import _core
from .._types import ArrayLike
from .._validate import as_float32

BatchNormState = namedtuple("BatchNormState", ["mean", "inv_std", "training"])
BatchNormState.__doc__ = """What :func:`batch_norm` saves for :func:`batch_norm_backward`:
per-channel ``mean`` and ``inv_std = 1 / sqrt(var + eps)`` (the batch's in
training, the running statistics' in evaluation) and the ``training`` flag."""


def _number(v, name, lo=None, hi=None, open_lo=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if (
        not np.isfinite(v)
        or (lo is not None and (v < lo or (open_lo and v == lo)))
        or (hi is not None and v > hi)
    ):
        raise ValueError(
            f"{name}: expected a number in {'(' if open_lo else '['}{lo}, {hi}], got {v}"
        )
    return v


def _param(a, name, c):
    if a is None:
        return None
    a = as_float32(a, name)
    if a.shape != (c,):
        raise ValueError(f"{name}: expected shape ({c},) (one per channel), got {a.shape}")
    return a


def _running(a, name, c):
    if a is None:
        return None
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        raise TypeError(
            f"{name}: expected a float32 NumPy array (updated in place), "
            f"got {type(a).__name__}{'' if not isinstance(a, np.ndarray) else ' ' + str(a.dtype)}"
        )
    if a.shape != (c,):
        raise ValueError(f"{name}: expected shape ({c},) (one per channel), got {a.shape}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name}: expected a writeable C-contiguous array (updated in place)")
    return a


def _x(x):
    x = as_float32(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x: expected shape (m, ..., n_C) with at least 2 axes, got {x.shape}")
    return x


def batch_norm(
    x: ArrayLike,
    gamma: ArrayLike,
    beta: ArrayLike,
    running_mean: Optional[ArrayLike] = None,
    running_var: Optional[ArrayLike] = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
):
    """Batch normalisation over every axis but the last (the channels).

    ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` per channel.
    Training uses the batch's mean and (biased) variance and updates
    ``running_mean`` / ``running_var`` **in place** (float32 arrays):
    ``r = (1 - momentum) * r + momentum * batch_stat``, the variance
    unbiased, exactly like PyTorch. Evaluation (``training=False``) uses the
    running statistics, which are then required.

    ``gamma`` / ``beta`` may be None (scale 1, shift 0). Returns ``(y, state)``;
    pass ``state`` (a :class:`BatchNormState`) to :func:`batch_norm_backward`.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.random.rand(8, 4, 4, 3).astype(np.float32) * 10
        >>> gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
        >>> y, saved = F.batch_norm(x, gamma, beta, training=True)
        >>> bool(np.allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-5))   # per channel over N, H, W
        True
    """
    x = _x(x)
    c = x.shape[-1]
    gamma = _param(gamma, "gamma", c)
    beta = _param(beta, "beta", c)
    running_mean = _running(running_mean, "running_mean", c)
    running_var = _running(running_var, "running_var", c)
    momentum = _number(momentum, "momentum", 0.0, 1.0)
    eps = _number(eps, "eps", 0.0, None, open_lo=True)
    if training:
        if x.size // max(c, 1) < 2:
            raise ValueError(
                f"x: training needs more than one value per channel, got shape {x.shape}"
            )
        y, mean, inv_std = _core.batch_norm_train(
            x, gamma, beta, running_mean, running_var, momentum, eps
        )
        return y, BatchNormState(mean, inv_std, True)
    if running_mean is None or running_var is None:
        raise ValueError("running_mean: evaluation needs running_mean and running_var")
    mean = running_mean.copy()
    inv_std = (1.0 / np.sqrt(running_var.astype(np.float64) + eps)).astype(np.float32)
    y = _core.batch_norm_eval(x, gamma, beta, mean, inv_std)
    return y, BatchNormState(mean, inv_std, False)


def batch_norm_backward(dy: ArrayLike, x: ArrayLike, gamma: ArrayLike, saved, need_dx: bool = True):
    """Gradients of :func:`batch_norm`: returns ``(dx, dgamma, dbeta)``.

    ``saved`` is the state that :func:`batch_norm` returned. In training the
    batch statistics depend on ``x``, so ``dx`` has the mean and variance
    terms; in evaluation ``dx = dy * gamma * inv_std``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.random.rand(8, 3).astype(np.float32)
        >>> gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
        >>> y, saved = F.batch_norm(x, gamma, beta, training=True)
        >>> dx, dgamma, dbeta = F.batch_norm_backward(np.ones_like(y), x, gamma, saved)
        >>> dbeta.tolist()                                            # the sum of dy per channel
        [8.0, 8.0, 8.0]
    """
    x = _x(x)
    dy = as_float32(dy, "dy")
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected shape {x.shape} (like x), got {dy.shape}")
    c = x.shape[-1]
    gamma = _param(gamma, "gamma", c)
    if not isinstance(saved, BatchNormState):
        raise TypeError(
            f"saved: expected the BatchNormState returned by batch_norm, got {type(saved).__name__}"
        )
    mean = _param(saved.mean, "saved", c)
    inv_std = _param(saved.inv_std, "saved", c)
    return _core.batch_norm_backward(
        dy, x, gamma, mean, inv_std, bool(saved.training), bool(need_dx)
    )
