"""Classification losses with integer labels."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._types import ArrayLike
from .._validate import as_float32


def _labels(labels, n, k):
    if labels is None or isinstance(labels, (str, bytes)):
        raise TypeError(f"labels: expected an array of integers, got {type(labels).__name__}")
    arr = np.asarray(labels)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"labels: expected integer class indices, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"labels: expected shape ({n},) (one per row), got {arr.shape}")
    if n and (arr.min() < 0 or arr.max() >= k):
        bad = arr[(arr < 0) | (arr >= k)][0]
        raise ValueError(f"labels: expected values in [0, {k}), got {int(bad)}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _scores(a, name):
    a = as_float32(a, name, ndim=2)
    if a.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one class, got shape {a.shape}")
    return a


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike):
    """Fused softmax + cross-entropy, mean over the batch.

    ``logits``: ``(m, K)``; ``labels``: ``(m,)`` integers in ``[0, K)``.
    Returns ``(loss, dlogits)`` with ``loss`` a Python float and
    ``dlogits = (softmax(logits) - onehot(labels)) / m``. Computed with
    log-sum-exp around the row maximum: exact for logits of +-1e4.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> loss, dlogits = F.softmax_cross_entropy(np.zeros((2, 4), np.float32), np.array([0, 3]))
        >>> round(loss, 4)                                            # log(4)
        1.3863
        >>> dlogits[0]                                                # (softmax - one_hot) / m
        array([-0.375,  0.125,  0.125,  0.125], dtype=float32)
    """
    logits = _scores(logits, "logits")
    labels = _labels(labels, *logits.shape)
    loss, g = _core.softmax_cross_entropy(logits, labels, True)
    return float(loss), g


def cross_entropy(probs: ArrayLike, labels: ArrayLike, eps: float = 1e-12):
    """Cross-entropy of probabilities (e.g. a softmax layer's output), mean
    over the batch: ``mean(-log(max(probs[i, labels[i]], eps)))``.

    Returns ``(loss, dprobs)``. Prefer :func:`softmax_cross_entropy` on
    logits: it is exact where probabilities underflow.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> loss, dprobs = F.cross_entropy(np.array([[0.5, 0.5]], np.float32), np.array([1]))
        >>> round(loss, 4)                                            # -log(0.5)
        0.6931
    """
    probs = _scores(probs, "probs")
    labels = _labels(labels, *probs.shape)
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"eps: expected a positive number, got {eps}")
    loss, g = _core.cross_entropy(probs, labels, eps, True)
    return float(loss), g
