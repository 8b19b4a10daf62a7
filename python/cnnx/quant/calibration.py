"""Calibration: the range of each value an int8 model stores as uint8, from
the float model run on sample inputs.

Methods (``cnnx.quantize(..., method=...)``):

- ``"minmax"``: the smallest and largest value seen (ONNX Runtime's
  default). Nothing saturates on the calibration data; one outlier widens
  the scale for every other value.
- ``"percentile"``: the ``percentile`` (default 99.99) and ``100 -
  percentile`` points of a 2048-bin histogram over the min/max range, so the
  rarest outliers saturate and the rest get finer steps.
- ``"entropy"``: the clipping threshold whose 8-bit histogram is closest to
  the full one in Kullback-Leibler divergence (the TensorRT method; on
  values of both signs, applied to ``|x|``).

The float model runs as one compiled plan whose outputs are the values to
observe (op by op for models with Python layers), in batches small enough
that all those values fit in a few hundred megabytes.
"""

import numpy as np

from ..graph import compile_inference
from ..graph.quantize import prepare
from .reference import run_graph

__all__ = ["METHODS", "calibrate"]

METHODS = ("minmax", "percentile", "entropy")
_BINS = 2048
_BATCH_FLOATS = 1 << 25  # values per calibration batch (128 MB of float32)


def _describe(v):
    p = v.producer
    if p is None:
        return "calibration_data", "the model's input"
    return p.name, f"layer {p.name!r} ({p.kind.name})"


class _Observer:
    """Running min/max and, for the histogram methods, a fixed-range histogram."""

    def __init__(self):
        self.lo = np.inf
        self.hi = -np.inf
        self.hist = None

    def minmax(self, a):
        self.lo = min(self.lo, float(a.min()))
        self.hi = max(self.hi, float(a.max()))

    def histogram(self, a):
        if self.hist is None:
            self.hist = np.zeros(_BINS, np.int64)
        if self.hi > self.lo:
            h, _ = np.histogram(a, bins=_BINS, range=(self.lo, self.hi))
            self.hist += h

    def edges(self):
        return np.linspace(self.lo, self.hi, _BINS + 1)


def _percentile_range(o, pct):
    if o.hist is None or o.hist.sum() == 0 or o.hi <= o.lo:
        return o.lo, o.hi
    cdf = np.cumsum(o.hist) / o.hist.sum()
    e = o.edges()
    q = pct / 100.0
    hi = e[min(int(np.searchsorted(cdf, q)) + 1, _BINS)]
    lo = e[int(np.searchsorted(cdf, 1.0 - q))]
    return (max(lo, o.lo) if o.lo < 0 else o.lo), min(hi, o.hi)


def _kl_threshold(hist, levels):
    """Bin count i (of len(hist)) minimising KL(P_i || Q_i), P the histogram
    clipped at bin i (outliers folded into its last bin), Q its expansion
    after merging into ``levels`` bins."""
    n = len(hist)
    best_i, best_kl = n, np.inf
    hist = hist.astype(np.float64)
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i] = sum(hist[i:])
    for i in range(levels, n + 1, 8):
        p = hist[:i].copy()
        if i < n:
            p[-1] += tail[i]
        nz = p > 0
        if p.sum() == 0:
            continue
        # merge i bins into `levels` groups, spread each group's mass over its non-empty bins
        idx = (np.arange(i) * levels) // i
        sums = np.bincount(idx, weights=hist[:i], minlength=levels)
        counts = np.bincount(idx, weights=(hist[:i] > 0).astype(np.float64), minlength=levels)
        qv = np.where(hist[:i] > 0, sums[idx] / np.maximum(counts[idx], 1.0), 0.0)
        ps, qs = p / p.sum(), qv / max(qv.sum(), 1e-300)
        ok = nz & (qs > 0)
        if (nz & ~ok).any():
            kl = (
                np.inf if not ok.any() else float(np.sum(ps[ok] * np.log(ps[ok] / qs[ok]))) + 1.0
            )  # penalise lost mass
        else:
            kl = float(np.sum(ps[ok] * np.log(ps[ok] / qs[ok])))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def _entropy_range(o):
    if o.hist is None or o.hist.sum() == 0 or o.hi <= o.lo:
        return o.lo, o.hi
    e = o.edges()
    if o.lo >= 0.0:  # one sign: 256 levels over [lo, t]
        # A ReLU's exact zeros are a spike in bin 0 that any merge smears out:
        # left in, it pulls the threshold far down (measured: 6.8 -> 2.6 on a
        # random ResNet's first layer). They quantize exactly either way.
        h = o.hist.copy()
        h[0] = 0
        i = _kl_threshold(h, 256)
        return o.lo, e[i]
    # both signs: a symmetric threshold on |x| (128 levels a side)
    amax = max(-o.lo, o.hi)
    h, _ = np.histogram(
        np.abs(o.edges()[:-1] + (e[1] - e[0]) / 2), bins=_BINS, range=(0, amax), weights=o.hist
    )
    i = _kl_threshold(h, 128)
    t = amax * i / _BINS
    return max(o.lo, -t), min(o.hi, t)


def calibrate(
    model, xs, value_ids, method="minmax", percentile=99.99, batch_size=None, input_shapes=None
):
    """``{value id: (lo, hi)}`` for the values ``value_ids`` of the prepared
    graph of float model ``model`` on the input batches ``xs`` (a list,
    one array per model input; ``input_shapes``: their sizes, for a model
    taking any size). Raises ValueError naming the layer whose
    output is NaN or infinite on the calibration data."""
    g = prepare(model.to_graph(input_shapes))
    by_id = {v.id: v for v in g.values}
    values = [by_id[i] for i in sorted(value_ids)]
    if not values:
        return {}
    per_image = sum(v.size for v in values)
    n = xs[0].shape[0]
    if batch_size is None:
        batch_size = max(1, min(64, _BATCH_FLOATS // max(per_image, 1)))
    g.outputs = list(values)
    plan = compile_inference(g)
    if plan is None:  # a Python layer: op by op
        g = prepare(model.to_graph(input_shapes))
        ids = [v.id for v in values]

        def run(batch):
            _, got = run_graph(g, batch, capture=ids)
            return [got[i] for i in ids]
    else:
        run = plan
    obs = {v.id: _Observer() for v in values}
    passes = ["minmax"] + ([] if method == "minmax" else ["histogram"])
    for what in passes:
        for i in range(0, n, batch_size):
            ys = run([x[i : i + batch_size] for x in xs])
            for v, y in zip(values, ys):
                if what == "minmax":
                    if not np.isfinite(y).all():
                        name, desc = _describe(v)
                        raise ValueError(
                            f"calibration_data: {desc} gives NaN or infinity on "
                            f"calibration samples {i}..{i + y.shape[0] - 1} (its "
                            "range cannot be calibrated); check its weights and "
                            "the data"
                        )
                    obs[v.id].minmax(y)
                else:
                    obs[v.id].histogram(y)
    out = {}
    for v in values:
        o = obs[v.id]
        if method == "percentile":
            out[v.id] = _percentile_range(o, percentile)
        elif method == "entropy":
            out[v.id] = _entropy_range(o)
        else:
            out[v.id] = (o.lo, o.hi)
    return out
