"""How each model output meets its loss and its metrics.

A *head* is one output with a loss (a :class:`cnnx.losses.Loss`), its
weight in the total, and what the loss reads: the output itself, or the
input of a softmax / sigmoid that made the output (the loss absorbs it: the
stable fused form; see :func:`cnnx.graph.loss_heads`).

The compiled training step computes the built-in losses in C++; this module
computes them for the layer-by-layer fallback, for losses written in Python,
and for ``evaluate``, with the same reduction: ``weight * sum_i(w_i *
loss_i) / N`` (Keras's "sum over batch size"; ``w_i`` the sample weights).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .. import losses as L
from .. import metrics as M

__all__ = ["Head", "on_logits", "head_value_loss", "make_metrics"]


class Head:
    """One output with a loss: ``output`` (index), ``name``, ``loss``,
    ``weight``, ``absorbed`` ("softmax", "sigmoid" or None), ``reads_logits``."""

    __slots__ = ("output", "name", "loss", "weight", "absorbed", "reads_logits", "metrics")

    def __init__(self, graph_head: Any, name: str) -> None:
        self.output = graph_head.output
        self.name = name
        self.loss = graph_head.loss
        self.weight = graph_head.weight
        self.absorbed = graph_head.absorbed
        self.reads_logits = graph_head.reads_logits
        self.metrics: list[M.Metric] = []


def on_logits(loss: L.Loss) -> L.Loss:
    """The same loss reading logits (targets already prepared by ``loss``)."""
    if isinstance(loss, L.CategoricalCrossentropy):
        return L.CategoricalCrossentropy(from_logits=True, reduction=loss.reduction)
    if isinstance(loss, L.BinaryCrossentropy):
        return L.BinaryCrossentropy(from_logits=True, reduction=loss.reduction)
    if isinstance(loss, L.SparseCategoricalCrossentropy):
        return L.SparseCategoricalCrossentropy(from_logits=True, reduction=loss.reduction)
    return loss


def head_value_loss(
    head: Head,
    value: np.ndarray,
    target: np.ndarray,
    sample_weight: Optional[np.ndarray],
    n_total: float,
    need_grad: bool,
    logits: bool,
) -> tuple[float, Any]:  # the gradient: an array when need_grad, else None
    """(this batch's share of the head's loss before its weight, the gradient of
    the weighted loss w.r.t. ``value`` or None).

    ``value`` holds logits when ``logits`` (a softmax/sigmoid the loss absorbs,
    or from_logits), else the outputs. ``n_total``: the samples of the whole
    batch the mean runs over (evaluation goes in chunks).
    """
    loss = on_logits(head.loss) if logits else head.loss
    m = value.shape[0]
    w = np.ones(m) if sample_weight is None else np.asarray(sample_weight, np.float64)
    per = np.asarray(loss.forward(target, value), np.float64).reshape(-1)
    if per.shape != (m,):
        raise ValueError(
            f"loss: {type(loss).__name__}.forward returned shape {per.shape}; "
            f"expected ({m},) (one value per sample)"
        )
    total = float(np.dot(w, per))
    scale = 1.0 if loss.reduction == "sum" else 1.0 / n_total
    g = None
    if need_grad:
        g = np.asarray(loss.backward(target, value), np.float32)
        if g.shape != value.shape:
            raise ValueError(
                f"loss: {type(loss).__name__}.backward returned shape {g.shape}; "
                f"expected {value.shape} (the outputs' shape)"
            )
        coef = (w * scale * head.weight).astype(np.float32)
        g = g * coef.reshape((m,) + (1,) * (g.ndim - 1))
    return total * scale, g


def make_metrics(
    spec: Any, heads: Sequence[Head], argname: str = "metrics"
) -> list[list[M.Metric]]:
    """Metric objects per head: a list applies to every head ("accuracy" only to
    classifiers), a dict maps output names to lists."""
    import copy

    if spec is None:
        return [[] for _ in heads]
    if isinstance(spec, (str, M.Metric)):
        spec = [spec]
    if isinstance(spec, dict):
        unknown = set(spec) - {h.name for h in heads}
        if unknown:
            raise ValueError(f"{argname}: unknown output names {sorted(unknown)}")
        per = [spec.get(h.name, []) for h in heads]
        per = [[p] if isinstance(p, (str, M.Metric)) else p for p in per]
    elif isinstance(spec, (list, tuple)):
        per = [list(spec) for _ in heads]
    else:
        raise TypeError(
            f"{argname}: expected a list of metric names or cnnx.metrics.Metric "
            f"objects, got {type(spec).__name__}"
        )
    out = []
    for h, items in zip(heads, per):
        if not isinstance(items, (list, tuple)):
            raise TypeError(f"{argname}: expected a list for output {h.name!r}")
        ms = []
        for item in items:
            classifier = isinstance(
                h.loss,
                (L.SparseCategoricalCrossentropy, L.CategoricalCrossentropy, L.BinaryCrossentropy),
            )
            if isinstance(item, str) and item.lower() in ("accuracy", "acc") and not classifier:
                continue
            m = copy.deepcopy(M.get(item, argname))  # fresh state, once per use
            m.reset_state()
            ms.append(m)
        out.append(ms)
    return out
