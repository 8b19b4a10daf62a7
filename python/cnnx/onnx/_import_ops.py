"""ONNX operators -> cnnx layers, one converter per operator, with the layout
of every tensor carried along (:class:`OVal`).

cnnx computes in NHWC; ONNX convolutions and pools in NCHW. Each ONNX tensor
computed from the graph's inputs is held as a cnnx tensor plus how ONNX sees
it, so that layout changes cost nothing and weights absorb the reorderings:

- an NCHW image is cnnx's (H, W, C) image; ``Transpose(0, 2, 3, 1)`` makes
  it an NHWC view of the same tensor (and ``(0, 3, 1, 2)`` back);
- ``Flatten`` of an NCHW image gives its features in (c, h, w) order while
  cnnx flattens in (h, w, c) order: the flat value remembers the
  permutation, and the Gemm/MatMul, BatchNormalization or constant that
  meets it has its rows permuted instead of the data. Flattening an NHWC
  view, or an image of 1x1 pixels, needs no permutation. A Reshape back
  to (N, C, H, W) (as cnnx's own export writes before a Concat) finds the
  image again;
- elementwise operators keep the layout; joins (Add, Concat...) need equal
  layouts.

Whatever cnnx cannot compute exactly (an operator, an attribute, a
broadcast, a layout) raises :class:`~cnnx.onnx.ONNXConversionError` naming the
operator and the node.
"""

import math

import numpy as np

from ..functional._shapes import output_hw
from ._import_ctx import MAX_EXTENT

__all__ = ["OVal", "CONVERTERS", "flat_tensor", "softmax_input"]


class OVal:
    """An ONNX tensor computed from the graph's inputs, as cnnx holds it.

    ``t``: the cnnx tensor (:class:`._import_ir.Tensor`); ``layout``:

    - ``"nchw"``: ONNX (N, C, H, W), ``t`` is the (H, W, C) image;
    - ``"nhwc"``: ONNX (N, H, W, C), ``t`` is the same (H, W, C) image;
    - ``"flat"``: ONNX (N, F); ``t`` is flat (F,), or an image whose (h, w, c)
      flattening it is (the Flatten layer is added when a layer needs it).
      Feature i of the ONNX tensor is feature ``perm[i]`` of cnnx's (``perm``
      None: the same order); ``chw`` = (C, H, W) when ``perm`` is an NCHW
      Flatten's order.
    """

    __slots__ = ("t", "layout", "perm", "chw")

    def __init__(self, t, layout, perm=None, chw=None):
        self.t, self.layout, self.perm, self.chw = t, layout, perm, chw

    @property
    def onnx_shape(self):
        """The ONNX shape without the batch axis."""
        s = self.t.shape
        if self.layout == "nchw":
            return (s[2], s[0], s[1])
        if self.layout == "nhwc":
            return s
        return (math.prod(s),)

    def like(self, t):
        """The same layout for another cnnx tensor of the same shape."""
        return OVal(t, self.layout, self.perm, self.chw)


def _shape_str(ov):
    return str(("N",) + ov.onnx_shape)


def _chw_perm(h, w, c):
    """ONNX (c, h, w)-order feature i -> cnnx (h, w, c)-order index (None: the same)."""
    if h * w == 1 or c == 1:
        return None
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _same_perm(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _to_cnnx_order(arr, perm):
    """Per-feature values in ONNX order -> cnnx order (rows, for a 2-D array), C-contiguous."""
    arr = np.ascontiguousarray(arr)  # whole rows to gather (a transposed weight: copied once)
    return arr if perm is None else arr[np.argsort(perm)]  # cnnx row perm[i] is ONNX row i


# ---------------------------------------------------------------------------
# inputs of a node
# ---------------------------------------------------------------------------


def _arg(node, i):
    """The name of input ``i`` of ``node`` ("" when it has none)."""
    return node.input[i] if i < len(node.input) else ""


def _scalar(ctx, node, name, what):
    a = np.asarray(ctx.const(node, name, what))
    if a.size != 1 or a.dtype.kind not in "fiub":
        raise ctx.fail(node, f"{what} must be one number, got shape {a.shape} of {a.dtype}")
    return a.reshape(()).item()


def _data(ctx, node, ins, i=0):
    v = ins[i] if i < len(ins) else None
    if not isinstance(v, OVal):
        raise ctx.fail(
            node,
            f"input {i} must be computed from the graph's inputs; a "
            "constant there is not supported",
        )
    return v


def _image(ctx, node, ov):
    if ov.layout == "nchw":
        return ov.t
    if ov.layout == "nhwc":
        raise ctx.fail(
            node,
            "needs an NCHW image, but its input is an NHWC view (after a "
            "Transpose); only a Transpose back, a Flatten or elementwise "
            "operators may read it",
        )
    raise ctx.fail(node, f"needs an image (N, C, H, W); its input has shape {_shape_str(ov)}")


def flat_tensor(ctx, node, ov):
    """The flat cnnx tensor of a flat value (one Flatten layer per image, made once)."""
    t = ov.t
    if len(t.shape) == 1:
        return t
    flat = ctx.flat_of.get(id(t))
    if flat is None:
        base = t.name or (node.name if node is not None else None) or "flatten"
        flat = ctx.graph.add("Flatten", [t], (math.prod(t.shape),), node, name=f"{base}/flatten")
        ctx.flat_of[id(t)] = flat
    return flat


def _add(ctx, node, cls, inputs, shape, **kw):
    return ctx.graph.add(cls, inputs, shape, node, **kw)


# ---------------------------------------------------------------------------
# attributes shared by convolution and pooling
# ---------------------------------------------------------------------------


def _pair(ctx, node, attrs, key, default):
    v = [int(x) for x in attrs.get(key, default)]
    if len(v) != 2:
        raise ctx.fail(node, f"attribute {key}={v}: only 2-D (two values) is supported")
    if min(v) < 1 or max(v) >= MAX_EXTENT:
        raise ctx.fail(node, f"attribute {key}={v}: expected values in [1, 2**40)")
    return v


def _explicit_pads(ctx, node, attrs, hw, kernel, strides, dilations):
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4:
            raise ctx.fail(node, f"attribute pads={pads}: expected 4 values for 2-D")
        if min(pads) < 0:
            raise ctx.fail(node, f"negative pads {pads} are not supported")
        if max(pads) >= MAX_EXTENT:
            raise ctx.fail(node, f"attribute pads={pads}: expected values below 2**40")
        t, l, b, r = pads
        pads = ((t, b), (l, r))
    elif auto == "VALID":
        pads = ((0, 0), (0, 0))
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for n, f, s, d in zip(hw, kernel, strides, dilations):
            o = -(-n // s)
            total = max((o - 1) * s + (f - 1) * d + 1 - n, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        pads = tuple(out)
    else:
        raise ctx.fail(node, f"auto_pad={auto!r} not supported")
    for n, (p0, p1) in zip(hw, pads):
        if n + p0 + p1 >= MAX_EXTENT:
            raise ctx.fail(
                node,
                f"attribute pads: the padded input ({n} + {p0} + {p1} "
                "pixels) must span fewer than 2**40 pixels per axis",
            )
    return pads


def _out_hw(ctx, node, hw, kernel, pads, strides, dilations=(1, 1), what="kernel_size"):
    for n, f, (p0, p1), d in zip(hw, kernel, pads, dilations):
        if (f - 1) * d + 1 > n + p0 + p1:
            raise ctx.fail(
                node,
                f"kernel_shape {list(kernel)} (cnnx's {what}; dilations "
                f"{list(dilations)}) is larger than the padded input {hw} "
                f"with pads {pads}",
            )
    return output_hw(hw, kernel, pads, strides, dilations)


# ---------------------------------------------------------------------------
# convolution, pooling, dense
# ---------------------------------------------------------------------------


def _conv(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(
        node, attrs, ("kernel_shape", "strides", "pads", "dilations", "group", "auto_pad")
    )
    x = _image(ctx, node, _data(ctx, node, ins))
    w = ctx.const_f32(node, _arg(node, 1), "the weight W")
    if w.ndim != 4:
        raise ctx.fail(node, f"weight of shape {w.shape}: only 2-D convolution is supported")
    o, ig, kh, kw = w.shape
    if "kernel_shape" in attrs and [int(k) for k in attrs["kernel_shape"]] != [kh, kw]:
        raise ctx.fail(
            node, f"kernel_shape {attrs['kernel_shape']} disagrees with the weight shape {w.shape}"
        )
    group = int(attrs.get("group", 1))
    h, wd, c = x.shape
    if group < 1 or ig * group != c or o % group:
        raise ctx.fail(node, f"weight {w.shape} with group={group} does not fit {c} input channels")
    strides = _pair(ctx, node, attrs, "strides", (1, 1))
    dil = _pair(ctx, node, attrs, "dilations", (1, 1))
    for f, d in zip((kh, kw), dil):
        if (f - 1) * d + 1 >= MAX_EXTENT:
            raise ctx.fail(
                node,
                f"attribute dilations={dil}: the dilated {kh}x{kw} kernel "
                "would span 2**40 pixels or more",
            )
    pads = _explicit_pads(ctx, node, attrs, (h, wd), (kh, kw), strides, dil)
    oh, ow = _out_hw(ctx, node, (h, wd), (kh, kw), pads, strides, dil)
    params = {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0))}  # OIHW -> HWIO
    if len(node.input) > 2 and node.input[2]:
        b = ctx.const_f32(node, node.input[2], "the bias B").reshape(-1)
        if b.shape != (o,):
            raise ctx.fail(node, f"bias of shape {b.shape}, expected ({o},)")
        params["bias"] = b
    config = dict(
        filters=o,
        kernel_size=(kh, kw),
        strides=tuple(strides),
        padding=pads,
        dilation_rate=tuple(dil),
        groups=group,
        use_bias="bias" in params,
        kernel_initializer="zeros",
    )  # the weights come from the graph
    return OVal(_add(ctx, node, "Conv2D", [x], (oh, ow, o), config=config, params=params), "nchw")


def _used(ctx, name):
    """True when ONNX value ``name`` is read by a node some output needs, or is an output."""
    return bool(name) and name in ctx.needed


def _reduce_axes(ctx, node, attrs, nd):
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.const(node, node.input[1], "axes").reshape(-1).tolist()
    return None if axes is None else sorted(ctx.axis(node, a, nd, "axes") for a in axes)


def _global_pool(ctx, node, ins):
    """GlobalAveragePool / GlobalMaxPool / ReduceMean / ReduceMax over H and W."""
    attrs = ctx.attrs(node)
    op = node.op_type
    ov = _data(ctx, node, ins)
    keepdims = True
    if op in ("ReduceMean", "ReduceMax"):
        ctx.check_attrs(node, attrs, ("axes", "keepdims", "noop_with_empty_axes"))
        nd = len(ov.onnx_shape) + 1
        axes = _reduce_axes(ctx, node, attrs, nd)
        spatial = {"nchw": [2, 3], "nhwc": [1, 2]}.get(ov.layout)
        if axes is None or axes != spatial:
            raise ctx.fail(
                node,
                f"{op} over axes {axes} of a tensor of shape "
                f"{_shape_str(ov)} is supported only as a global pool (over "
                "H and W of an image)",
            )
        keepdims = bool(int(attrs.get("keepdims", 1)))
    else:
        ctx.check_attrs(node, attrs, ())
        _image(ctx, node, ov)
    x = ov.t
    c = x.shape[2]
    if op in ("GlobalAveragePool", "ReduceMean"):
        if not keepdims:
            return OVal(_add(ctx, node, "GlobalAvgPool2D", [x], (c,)), "flat")
        t = _add(ctx, node, "AdaptiveAvgPool2D", [x], (1, 1, c), config=dict(output_size=1))
    else:
        t = _add(ctx, node, "AdaptiveMaxPool2D", [x], (1, 1, c), config=dict(output_size=1))
    return ov.like(t) if keepdims else OVal(t, "flat")


def _dense_input(ctx, node, ov):
    if ov.layout != "flat":
        raise ctx.fail(node, f"needs flat features (N, n); its input has shape {_shape_str(ov)}")
    return flat_tensor(ctx, node, ov)


def _dense(ctx, node, ov, w, b):
    """Dense on flat value ``ov``: ``w`` (n_in, n_out) in ONNX's feature order."""
    x = _dense_input(ctx, node, ov)
    n_in = x.shape[0]
    if w.shape[0] != n_in:
        raise ctx.fail(node, f"weight of shape {w.shape} does not fit {n_in} input features")
    params = {"kernel": _to_cnnx_order(w, ov.perm)}
    if b is not None:
        params["bias"] = b
    n_out = w.shape[1]
    config = dict(units=n_out, use_bias=b is not None, kernel_initializer="zeros")
    return OVal(_add(ctx, node, "Dense", [x], (n_out,), config=config, params=params), "flat")


def _gemm(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("alpha", "beta", "transA", "transB", "broadcast"))
    if int(attrs.get("transA", 0)):
        raise ctx.fail(node, "transA=1 is not supported (the input must be (N, n_in))")
    ov = _data(ctx, node, ins)
    w = ctx.const_f32(node, _arg(node, 1), "the weight B")
    if w.ndim != 2:
        raise ctx.fail(node, f"weight of shape {w.shape}: expected 2-D")
    if int(attrs.get("transB", 0)):
        w = w.T
    alpha = float(attrs.get("alpha", 1.0))
    if alpha != 1.0:
        w = w * np.float32(alpha)
    n_out = w.shape[1]
    b = None
    if len(node.input) > 2 and node.input[2]:
        c = ctx.const_f32(node, node.input[2], "the bias C")
        if c.size not in (1, n_out) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
            raise ctx.fail(
                node,
                f"bias of shape {c.shape} is not supported (expected "
                f"({n_out},), (1, {n_out}) or a scalar)",
            )
        b = (np.broadcast_to(c.reshape(-1), (n_out,)) * np.float32(attrs.get("beta", 1.0))).astype(
            np.float32
        )
    return _dense(ctx, node, ov, w, b)


def _matmul(ctx, node, ins):
    ov = _data(ctx, node, ins)
    w = ctx.const_f32(node, _arg(node, 1), "the second input (weights)")
    if w.ndim != 2:
        raise ctx.fail(node, f"weight of shape {w.shape}: expected 2-D")
    return _dense(ctx, node, ov, w, None)


def _batch_norm(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(
        node,
        attrs,
        ("epsilon", "momentum", "training_mode", "spatial", "consumed_inputs", "is_test"),
    )
    if int(attrs.get("training_mode", 0)):
        raise ctx.fail(node, "training_mode=1 is not supported (export the model in eval mode)")
    if int(attrs.get("spatial", 1)) != 1:
        raise ctx.fail(node, "spatial=0 is not supported")
    if any(_used(ctx, o) for o in node.output[1:]):
        raise ctx.fail(node, "the running-statistics outputs are not supported")
    ov = _data(ctx, node, ins)
    if ov.layout == "nchw":
        x = ov.t
    elif ov.layout == "flat":
        x = flat_tensor(ctx, node, ov)
    else:
        raise ctx.fail(
            node,
            "normalises axis 1, which is H of its NHWC input; only (N, C) or "
            "(N, C, H, W) inputs are supported",
        )
    c = x.shape[-1]
    arrs = []
    for i, what in zip(range(1, 5), ("scale", "B", "mean", "var")):
        if len(node.input) <= i or not node.input[i]:
            raise ctx.fail(node, f"input {what} is missing")
        a = ctx.const_f32(node, node.input[i], what).reshape(-1)
        if a.shape != (c,):
            raise ctx.fail(node, f"{what} of shape {a.shape}, expected ({c},)")
        arrs.append(_to_cnnx_order(a, ov.perm) if ov.layout == "flat" else a)
    eps = float(attrs.get("epsilon", 1e-5))
    if not eps > 0.0:
        raise ctx.fail(node, f"epsilon={eps}: cnnx needs epsilon > 0")
    mom = float(attrs.get("momentum", 0.9))
    if not 0.0 < mom < 1.0:
        mom = 0.9
    t = _add(
        ctx,
        node,
        "BatchNormalization",
        [x],
        x.shape,
        config=dict(momentum=mom, epsilon=eps),
        params={"gamma": arrs[0], "beta": arrs[1]},
        buffers={"moving_mean": arrs[2], "moving_var": arrs[3]},
    )
    return ov.like(t)


# ---------------------------------------------------------------------------
# activations, dropout, identity
# ---------------------------------------------------------------------------

_ACT_LAYERS = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "LeakyRelu": "LeakyReLU"}


def _activation(ctx, node, ins):
    attrs = ctx.attrs(node)
    op = node.op_type
    ctx.check_attrs(node, attrs, ("alpha",) if op == "LeakyRelu" else ())
    ov = _data(ctx, node, ins)
    config = {"alpha": float(attrs.get("alpha", 0.01))} if op == "LeakyRelu" else {}
    return ov.like(_add(ctx, node, _ACT_LAYERS[op], [ov.t], ov.t.shape, config=config))


def softmax_input(ctx, node, ins, what):
    """The input of a Softmax or LogSoftmax node (``what`` names it in errors):
    ``(ov, x, axis)``, ``x`` the cnnx tensor to normalise along cnnx's ``axis``.

    Before opset 13 both normalise over the flattened axes [axis, nd), which
    is one axis when the others are 1."""
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("axis",))
    ov = _data(ctx, node, ins)
    shape = ov.onnx_shape
    nd = len(shape) + 1
    if ctx.opset >= 13:
        axis = ctx.axis(node, attrs.get("axis", -1), nd)
    else:
        axis = ctx.axis(node, attrs.get("axis", 1), nd)
        big = [a for a in range(axis, nd) if shape[a - 1] != 1]
        if len(big) > 1:
            raise ctx.fail(
                node,
                f"opset {ctx.opset} {node.op_type} with axis={axis} on a tensor of "
                f"shape {_shape_str(ov)} (one {what} over the flattened "
                "trailing axes) is not supported",
            )
        axis = big[0] if big else nd - 1
    if axis == 0:
        raise ctx.fail(node, f"{what} over the batch axis is not supported")
    if ov.layout == "flat":  # over every feature: their order does not matter
        return ov, flat_tensor(ctx, node, ov), -1
    cnnx_axis = {1: -1, 2: 1, 3: 2}[axis] if ov.layout == "nchw" else {1: 1, 2: 2, 3: -1}[axis]
    return ov, ov.t, cnnx_axis


def _softmax(ctx, node, ins):
    ov, x, axis = softmax_input(ctx, node, ins, "softmax")
    return ov.like(_add(ctx, node, "Softmax", [x], x.shape, config=dict(axis=axis)))


def _dropout(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("ratio", "seed", "is_test"))
    if len(node.output) > 1 and _used(ctx, node.output[1]):
        raise ctx.fail(
            node,
            "the mask output of Dropout is read by the graph; cnnx supports "
            "Dropout only with an unused mask",
        )
    ov = _data(ctx, node, ins)
    rate = float(attrs.get("ratio", 0.5))
    if _arg(node, 1):
        rate = float(_scalar(ctx, node, _arg(node, 1), "ratio"))
    if _arg(node, 2) and bool(_scalar(ctx, node, _arg(node, 2), "training_mode")):
        raise ctx.fail(node, "training_mode=True is not supported")
    if not 0.0 <= rate < 1.0:
        raise ctx.fail(node, f"ratio={rate} not supported (expected [0, 1))")
    return ov.like(_add(ctx, node, "Dropout", [ov.t], ov.t.shape, config=dict(rate=rate)))


def _identity(ctx, node, ins):
    return _data(ctx, node, ins)


# ---------------------------------------------------------------------------
# joins: elementwise (two computed tensors, or one and a constant) and Concat
# ---------------------------------------------------------------------------

_JOIN = {"Add": "Add", "Sum": "Add", "Sub": "Subtract", "Mul": "Multiply", "Mean": "Average"}


def _joined_tensors(ctx, node, vals):
    """The cnnx tensors of values that an elementwise join or Concat may combine."""
    first = vals[0]
    for v in vals[1:]:
        if v.layout != first.layout or (
            first.layout == "flat" and not _same_perm(v.perm, first.perm)
        ):
            raise ctx.fail(
                node,
                "its inputs hold their values in different orders (e.g. an "
                "NCHW image flattened and an NHWC one); this is not supported",
            )
    ts = [v.t for v in vals]
    if first.layout == "flat" and len({t.shape for t in ts}) > 1:
        ts = [flat_tensor(ctx, node, v) for v in vals]
    return ts


def _eltwise(ctx, node, ins):
    op = node.op_type
    ctx.check_attrs(node, ctx.attrs(node), ("broadcast", "axis") if ctx.opset < 7 else ())
    if ctx.opset < 7 and int(ctx.attrs(node).get("broadcast", 0)):
        raise ctx.fail(node, "broadcast=1 (opset < 7) is not supported")
    vals = [v for v in ins if v is not None]
    if (
        op in ("Add", "Sub", "Mul", "Div")
        and len(vals) == 2
        and any(not isinstance(v, OVal) for v in vals)
    ):
        return _affine(ctx, node, vals)
    if not all(isinstance(v, OVal) for v in vals):
        raise ctx.fail(
            node,
            f"{op} of computed tensors and constants is supported only as a "
            "binary Add, Sub, Mul or Div",
        )
    if op == "Div":
        raise ctx.fail(node, "division of two computed tensors is not supported")
    if len(vals) == 1:
        return vals[0]
    shapes = {v.onnx_shape for v in vals}
    if len(shapes) > 1:
        raise ctx.fail(
            node,
            f"inputs of shapes {[_shape_str(v) for v in vals]}: broadcasting "
            "between computed tensors is not supported",
        )
    ts = _joined_tensors(ctx, node, vals)
    return vals[0].like(_add(ctx, node, _JOIN[op], ts, ts[0].shape, multi=True))


def _affine(ctx, node, vals):
    """``x op constant``: a per-channel (or per-feature) scale and offset."""
    op = node.op_type
    i = 0 if isinstance(vals[0], OVal) else 1
    ov, c = vals[i], np.asarray(vals[1 - i])
    if c.dtype.kind not in "fiub":
        raise ctx.fail(node, f"constant of type {c.dtype} is not supported")
    c = c.astype(np.float32)
    if op == "Div" and i == 1:
        raise ctx.fail(node, "dividing a constant by a computed tensor is not supported")
    x, vec = _channel_vector(ctx, node, ov, c)
    n = x.shape[-1]
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    if op == "Add":
        scale, offset = ones, vec
    elif op == "Sub":
        scale, offset = (ones, -vec) if i == 0 else (-ones, vec)
    elif op == "Mul":
        scale, offset = vec, zeros
    else:  # x / c: a multiplication by the reciprocal (a rounding-level difference)
        if np.any(vec == 0):
            raise ctx.fail(node, "division by a constant that holds zeros is not supported")
        scale, offset = (np.float32(1.0) / vec).astype(np.float32), zeros
    t = _add(ctx, node, "Affine", [x], x.shape, params={"scale": scale, "offset": offset})
    return ov.like(t)


def _channel_vector(ctx, node, ov, c):
    """The cnnx tensor to scale/shift and the constant as one value per cnnx channel."""
    shape = ov.onnx_shape
    nd = len(shape)
    try:
        full = np.broadcast_shapes(c.shape, (1,) + shape)
    except ValueError:
        full = None
    if full != (1,) + shape:
        raise ctx.fail(
            node,
            f"a constant of shape {c.shape} does not broadcast to its input "
            f"{_shape_str(ov)} without changing it",
        )
    per = c.reshape(c.shape[-nd:] if c.ndim >= nd else (1,) * (nd - c.ndim) + c.shape)
    if per.size == 1:
        n = ov.t.shape[-1]
        return ov.t, np.full(n, per.reshape(()), np.float32)
    if ov.layout == "flat":
        x = ov.t
        if len(x.shape) == 3 and x.shape[0] * x.shape[1] == 1:
            return x, per.reshape(-1)  # 1x1 pixels: features are channels
        return flat_tensor(ctx, node, ov), _to_cnnx_order(per.reshape(-1), ov.perm)
    channel_axis = 0 if ov.layout == "nchw" else 2
    if any(d != 1 for a, d in enumerate(per.shape) if a != channel_axis):
        raise ctx.fail(
            node,
            f"a constant of shape {c.shape} varies along H or W of its input "
            f"{_shape_str(ov)}; cnnx applies constants per channel only",
        )
    return ov.t, np.ascontiguousarray(
        np.broadcast_to(per.reshape(-1), (ov.t.shape[-1],)), np.float32
    )


def _concat(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("axis",))
    vals = [v for v in ins if v is not None]
    if not all(isinstance(v, OVal) for v in vals):
        raise ctx.fail(node, "concatenating constants with computed tensors is not supported")
    first = vals[0]
    nd = len(first.onnx_shape) + 1
    if "axis" not in attrs and ctx.opset >= 4:
        raise ctx.fail(node, "attribute axis is required")
    axis = ctx.axis(node, attrs.get("axis", 1), nd)
    if len(vals) == 1:
        return first
    if axis == 0:
        raise ctx.fail(node, "concatenation along the batch axis is not supported")
    for v in vals[1:]:
        if v.layout != first.layout:
            raise ctx.fail(node, "its inputs are in different layouts (NCHW and NHWC)")
        a, b = list(v.onnx_shape), list(first.onnx_shape)
        if len(a) != len(b) or a[: axis - 1] + a[axis:] != b[: axis - 1] + b[axis:]:
            raise ctx.fail(
                node,
                f"inputs of shapes {[_shape_str(u) for u in vals]} do not "
                f"agree except on axis {axis}",
            )
    if first.layout == "flat":
        ts = [flat_tensor(ctx, node, v) for v in vals]
        perm = None
        if any(v.perm is not None for v in vals):
            parts, offset = [], 0
            for v, t in zip(vals, ts):
                n = t.shape[0]
                parts.append((np.arange(n) if v.perm is None else v.perm) + offset)
                offset += n
            perm = np.concatenate(parts)
        cnnx_axis = -1
        out = OVal(None, "flat", perm)
    else:
        ts = [v.t for v in vals]
        cnnx_axis = (
            {1: -1, 2: 1, 3: 2}[axis] if first.layout == "nchw" else {1: 1, 2: 2, 3: -1}[axis]
        )
        out = OVal(None, first.layout)
    a = cnnx_axis % (len(ts[0].shape) + 1) - 1
    shape = list(ts[0].shape)
    shape[a] = sum(t.shape[a] for t in ts)
    out.t = _add(ctx, node, "Concatenate", ts, shape, config=dict(axis=cnnx_axis), multi=True)
    return out


# ---------------------------------------------------------------------------
# layout: Transpose, Flatten, Reshape, Squeeze, Unsqueeze
# ---------------------------------------------------------------------------


def _transpose(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("perm",))
    ov = _data(ctx, node, ins)
    nd = len(ov.onnx_shape) + 1
    perm = [int(p) for p in attrs.get("perm", range(nd - 1, -1, -1))]
    if perm == list(range(nd)):
        return ov
    if ov.layout == "nchw" and perm == [0, 2, 3, 1]:
        return OVal(ov.t, "nhwc")
    if ov.layout == "nhwc" and perm == [0, 3, 1, 2]:
        return OVal(ov.t, "nchw")
    raise ctx.fail(
        node,
        f"Transpose with perm={perm} of a tensor of shape {_shape_str(ov)} "
        "is not supported (only NCHW <-> NHWC: perm [0, 2, 3, 1] or "
        "[0, 3, 1, 2])",
    )


def _flattened(ov):
    """The flat value of an image (features in ONNX's order)."""
    if ov.layout == "flat":
        return ov
    h, w, c = ov.t.shape
    if ov.layout == "nhwc":
        return OVal(ov.t, "flat")
    perm = _chw_perm(h, w, c)
    return OVal(ov.t, "flat", perm, None if perm is None else (c, h, w))


def _flatten(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("axis",))
    ov = _data(ctx, node, ins)
    nd = len(ov.onnx_shape) + 1
    axis = int(attrs.get("axis", 1))
    if axis < 0:
        axis += nd
    if axis != 1:
        raise ctx.fail(node, f"axis={axis} not supported (only 1: keep the batch)")
    return _flattened(ov)


def _new_shape(ctx, node, ov, target, allowzero):
    """Reshape target (with the batch) -> the shape per example, or an error."""
    full = [ctx.batch] + list(ov.onnx_shape)  # batch None when free
    if not allowzero:
        target = [full[i] if t == 0 and i < len(full) else t for i, t in enumerate(target)]
    if not target or not (
        target[0] in (-1, None) or (ctx.batch is not None and target[0] == ctx.batch)
    ):
        raise ctx.fail(
            node,
            f"Reshape to {target} changes the batch axis (only reshapes that "
            "keep it are supported)",
        )
    rest = list(target[1:])
    n = math.prod(ov.onnx_shape)
    if rest.count(-1) > 1 or any(d is None or d < -1 for d in rest):
        raise ctx.fail(node, f"Reshape to {target}: cannot resolve its dimensions")
    if -1 in rest:
        known = math.prod(d for d in rest if d != -1)
        if known == 0 or n % known:
            raise ctx.fail(node, f"Reshape to {target} does not fit {_shape_str(ov)}")
        rest[rest.index(-1)] = n // known
    if math.prod(rest) != n:
        raise ctx.fail(node, f"Reshape to {target} does not fit {_shape_str(ov)}")
    return tuple(rest)


def _reshape_to(ctx, node, ov, shape):
    """``ov`` seen with ONNX per-example ``shape``, where cnnx needs no data movement."""
    if shape == ov.onnx_shape:
        return ov
    if len(shape) == 1:
        return _flattened(ov)
    t = ov.t
    if len(shape) == 3 and len(t.shape) == 3:
        h, w, c = t.shape
        flat = _flattened(ov) if ov.layout != "flat" else ov
        if shape == (c, h, w) and _same_perm(flat.perm, _chw_perm(h, w, c)):
            return OVal(t, "nchw")  # undoing an NCHW Flatten
        if shape == (h, w, c) and flat.perm is None:
            return OVal(t, "nhwc")
    hint = ""
    if len(shape) == 4 and ov.layout == "nchw":
        hint = " (a channel shuffle, as in ShuffleNet, needs a layer cnnx does not have yet)"
    raise ctx.fail(
        node,
        f"reshaping {_shape_str(ov)} to {('N',) + tuple(shape)} is not "
        "supported: cnnx has no general Reshape layer; it supports "
        "flattening to (N, features) and undoing such a flattening" + hint,
    )


def _reshape(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("allowzero", "shape"))
    ov = _data(ctx, node, ins)
    if "shape" in attrs:  # opset < 5
        target = [int(v) for v in attrs["shape"]]
    else:
        target = [
            int(v) for v in np.asarray(ctx.const(node, _arg(node, 1), "the shape")).reshape(-1)
        ]
    shape = _new_shape(ctx, node, ov, target, bool(int(attrs.get("allowzero", 0))))
    return _reshape_to(ctx, node, ov, shape)


def _squeeze_unsqueeze(ctx, node, ins):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("axes",))
    ov = _data(ctx, node, ins)
    full = [None] + list(ov.onnx_shape)  # with the batch axis
    axes = attrs.get("axes")
    if axes is None and _arg(node, 1):
        axes = ctx.const(node, _arg(node, 1), "axes").reshape(-1).tolist()
    squeeze = node.op_type == "Squeeze"
    if axes is None:
        if not squeeze:
            raise ctx.fail(node, "axes are required")
        if ctx.batch is None or ctx.batch == 1:  # all axes of size 1: the batch's too
            raise ctx.fail(
                node, "Squeeze without axes would also remove a batch axis of size 1; give the axes"
            )
        axes = [a for a in range(1, len(full)) if full[a] == 1]
    if ctx.opset < 11 and min(axes, default=0) < 0:
        raise ctx.fail(node, f"negative axes {list(axes)} need opset 11 or newer")
    rank = len(full) if squeeze else len(full) + len(axes)
    axes = sorted(ctx.axis(node, a, rank, "axes") for a in axes)
    if len(set(axes)) != len(axes) or 0 in axes:
        raise ctx.fail(node, f"axes {axes}: each once, and not the batch axis")
    if squeeze:
        if any(full[a] != 1 for a in axes):
            raise ctx.fail(
                node,
                f"squeezing axes {axes} of {_shape_str(ov)}: only axes of size 1 can be squeezed",
            )
        new = [d for a, d in enumerate(full) if a not in axes]
    else:
        new = list(full)
        for a in axes:
            new.insert(a, 1)
    return _reshape_to(ctx, node, ov, tuple(new[1:]))


CONVERTERS = {
    "Conv": _conv,
    "GlobalAveragePool": _global_pool,
    "GlobalMaxPool": _global_pool,
    "ReduceMean": _global_pool,
    "ReduceMax": _global_pool,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batch_norm,
    "Relu": _activation,
    "LeakyRelu": _activation,
    "Sigmoid": _activation,
    "Tanh": _activation,
    "Softmax": _softmax,
    "Dropout": _dropout,
    "Identity": _identity,
    "Add": _eltwise,
    "Sub": _eltwise,
    "Mul": _eltwise,
    "Div": _eltwise,
    "Sum": _eltwise,
    "Mean": _eltwise,
    "Concat": _concat,
    "Transpose": _transpose,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze_unsqueeze,
    "Unsqueeze": _squeeze_unsqueeze,
}

# issue 19 (layers-a): more activations, PRelu, LRN, LayerNormalization, and
# MaxPool / AveragePool (with dilations and ceil_mode); imported last, as that
# module reads the helpers above
from ._import_ops_a import CONVERTERS_A  # noqa: E402

CONVERTERS.update(CONVERTERS_A)

# the transposed convolution and the layout operators (ConvTranspose, Pad,
# Slice, Resize/Upsample, DepthToSpace/SpaceToDepth, channel and pixel shuffles)
from ._import_layout import register as _register_layout  # noqa: E402

_register_layout(CONVERTERS)
