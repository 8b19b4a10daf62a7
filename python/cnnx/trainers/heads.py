"""How each model output meets its loss: names, targets and the loss values.

A *head* is one output with a loss: its kind (``"cross_entropy"``: integer
labels, or ``"mse"``: float targets), its weight in the total, and whether
the loss absorbs a softmax that produced the output (then the loss reads
the softmax's input: the stable fused softmax-cross-entropy).

The compiled training step computes the losses in C++; this module does it
for the layer-by-layer fallback and for ``evaluate``, with the same
reduction: ``weight * sum_i(w_i * loss_i) / N`` (Keras's "sum over batch
size"; ``w_i`` the sample weights, 1 by default).
"""
import numpy as np

from .. import _core
from .._validate import as_float32

__all__ = ["Head", "loss_kind", "check_target", "head_loss", "count_correct"]

_CE_NAMES = ("cross_entropy", "crossentropy", "categorical_crossentropy",
             "sparse_categorical_crossentropy", "softmax_cross_entropy")
_MSE_NAMES = ("mse", "mean_squared_error")
_TINY = np.float32(np.finfo(np.float32).tiny)


class Head:
    """One output with a loss (see the module docstring)."""

    __slots__ = ("output", "name", "kind", "weight", "absorbs_softmax")

    def __init__(self, output, name, kind, weight, absorbs_softmax):
        self.output = output
        self.name = name
        self.kind = kind
        self.weight = float(weight)
        self.absorbs_softmax = absorbs_softmax


def loss_kind(loss, argname="loss"):
    """``"cross_entropy"`` or ``"mse"`` from a loss name."""
    if not isinstance(loss, str):
        raise TypeError(f"{argname}: expected 'cross_entropy' or 'mse', got {type(loss).__name__}")
    key = loss.lower()
    if key in _CE_NAMES:
        return "cross_entropy"
    if key in _MSE_NAMES:
        return "mse"
    raise ValueError(f"{argname}: expected 'cross_entropy' or 'mse', got {loss!r}")


def check_target(head, y, n, shape, name):
    """Labels (int64, range-checked) for cross-entropy, float targets for MSE."""
    if head.kind == "cross_entropy":
        from ..functional._loss import _labels

        if len(shape) > 1:
            return _position_labels(y, n, tuple(shape), name)
        if len(shape) != 1:
            raise ValueError(f"{name}: cross_entropy needs outputs (m, classes), the model's "
                             f"output {head.name!r} is {shape}")
        k = shape[0]
        if (type(y) is np.ndarray and y.dtype == np.int64 and y.shape == (n,)
                and y.flags.c_contiguous):
            return y  # the range is checked where the loss runs (C++, or head_loss)
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape == (n, k) and np.issubdtype(arr.dtype, np.number):
            # one-hot rows are labels; anything softer is a different loss
            if not (np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(axis=1) == 1)):
                raise ValueError(f"{name}: soft or label-smoothed targets (rows that are not "
                                 "exactly one-hot) are not supported by 'cross_entropy' yet; "
                                 "pass integer labels or exact one-hot rows")
            arr = arr.argmax(axis=1)
        try:
            return _labels(arr, n, k)
        except (TypeError, ValueError) as e:
            msg = str(e)
            raise type(e)(name + msg[len("labels"):] if msg.startswith("labels") else msg) \
                from None
    t = as_float32(y, name)
    if t.shape != (n,) + tuple(shape):
        raise ValueError(f"{name}: expected targets of shape {(n,) + tuple(shape)}, got {t.shape}")
    return t


def _position_labels(y, n, shape, name):
    """Labels of a per-position cross-entropy (an (H, W, K) output: one class per
    pixel): integers of shape (n, H, W), or exact one-hot (n, H, W, K)."""
    k = shape[-1]
    arr = np.asarray(y)
    if arr.shape == (n,) + shape and np.issubdtype(arr.dtype, np.number):
        if not (np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(axis=-1) == 1)):
            raise ValueError(f"{name}: soft targets (rows that are not exactly one-hot) are not "
                             "supported by 'cross_entropy' yet; pass integer labels")
        arr = arr.argmax(axis=-1)
    want = (n,) + shape[:-1]
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integer class indices of shape {want} (one per "
                        f"position), got dtype {arr.dtype}")
    if arr.shape != want:
        raise ValueError(f"{name}: cross_entropy on outputs of shape {shape} takes labels of "
                         f"shape {want} (one class per position), got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        bad = arr[(arr < 0) | (arr >= k)][0]
        raise ValueError(f"{name}: expected values in [0, {k}), got {int(bad)}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def count_correct(value, target):
    """Correct predictions in a batch: whole samples for (m, K) outputs; for
    per-position labels, each sample's fraction of correct positions."""
    m = value.shape[0]
    if target.ndim == 1:
        return int(np.count_nonzero(value.reshape(m, -1).argmax(axis=1) == target))
    hits = value.argmax(axis=-1) == target
    return float(hits.reshape(m, -1).mean(axis=1).sum()) if m else 0.0


def head_loss(head, value, target, sample_weight, n_total, need_grad, mode):
    """(this batch's share of the head's loss before its weight, gradient of
    the weighted loss or None) for one head.

    ``mode`` says what ``value`` is, for cross-entropy:
    ``"logits"`` (gradient w.r.t. them), ``"softmax_input"`` (probabilities
    from an output softmax, gradient w.r.t. that softmax's input: the fused
    form, exact) or ``"probabilities"`` (gradient w.r.t. the probabilities).
    MSE ignores it.
    """
    m = value.shape[0]
    w = np.ones(m, np.float32) if sample_weight is None else sample_weight
    if head.kind == "cross_entropy" and target.ndim > 1:
        # per position: rows of K, each sample's loss the mean over its positions
        k, positions = value.shape[-1], target[0].size
        loss, g = head_loss(head, value.reshape(-1, k), target.reshape(-1),
                            np.repeat(w, positions), n_total * positions, need_grad, mode)
        return loss, (g.reshape(value.shape) if g is not None else None)
    scale = head.weight / n_total
    if head.kind == "mse":
        d = value - target
        per = np.mean((d * d).reshape(m, -1), axis=1)
        g = None
        if need_grad:
            g = d * (2.0 * scale / max(d.size // max(m, 1), 1))
            g *= w.reshape((m,) + (1,) * (d.ndim - 1))
            g = g.astype(np.float32, copy=False)
        return float(np.dot(w.astype(np.float64), per) / n_total), g
    rows = np.arange(m)
    if m and (target.min() < 0 or target.max() >= value.shape[1]):
        bad = target[(target < 0) | (target >= value.shape[1])][0]
        raise ValueError(f"labels: expected integers in [0, {value.shape[1]}), got {bad}")
    g = None
    if mode == "logits":
        z = value.astype(np.float64)
        zmax = z.max(axis=1, keepdims=True)
        per = np.log(np.exp(z - zmax).sum(axis=1)) + zmax[:, 0] - z[rows, target]
        if need_grad:
            g = _core.softmax(value, 1)
            g[rows, target] -= 1.0
            g *= (scale * w)[:, None]
    else:
        p_label = np.maximum(value[rows, target], _TINY)
        per = -np.log(p_label.astype(np.float64))
        if need_grad and mode == "softmax_input":
            g = value.copy()
            g[rows, target] -= 1.0
            g *= (scale * w)[:, None]
        elif need_grad:
            g = np.zeros_like(value)
            g[rows, target] = -scale * w / p_label
    loss = float(np.dot(w.astype(np.float64), per) / n_total)
    return loss, (g.astype(np.float32, copy=False) if g is not None else None)
