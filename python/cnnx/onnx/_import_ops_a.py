"""ONNX import of issue 19's operators (layers-a): the activations ``Elu``,
``Selu``, ``Gelu``, ``HardSigmoid``, ``HardSwish``, ``Clip``, ``Softplus``,
``Softsign``, ``LogSoftmax``, ``PRelu``; the normalisations ``LRN`` and
``LayerNormalization`` (over the last axis); and ``MaxPool`` /
``AveragePool`` with ``dilations`` (max) and ``ceil_mode``.

Registered in ``_import_ops.CONVERTERS`` (one converter
``f(ctx, node, inputs) -> OVal`` per operator, layouts carried by
:class:`OVal`); ``MaxPool`` / ``AveragePool`` are converted here only.

Elementwise activations keep their input's layout (image, NHWC view or flat
features of any order). Whatever cnnx cannot compute exactly is refused with
:class:`~cnnx.onnx.ONNXConversionError` naming the node.
"""

import math

import numpy as np

from ._import_ops import (
    OVal,
    _add,
    _arg,
    _data,
    _explicit_pads,
    _image,
    _pair,
    _shape_str,
    _to_cnnx_order,
    _used,
    flat_tensor,
    softmax_input,
)

__all__ = ["CONVERTERS_A", "SUPPORTED_IMPORT_OPS_A"]

_F32_MAX = float(np.finfo(np.float32).max)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_GAMMA = 1.0507009873554804934193349852946


def _layer(ctx, node, ov, cls, **config):
    """An elementwise layer on ``ov`` (its layout kept)."""
    return ov.like(_add(ctx, node, cls, [ov.t], ov.t.shape, config=config))


def _elu(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("alpha",))
    return _layer(ctx, node, _data(ctx, node, ins), "ELU", alpha=float(attrs.get("alpha", 1.0)))


def _selu(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("alpha", "gamma"))
    a = float(attrs.get("alpha", _SELU_ALPHA))
    g = float(attrs.get("gamma", _SELU_GAMMA))
    if not (
        math.isclose(a, _SELU_ALPHA, rel_tol=1e-6) and math.isclose(g, _SELU_GAMMA, rel_tol=1e-6)
    ):
        raise ctx.fail(
            node,
            f"alpha={a}, gamma={g}: only SELU's own constants are supported "
            f"({_SELU_ALPHA:.7f}, {_SELU_GAMMA:.7f})",
        )
    return _layer(ctx, node, _data(ctx, node, ins), "SELU")


def _gelu(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("approximate",))
    approximate = attrs.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ctx.fail(node, f"approximate={approximate!r}: expected 'none' or 'tanh'")
    return _layer(ctx, node, _data(ctx, node, ins), "GELU", approximate=approximate)


def _hard_sigmoid(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("alpha", "beta"))
    return _layer(
        ctx,
        node,
        _data(ctx, node, ins),
        "Hardsigmoid",
        alpha=float(attrs.get("alpha", 0.2)),
        beta=float(attrs.get("beta", 0.5)),
    )


def _plain(cls):
    def convert(ctx, node, ins):
        ctx.check_attrs(node, ctx.attrs(node), ())
        return _layer(ctx, node, _data(ctx, node, ins), cls)

    return convert


def _clip(ctx, node, ins):
    attrs = ctx.attrs(node)
    ov = _data(ctx, node, ins)
    if ctx.opset < 11:  # bounds as attributes
        ctx.check_attrs(node, attrs, ("min", "max"))
        lo, hi = attrs.get("min", -math.inf), attrs.get("max", math.inf)
    else:
        ctx.check_attrs(node, attrs, ())
        bounds = []
        for i, what, default in ((1, "min", -math.inf), (2, "max", math.inf)):
            name = _arg(node, i)
            if not name:
                bounds.append(default)
                continue
            a = np.asarray(ctx.const(node, name, what))
            if a.size != 1:
                raise ctx.fail(node, f"{what} must be one number, got shape {a.shape}")
            bounds.append(float(a.reshape(())))
        lo, hi = bounds
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ctx.fail(node, f"min={lo} and max={hi}: expected min <= max")
    if lo == 0.0 and hi == 6.0:
        return _layer(ctx, node, ov, "ReLU6")
    # an open side: the largest float, which clips nothing a float can hold
    lo = max(lo, -_F32_MAX)
    hi = min(hi, _F32_MAX)
    return _layer(ctx, node, ov, "Clip", min_value=lo, max_value=hi)


def _log_softmax(ctx, node, ins):
    ov, x, axis = softmax_input(ctx, node, ins, "log-softmax")
    return ov.like(_add(ctx, node, "LogSoftmax", [x], x.shape, config=dict(axis=axis)))


def _prelu(ctx, node, ins):
    ctx.check_attrs(node, ctx.attrs(node), ())
    ov = _data(ctx, node, ins)
    slope = ctx.const_f32(node, _arg(node, 1), "the slope")
    shape = ov.onnx_shape
    nd = len(shape)
    if ctx.opset < 7 and slope.ndim == 1 and slope.size == shape[0] and nd > 1:
        # before numpy broadcasting (opset 7), a 1-D slope is one per channel (axis 1)
        slope = slope.reshape((-1,) + (1,) * (nd - 1))
    try:
        full = np.broadcast_shapes(slope.shape, (1,) + shape)
    except ValueError:
        full = None
    if full != (1,) + shape:
        raise ctx.fail(
            node,
            f"a slope of shape {slope.shape} does not broadcast to its input "
            f"{_shape_str(ov)} without changing it",
        )
    per = slope.reshape(
        slope.shape[-nd:] if slope.ndim >= nd else (1,) * (nd - slope.ndim) + slope.shape
    )
    if per.size == 1:  # one shared slope
        x = ov.t
        shared = list(range(1, len(x.shape) + 1))
        params = {"alpha": per.reshape(1)}
    elif ov.layout == "flat":  # one per feature (cnnx's order)
        x = flat_tensor(ctx, node, ov)
        shared = None
        params = {"alpha": _to_cnnx_order(np.broadcast_to(per.reshape(-1), shape).copy(), ov.perm)}
    else:
        x = ov.t
        h, w, c = x.shape
        hwc = per.transpose(1, 2, 0) if ov.layout == "nchw" else per  # as (h, w, c) axes
        if hwc.shape[0] == 1 and hwc.shape[1] == 1:  # per channel
            shared = [1, 2]
            params = {"alpha": np.broadcast_to(hwc.reshape(-1), (c,)).copy()}
        elif hwc.shape[0] == 1 and hwc.shape[1] == w:
            shared = [1]
            params = {"alpha": np.broadcast_to(hwc[0], (w, c)).copy()}
        elif hwc.shape[:2] == (h, w):
            shared = None
            params = {"alpha": np.broadcast_to(hwc, (h, w, c)).copy()}
        else:
            raise ctx.fail(
                node,
                f"a slope of shape {slope.shape} varies along W but not H of "
                f"{_shape_str(ov)}; cnnx's PReLU shares leading axes only",
            )
    config = dict(shared_axes=shared, alpha_initializer=0.0)
    t = _add(
        ctx,
        node,
        "PReLU",
        [x],
        x.shape,
        config=config,
        params={k: np.ascontiguousarray(v, np.float32) for k, v in params.items()},
    )
    return ov.like(t)


def _lrn(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("size", "alpha", "beta", "bias"))
    if "size" not in attrs:
        raise ctx.fail(node, "attribute size is required")
    size = int(attrs["size"])
    if size < 1 or size % 2 == 0:
        raise ctx.fail(
            node,
            f"size={size}: only odd window sizes are supported (ONNX and "
            "PyTorch centre even windows differently)",
        )
    bias = float(attrs.get("bias", 1.0))
    if not bias > 0:
        raise ctx.fail(node, f"bias={bias}: expected bias > 0")
    x = _image(ctx, node, _data(ctx, node, ins))
    config = dict(
        size=size,
        alpha=float(attrs.get("alpha", 1e-4)),
        beta=float(attrs.get("beta", 0.75)),
        bias=bias,
    )
    return OVal(_add(ctx, node, "LocalResponseNormalization", [x], x.shape, config=config), "nchw")


def _layer_norm(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("axis", "epsilon", "stash_type"))
    if any(_used(ctx, o) for o in node.output[1:]):
        raise ctx.fail(node, "the Mean / InvStdDev outputs are not supported")
    ov = _data(ctx, node, ins)
    shape = ov.onnx_shape
    nd = len(shape) + 1
    axis = ctx.axis(node, attrs.get("axis", -1), nd)
    if axis != nd - 1:
        raise ctx.fail(
            node,
            f"axis={attrs.get('axis', -1)} normalises more than the last axis "
            f"of {_shape_str(ov)}; only the last axis is supported",
        )
    if ov.layout == "nchw":
        raise ctx.fail(
            node,
            "normalises W of an NCHW image; cnnx normalises the channels (the "
            "last axis of an NHWC view: Transpose to NHWC first, as ConvNeXt "
            "exports do)",
        )
    x = flat_tensor(ctx, node, ov) if ov.layout == "flat" else ov.t
    c = x.shape[-1]
    perm = ov.perm if ov.layout == "flat" else None
    params = {}
    for i, key, what in ((1, "gamma", "the scale"), (2, "beta", "the bias B")):
        name = _arg(node, i)
        if not name:
            if key == "gamma":
                raise ctx.fail(node, "input Scale is missing")
            continue
        a = ctx.const_f32(node, name, what).reshape(-1)
        if a.size == 1:
            a = np.full(c, a[0], np.float32)
        if a.shape != (c,):
            raise ctx.fail(node, f"{what} of shape {a.shape}, expected ({c},)")
        params[key] = _to_cnnx_order(a, perm)
    config = dict(epsilon=float(attrs.get("epsilon", 1e-5)), center="beta" in params, scale=True)
    t = _add(ctx, node, "LayerNormalization", [x], x.shape, config=config, params=params)
    return ov.like(t)


def _pool(ctx, node, ins):
    """MaxPool (dilations, ceil_mode) and AveragePool (ceil_mode)."""
    attrs = ctx.attrs(node)
    op = node.op_type
    allowed = ["kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "dilations"]
    allowed += ["storage_order"] if op == "MaxPool" else ["count_include_pad"]
    ctx.check_attrs(node, attrs, allowed)
    if len(node.output) > 1 and _used(ctx, node.output[1]):
        raise ctx.fail(node, "the Indices output of MaxPool is not supported")
    x = _image(ctx, node, _data(ctx, node, ins))
    if "kernel_shape" not in attrs:
        raise ctx.fail(node, "attribute kernel_shape is required")
    kernel = _pair(ctx, node, attrs, "kernel_shape", None)
    strides = _pair(ctx, node, attrs, "strides", (1, 1))
    dil = _pair(ctx, node, attrs, "dilations", (1, 1))
    if op == "AveragePool" and dil != [1, 1]:
        raise ctx.fail(node, f"dilations={dil}: cnnx dilates max pooling only")
    ceil = bool(int(attrs.get("ceil_mode", 0)))
    h, w, c = x.shape
    pads = _explicit_pads(ctx, node, attrs, (h, w), kernel, strides, dil)
    (pt, pb), (pl, pr) = pads
    if max(pt, pb) > kernel[0] // 2 or max(pl, pr) > kernel[1] // 2:
        raise ctx.fail(node, f"pads {pads} larger than half the window {kernel} are not supported")
    from ..functional._pool import pool_output_size

    for n, k, p, d in zip((h, w), kernel, pads, dil):
        if (k - 1) * d + 1 > n + p[0] + p[1]:
            raise ctx.fail(
                node,
                f"kernel_shape {kernel} (cnnx's pool_size; dilations {dil}) "
                f"is larger than the padded input {(h, w)} with pads {pads}",
            )
    out = tuple(
        pool_output_size(n, k, p, s, d, ceil)
        for n, k, p, s, d in zip((h, w), kernel, pads, strides, dil)
    )
    config = dict(pool_size=tuple(kernel), strides=tuple(strides), padding=pads, ceil_mode=ceil)
    if op == "MaxPool":
        cls = "MaxPool2D"
        config["dilation_rate"] = tuple(dil)
    else:
        cls = "AvgPool2D"
        config["count_include_pad"] = bool(int(attrs.get("count_include_pad", 0)))
    return OVal(_add(ctx, node, cls, [x], (*out, c), config=config), "nchw")


CONVERTERS_A = {
    "Elu": _elu,
    "Selu": _selu,
    "Gelu": _gelu,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": _plain("Hardswish"),
    "Softplus": _plain("Softplus"),
    "Softsign": _plain("Softsign"),
    "Clip": _clip,
    "LogSoftmax": _log_softmax,
    "PRelu": _prelu,
    "LRN": _lrn,
    "LayerNormalization": _layer_norm,
    "MaxPool": _pool,
    "AveragePool": _pool,
}

#: the operators above, for SUPPORTED_IMPORT_OPS
SUPPORTED_IMPORT_OPS_A = tuple(k for k in CONVERTERS_A if k not in ("MaxPool", "AveragePool"))
