""":func:`cnnx.quantize`: post-training int8 quantization of a float model."""

import copy
import numbers
import warnings

import numpy as np

from ..graph.quantize import (
    degenerate_reason,
    prepare,
    quantize_layer_weights,
    scale_zero_point,
    settle,
    wanted_values,
    weight_ops,
)
from .calibration import METHODS, calibrate
from .model import QuantizedModel

__all__ = ["quantize", "QuantizationWarning"]

#: layers with an int8 kernel, for messages
INT8_LAYERS = (
    "Conv2D (any groups, no activation or ReLU)",
    "Dense (no activation or ReLU)",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAvgPool2D",
    "adaptive pools with whole windows",
    "Add of two tensors (or a Residual join)",
    "Concatenate",
)


class QuantizationWarning(UserWarning):
    """A layer kept in float32 because its calibrated range cannot be quantized."""


def _private_copy(model):
    """A copy of the float model, with its weights, buffers and losses.

    Rebuilt from its configuration, which is flat for any graph depth (a
    deepcopy recurses along the layer graph and overflows Python's stack on
    a ResNet-50 imported from ONNX); a layer of the user's own that has no
    configuration falls back to deepcopy."""
    from ..layers.base import layer_config, layer_from_config, walk

    try:
        fm = layer_from_config(layer_config(model))
    except Exception:  # noqa: BLE001 - any layer without a rebuildable config
        return copy.deepcopy(model)
    if not getattr(fm, "built", False) or fm.store.params.shape != model.store.params.shape:
        return copy.deepcopy(model)
    fm.store.params[...] = model.store.params
    for (dst, _), (src, _) in zip(walk(fm.layers), walk(model.layers)):
        for name, buf in src.buffers.items():
            dst.buffers[name][...] = buf
    if getattr(model, "_loss_specs", None) is not None:
        fm.compile(
            loss=model._loss_given, metrics=model._metric_spec, loss_weights=model.loss_weights
        )
    return fm


def _check_data(model, calibration_data):
    if calibration_data is None:
        raise TypeError(
            "calibration_data: expected sample inputs of the model (an array, or a "
            "list of arrays for several inputs), got None"
        )
    xs = model.check_inputs(calibration_data, "calibration_data")
    n = xs[0].shape[0]
    if n < 1:
        raise ValueError("calibration_data: expected at least one sample, got an empty batch")
    for j, x in enumerate(xs):
        bad = ~np.isfinite(x.reshape(n, -1)).all(axis=1)
        if bad.any():
            where = f" (input {j})" if len(xs) > 1 else ""
            raise ValueError(
                f"calibration_data: sample {int(np.argmax(bad))}{where} contains "
                "NaN or infinity; calibrate on real inputs"
            )
    return xs


def quantize(
    model, calibration_data, method="minmax", percentile=99.99, batch_size=None, exclude=()
):
    """An int8 version of ``model``, calibrated on ``calibration_data``.

    Args:
        model: a built cnnx ``Model`` or ``Sequential`` (float32).
        calibration_data: sample inputs, as ``predict`` takes them (a batch
            ``(m, ...)``, a list of batches for several inputs); a few hundred
            representative images are usually enough.
        method: how each activation's range is chosen: ``"minmax"``
            (default), ``"percentile"`` or ``"entropy"``
            (:mod:`cnnx.quant.calibration`).
        percentile: for ``method="percentile"``, the share of values (in
            percent) the range covers on each side.
        batch_size: calibration batch (default: what fits ~128 MB of values).
        exclude: names of layers to keep in float32.

    Returns a :class:`~cnnx.quant.QuantizedModel`: ``predict``,
    ``evaluate``, ``summary`` (with each layer's precision) and ``save``
    work as on the float model.

    How: weights per output channel, symmetric int8 (batch norm folded
    first); activations per tensor, asymmetric uint8 from calibration. A
    convolution or dense layer with its bias and ReLU is one int8 kernel
    call whose store requantises; residual adds and concatenations run on
    uint8 (requantising their inputs); pooling runs on uint8. Layers with
    no int8 kernel (sigmoid, softmax, batch norm that cannot fold...) stay
    in float32 with quantize / dequantize at their edges; a classifier's
    logits come out of the int8 dense layer in float32. A layer whose
    calibrated output range is empty (always 0: "scale 0") would saturate
    on any other input: it stays in float32, with a
    :class:`QuantizationWarning` naming it.

    Raises ValueError (naming the argument or the layer) for calibration
    data of the wrong shape, NaN or infinity in it or in a layer's output,
    or a model with no layer that has an int8 kernel.
    """
    from ..layers.base import Layer

    if isinstance(model, QuantizedModel):
        raise TypeError("model: it is quantized already")
    if not isinstance(model, Layer) or not hasattr(model, "to_graph"):
        raise TypeError(f"model: expected a cnnx Model or Sequential, got {type(model).__name__}")
    if not getattr(model, "built", False):
        raise ValueError("model: not built yet (give input_shape= or call build/fit first)")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if (
        isinstance(percentile, bool)
        or not isinstance(percentile, numbers.Real)
        or not 50.0 < float(percentile) <= 100.0
    ):
        raise ValueError(f"percentile: expected a number in (50, 100], got {percentile!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    if isinstance(exclude, str):
        exclude = (exclude,)
    exclude = set(exclude)
    xs = _check_data(model, calibration_data)

    model.sync()
    fm = _private_copy(model)
    # a model taking any size: its graph at the calibration data's size (value
    # ids do not depend on the size, so the parameters fit every size)
    shapes = fm._sizes(xs) if hasattr(fm, "_sizes") else None
    shapes = None if shapes is None else list(shapes)
    g = prepare(fm.to_graph(shapes))
    names = {op.name for op in g.ops} | {l.name for l in fm.layers}
    unknown = sorted(exclude - names)
    if unknown:
        raise ValueError(f"exclude: no layer called {unknown[0]!r}")
    ops = [op for op in weight_ops(g) if op.name not in exclude]
    if not ops:
        kinds = sorted({op.name for op in g.ops})
        raise ValueError(
            f"model: no layer has an int8 kernel, so quantizing it would change "
            f"nothing (its layers: {', '.join(kinds)}; int8 kernels exist for "
            f"{', '.join(INT8_LAYERS[:2])})"
        )
    weights = {op.output.id: quantize_layer_weights(op) for op in ops}
    want, inherit = wanted_values(g, weights, exclude)
    ranges = calibrate(fm, xs, want, method, float(percentile), batch_size, shapes)
    by_id = {v.id: v for v in g.values}
    params = {}
    for vid, (lo, hi) in ranges.items():
        why = degenerate_reason(lo, hi)
        if why is not None:
            v = by_id[vid]
            who = f"layer {v.producer.name!r}" if v.producer is not None else "the model's input"
            warnings.warn(
                f"{who}: {why}; it would saturate on any other input, so the layers "
                "reading it stay in float32",
                QuantizationWarning,
                stacklevel=2,
            )
            continue
        params[vid] = scale_zero_point(lo, hi)
    for out, src in inherit.items():
        if src in params:
            params[out] = params[src]
    params = settle(g, params, weights, exclude)
    weights = {k: w for k, w in weights.items() if _used(g, k, params)}
    if not weights:
        warnings.warn(
            "model: no convolution or dense layer could run in int8 (see the "
            "warnings above); the quantized model computes in float32",
            QuantizationWarning,
            stacklevel=2,
        )
    config = {"method": method, "samples": int(xs[0].shape[0])}
    if method == "percentile":
        config["percentile"] = float(percentile)
    if exclude:
        config["exclude"] = sorted(exclude)
    return QuantizedModel(fm, params, weights, config)


def _used(g, vid, params):
    op = next(o for o in g.ops if o.output.id == vid)
    return all(v.id in params for v in op.inputs)
