"""Inverted dropout: seeded, reproducible, independent of the thread count.

Element ``i`` is kept iff a counter-based hash of ``(seed, i)`` is at least
``rate * 2**32``; kept values are scaled by ``1 / (1 - rate)`` so the
expected output equals the input and evaluation needs no rescaling.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._types import ArrayLike
from .._validate import as_float32


def _rate(rate):
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
        raise TypeError(f"rate: expected a number in [0, 1), got {type(rate).__name__} {rate!r}")
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate: expected a number in [0, 1), got {rate}")
    return rate


def _seed(seed):
    if seed is None:
        try:
            from ..random import next_seed
        except ImportError:  # pragma: no cover - random module not present
            return int(np.random.default_rng().integers(0, 2**63 - 1))
        return next_seed()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed: expected an int >= 0, got {seed}")
    return seed & (2**64 - 1)


def dropout(x: ArrayLike, rate: float, seed=None, training: bool = True):
    """Zero each element with probability ``rate``, scale the rest by
    ``1 / (1 - rate)``. Returns ``(y, mask)``, ``mask`` a uint8 array of 0/1.

    ``seed`` (int) fixes the mask: same seed, same mask, whatever the thread
    count; None draws one from ``cnnx.random`` (so ``cnnx.set_seed`` makes
    runs repeatable). With ``training=False`` or ``rate == 0`` the input is
    returned unchanged and ``mask`` is None.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> y, mask = F.dropout(np.ones((1000,), np.float32), rate=0.5, seed=0)
        >>> sorted(set(y.tolist()))                                   # kept values scaled by 1/(1-rate)
        [0.0, 2.0]
    """
    x = as_float32(x, "x")
    rate = _rate(rate)
    if not training or rate == 0.0:
        return x, None
    y, mask = _core.dropout(x, rate, _seed(seed), True)
    return y, mask


def dropout_backward(dy: ArrayLike, mask: ArrayLike, rate: float, seed=None):
    """``dx = dy * mask / (1 - rate)``. Pass the ``mask`` from :func:`dropout`,
    or ``mask=None`` and the same ``seed`` to regenerate it (no stored mask).
    A None mask without a seed means dropout was inactive: ``dx = dy``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> y, mask = F.dropout(np.ones((10,), np.float32), rate=0.5, seed=0)
        >>> dx = F.dropout_backward(np.ones((10,), np.float32), mask, 0.5)
        >>> bool(np.array_equal(dx, y))                               # same mask, same scale
        True
    """
    dy = as_float32(dy, "dy")
    rate = _rate(rate)
    if mask is None:
        if seed is None or rate == 0.0:
            return dy
        return _core.dropout_backward_seeded(dy, rate, _seed(seed))
    mask = np.asarray(mask)
    if mask.shape != dy.shape:
        raise ValueError(f"mask: expected shape {dy.shape} (like dy), got {mask.shape}")
    if not (mask.dtype == np.uint8 or mask.dtype == np.bool_):
        raise TypeError(
            f"mask: expected the uint8 mask returned by dropout, got dtype {mask.dtype}"
        )
    return _core.dropout_backward(dy, mask.view(np.uint8) if mask.dtype == np.bool_ else mask, rate)
