"""cnnx model -> ONNX graph (:func:`export`), written from the model's op
graph (:mod:`cnnx.graph`): one exporter per op kind, no knowledge of layers.

The graph takes the model's own NHWC float32 batches (batch size free, one
per input) and returns exactly what ``model.predict`` returns (one output
per model output). Inside, image tensors are NCHW, the layout of ONNX's
Conv and pooling operators:

- one ``Transpose`` (NHWC -> NCHW) after the input;
- ``Conv`` with explicit ``pads`` whatever the padding mode ("same" is
  resolved for the model's input size, odd pixel at the bottom/right),
  strides, dilations and group; HWIO kernels become OIHW;
- ``MaxPool`` / ``AveragePool`` (``count_include_pad``), ``GlobalAveragePool``
  followed by ``Flatten``; adaptive pools become a plain pool when every
  output size divides its input size (stride ``n // out``, kernel
  ``n - (out-1)*stride``) and are refused otherwise;
- ``Gemm`` for Dense. A Flatten of an NCHW tensor yields features in
  (c, h, w) order while cnnx flattens NHWC in (h, w, c) order, so the rows
  of the Dense kernel that follows are reordered instead of moving data;
- ``BatchNormalization`` with the running statistics (inference form);
  Dropout disappears (it is the identity at inference);
- ``Add`` / ``Sub`` / ``Mul`` / ``Mean`` for the elementwise joins (and
  Residual), ``Concat`` on the matching NCHW axis;
- ``ConvTranspose`` (kernels (KH, KW, C_out/g, C_in) become (C_in, C_out/g, KH, KW)),
  ``Pad`` (constant / reflect / edge) and ``Slice`` for cropping, ``Resize``
  (nearest: asymmetric + floor; bilinear: half_pixel, PyTorch's
  align_corners=False), ``DepthToSpace`` / ``SpaceToDepth`` (CRD space-to-depth
  as Reshape-Transpose-Reshape), channel shuffle as ShuffleNet's
  Reshape-Transpose-Reshape, ``Transpose`` for Permute and ``Reshape`` (through
  NHWC order) for Reshape;
- issue 19: ``Elu``, ``Selu``, ``HardSigmoid``, ``HardSwish``, ``Clip``,
  ``Softplus``, ``Softsign``, ``LogSoftmax``; GELU as ``Gelu`` from opset 20
  and as its erf / tanh formula before; SiLU as ``x * Sigmoid(x)``; ``PRelu``
  with the slopes laid out for NCHW; ``LRN``; group norm as
  ``InstanceNormalization`` over reshaped groups plus the per-channel affine;
  layer norm over the channels as ``LayerNormalization`` between transposes
  (opset 17+) or its ReduceMean formula; MaxPool ``dilations`` and
  ``ceil_mode``;
- a Transpose back to NHWC for each output that is an image.
"""

import os
import tempfile

import numpy as np

from .._version import __version__
from ..graph import Act, EltwiseKind, OpKind, PoolKind
from ._common import ONNXConversionError, SUPPORTED_EXPORT_LAYERS, require_onnx

__all__ = ["export", "to_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

#: opset written when none is asked for (ONNX Runtime 1.16+ runs it)
DEFAULT_OPSET = 17
#: oldest opset supported (Softmax's per-axis meaning starts at 13)
MIN_OPSET = 13

_NHWC_TO_NCHW = (0, 3, 1, 2)
_NCHW_TO_NHWC = (0, 2, 3, 1)
_NHWC_AXIS_IN_NCHW = {1: 2, 2: 3, 3: 1}


class _T:
    """A tensor of the graph being built.

    ``shape`` is cnnx's (NHWC, no batch) shape. Rank-3 shapes are stored as
    NCHW in the graph. ``chw`` is set for a flattened NCHW image whose
    features are in (c, h, w) order instead of cnnx's (h, w, c): the value
    is ``(C, H, W)`` until a Dense absorbs the permutation.
    """

    __slots__ = ("name", "shape", "chw")

    def __init__(self, name, shape, chw=None):
        self.name = name
        self.shape = tuple(shape)
        self.chw = chw


class _Graph:
    def __init__(self, onnx, opset):
        self.onnx = onnx
        self.helper = onnx.helper
        self.opset = opset
        self.nodes = []
        self.inits = []
        self.names = set()

    def unique(self, base):
        base = str(base).replace(" ", "_") or "t"
        name, i = base, 1
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def const(self, base, arr, dtype=np.float32):
        name = self.unique(base)
        arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def node(self, op, inputs, base, **attrs):
        out = self.unique(base)
        self.nodes.append(
            self.helper.make_node(
                op, list(inputs), [out], name=self.unique(base + "/" + op), **attrs
            )
        )
        return out


def _err(op, msg):
    return ONNXConversionError(f"model: layer {op.name!r} ({op.kind.name}) {msg}")


def _onnx_axis(t, axis):
    """The ONNX axis of per-example (NHWC) axis ``axis`` of tensor t."""
    nd = len(t.shape)
    a = axis % nd if nd else 0
    if nd == 3:
        return _NHWC_AXIS_IN_NCHW[a + 1]
    if t.chw is not None and nd == 1:
        return 1  # over all features: order-independent
    return a + 1


def _mul_sigmoid(g, x, base):
    return g.node("Mul", [x, g.node("Sigmoid", [x], base + "/sigmoid")], base)


def _gelu(g, x, base, tanh):
    """GELU: the opset-20 operator, or its formula before."""
    if g.opset >= 20:
        return g.node("Gelu", [x], base, approximate="tanh" if tanh else "none")
    half = g.const(base + "/half", np.float32(0.5))
    one = g.const(base + "/one", np.float32(1.0))
    if tanh:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = g.node("Mul", [x, g.node("Mul", [x, x], base + "/x2")], base + "/x3")
        k = g.const(base + "/kappa", np.float32(0.044715))
        inner = g.node("Add", [x, g.node("Mul", [x3, k], base + "/kx3")], base + "/inner")
        s = g.const(base + "/sqrt_2_pi", np.float32(np.sqrt(2.0 / np.pi)))
        t = g.node("Tanh", [g.node("Mul", [inner, s], base + "/scaled")], base + "/tanh")
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        r = g.const(base + "/inv_sqrt2", np.float32(1.0 / np.sqrt(2.0)))
        t = g.node("Erf", [g.node("Mul", [x, r], base + "/scaled")], base + "/erf")
    return g.node(
        "Mul",
        [g.node("Mul", [x, half], base + "/half_x"), g.node("Add", [t, one], base + "/one_plus")],
        base,
    )


def _activation(g, t, act, base, alpha=0.01, axis=-1, beta=0.0):
    """Append an activation node; ``axis`` is the per-example (NHWC) softmax axis."""
    if act == Act.none:
        return t
    more = _more_activation(g, t, act, base, alpha, axis, beta)
    if more is not None:
        return _T(more, t.shape, t.chw)
    if act == Act.relu:
        name = g.node("Relu", [t.name], base)
    elif act == Act.leaky_relu:
        name = g.node("LeakyRelu", [t.name], base, alpha=float(alpha))
    elif act == Act.sigmoid:
        name = g.node("Sigmoid", [t.name], base)
    elif act == Act.tanh:
        name = g.node("Tanh", [t.name], base)
    elif act == Act.softmax:
        nd = len(t.shape)
        a = axis % nd if nd else 0
        if nd == 3:
            onnx_axis = _NHWC_AXIS_IN_NCHW[a + 1]
        elif t.chw is not None and nd == 1:
            onnx_axis = 1  # softmax over all features is order-independent
        else:
            onnx_axis = a + 1
        name = g.node("Softmax", [t.name], base, axis=int(onnx_axis))
    else:
        raise ONNXConversionError(f"model: activation {act.name!r} has no ONNX export")
    return _T(name, t.shape, t.chw)


def _more_activation(g, t, act, base, alpha, axis, beta):
    """The activations of issue 19 (None for the others)."""
    x = t.name
    if act == Act.elu:
        return g.node("Elu", [x], base, alpha=float(alpha))
    if act == Act.selu:
        return g.node("Selu", [x], base, alpha=float(alpha), gamma=float(beta))
    if act in (Act.gelu, Act.gelu_tanh):
        return _gelu(g, x, base, act == Act.gelu_tanh)
    if act == Act.silu:
        return _mul_sigmoid(g, x, base)
    if act == Act.hardswish:
        if g.opset >= 14:
            return g.node("HardSwish", [x], base)
        return g.node(
            "Mul", [x, g.node("HardSigmoid", [x], base + "/hs", alpha=1.0 / 6, beta=0.5)], base
        )
    if act == Act.hardsigmoid:
        return g.node("HardSigmoid", [x], base, alpha=float(alpha), beta=float(beta))
    if act == Act.clip:
        lo = g.const(base + "/min", np.float32(alpha))
        hi = g.const(base + "/max", np.float32(beta))
        return g.node("Clip", [x, lo, hi], base)
    if act == Act.softplus:
        return g.node("Softplus", [x], base)
    if act == Act.softsign:
        return g.node("Softsign", [x], base)
    if act == Act.log_softmax:
        return g.node("LogSoftmax", [x], base, axis=int(_onnx_axis(t, axis)))
    return None


def _materialise(g, t, base):
    """Put a (c, h, w)-ordered flat tensor back into cnnx's (h, w, c) order."""
    if t.chw is None:
        return t
    c, h, w = t.chw
    shape = g.const(base + "/chw_shape", [0, c, h, w], np.int64)
    x = g.node("Reshape", [t.name, shape], base + "/unflatten")
    x = g.node("Transpose", [x], base + "/to_hwc", perm=list(_NCHW_TO_NHWC))
    x = g.node("Flatten", [x], base + "/flatten_hwc", axis=1)
    return _T(x, t.shape)


def _need_image(op, t):
    if len(t.shape) != 3:
        raise _err(op, f"expects an image (n_H, n_W, n_C), got shape {t.shape}")


def _conv(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    _need_image(op, t)
    a = op.attrs
    _h, _w, c, kh, kw, cout, sh, sw, dh, dw, pt, pb, pl, pr, groups = a["geometry"]
    # HWIO (a depthwise kernel kept as (KH, KW, C, multiplier) is the same memory)
    kernel = np.asarray(a["kernel"].array, np.float32).reshape(kh, kw, c // groups, cout)
    ins = [t.name, g.const(op.name + "/W", kernel.transpose(3, 2, 0, 1))]  # OIHW
    if a["bias"] is not None:
        ins.append(g.const(op.name + "/B", a["bias"].array))
    y = g.node(
        "Conv",
        ins,
        op.name,
        kernel_shape=[kh, kw],
        strides=[sh, sw],
        dilations=[dh, dw],
        pads=[pt, pl, pb, pr],
        group=int(groups),
    )
    return _activation(
        g, _T(y, op.output.shape), a["act"], op.name, a["alpha"], beta=a.get("beta", 0.0)
    )


def _pool(g, op, ts):
    t, a = ts[0], op.attrs
    _need_image(op, t)
    kind = a["pool_kind"]
    if kind == PoolKind.global_avg:
        y = g.node("GlobalAveragePool", [t.name], op.name)
        return _T(g.node("Flatten", [y], op.name, axis=1), op.output.shape)
    if kind in (PoolKind.adaptive_avg, PoolKind.adaptive_max):
        h, w, _c = t.shape
        kernel, strides = [], []
        for n, o, axis in zip((h, w), a["output_hw"], ("n_H", "n_W")):
            if n % o:
                raise _err(
                    op,
                    f"cannot be exported exactly: ONNX has no adaptive pooling, and "
                    f"{axis} = {n} is not a multiple of the output size {o}, so its "
                    f"windows [floor(i*{n}/{o}), ceil((i+1)*{n}/{o})) differ in size "
                    f"or stride (use an input size divisible by the output size, or "
                    f"a fixed MaxPool2D/AvgPool2D)",
                )
            strides.append(n // o)
            kernel.append(n - (o - 1) * (n // o))
        window = (*kernel, *strides, 0, 0, 0, 0)
        is_max = kind == PoolKind.adaptive_max
        count_include_pad = False
    else:
        window, is_max = a["window"], kind == PoolKind.max
        count_include_pad = a["count_include_pad"]
    kh, kw, sh, sw, pt, pb, pl, pr = window
    extra = {} if is_max else {"count_include_pad": int(count_include_pad)}
    dil = tuple(a.get("dilation", (1, 1)))
    if dil != (1, 1):
        extra["dilations"] = [int(d) for d in dil]
    if a.get("ceil_mode"):
        pb, pr = _ceil_mode_pads(
            op,
            t.shape[:2],
            op.output.shape[:2],
            (kh, kw),
            (sh, sw),
            ((pt, pb), (pl, pr)),
            dil,
            is_max,
            count_include_pad,
        )
        if pb is None:
            extra["ceil_mode"] = 1
            pb, pr = window[5], window[7]
    y = g.node(
        "MaxPool" if is_max else "AveragePool",
        [t.name],
        op.name,
        kernel_shape=[int(kh), int(kw)],
        strides=[int(sh), int(sw)],
        pads=[int(pt), int(pl), int(pb), int(pr)],
        **extra,
    )
    return _T(y, op.output.shape)


def _ceil_mode_pads(op, in_hw, out_hw, kernel, strides, pads, dil, is_max, count_include_pad):
    """(pad_bottom, pad_right) of a floor-mode pool giving ceil mode's windows, or
    (None, None) to write ceil_mode=1 itself.

    ONNX's shape inference rounds up without PyTorch's rule (ONNX Runtime and
    cnnx follow it) that drops a last window starting past the input and its
    front padding, so where that rule drops one the graph would not pass the
    checker. Extra end padding in floor mode gives the same windows there for
    max pooling and for averages that do not count the padding."""
    drops = False
    for n, o, k, s, (p0, p1), d in zip(in_hw, out_hw, kernel, strides, pads, dil):
        span = (k - 1) * d + 1
        drops |= -(-(n + p0 + p1 - span) // s) + 1 != o
    if not drops:
        return None, None
    if not is_max and count_include_pad:
        raise _err(
            op,
            "cannot be exported exactly: in ceil mode its last window starts past "
            "the input, a window ONNX's shape inference keeps and PyTorch / ONNX "
            "Runtime drop; with count_include_pad the divisor of an equivalent "
            "padded floor-mode pool differs",
        )
    ends = []
    for n, o, k, s, (p0, p1), d in zip(in_hw, out_hw, kernel, strides, pads, dil):
        span = (k - 1) * d + 1
        end = max(p1, (o - 1) * s + span - n - p0)
        if end >= k:
            raise _err(
                op,
                f"cannot be exported: its ceil-mode windows need {end} pixels of end "
                f"padding in floor mode, and ONNX Runtime allows less than the "
                f"window ({k})",
            )
        ends.append(end)
    return ends[0], ends[1]


def _dense(g, op, ts):
    t, a = ts[0], op.attrs
    if len(t.shape) != 1:
        raise _err(op, f"expects flat features (n_in,), got shape {t.shape}")
    kernel = np.asarray(a["kernel"].array, np.float32)  # (n_in, n_out), rows in (h, w, c)
    if t.chw is not None:
        c, h, w = t.chw
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
    ins = [t.name, g.const(op.name + "/W", kernel)]
    if a["bias"] is not None:
        ins.append(g.const(op.name + "/B", a["bias"].array))
    y = g.node("Gemm", ins, op.name)
    return _activation(
        g, _T(y, op.output.shape), a["act"], op.name, a["alpha"], beta=a.get("beta", 0.0)
    )


def _batch_norm(g, op, ts):
    t, a = ts[0], op.attrs
    c = op.output.shape[-1]
    gamma = a["gamma"].array if a["gamma"] is not None else np.ones(c, np.float32)
    beta = a["beta"].array if a["beta"] is not None else np.zeros(c, np.float32)
    arrays = [
        np.asarray(x, np.float32)
        for x in (gamma, beta, a["moving_mean"].array, a["moving_var"].array)
    ]
    if len(t.shape) == 1 and t.chw is not None:  # per-feature statistics, features in (c,h,w)
        cc, h, w = t.chw
        arrays = [x.reshape(h, w, cc).transpose(2, 0, 1).ravel() for x in arrays]
    elif len(t.shape) not in (1, 3):
        raise _err(op, f"is exported for images or flat features, got shape {t.shape}")
    names = [g.const(f"{op.name}/{k}", x) for k, x in zip(("scale", "B", "mean", "var"), arrays)]
    y = g.node(
        "BatchNormalization",
        [t.name] + names,
        op.name,
        epsilon=a["epsilon"],
        momentum=1.0 - a["momentum"],
    )
    return _T(y, t.shape, t.chw)


def _activation_op(g, op, ts):
    a = op.attrs
    return _activation(g, ts[0], a["act"], op.name, a["alpha"], a["axis"], a.get("beta", 0.0))


_ELTWISE = {
    EltwiseKind.add: "Sum",
    EltwiseKind.sub: "Sub",
    EltwiseKind.mul: "Mul",
    EltwiseKind.avg: "Mean",
}


def _eltwise(g, op, ts):
    ts = [_materialise(g, t, op.name) for t in ts]
    kind = op.attrs["eltwise"]
    names = [t.name for t in ts]
    if kind == EltwiseKind.mul:  # Mul is binary: a chain
        y = names[0]
        for other in names[1:]:
            y = g.node("Mul", [y, other], op.name)
    elif kind == EltwiseKind.add and len(names) == 2:
        y = g.node("Add", names, op.name)
    else:
        y = g.node(_ELTWISE[kind], names, op.name)
    return _activation(
        g,
        _T(y, op.output.shape),
        op.attrs["act"],
        op.name,
        op.attrs["alpha"],
        beta=op.attrs.get("beta", 0.0),
    )


def _concat(g, op, ts):
    ts = [_materialise(g, t, op.name) for t in ts]
    axis = op.attrs["axis"]
    nd = len(op.output.shape)
    onnx_axis = _NHWC_AXIS_IN_NCHW[axis + 1] if nd == 3 else axis + 1
    y = g.node("Concat", [t.name for t in ts], op.name, axis=int(onnx_axis))
    return _T(y, op.output.shape)


def _to_cnnx_order(g, t, base):
    """An image stored NCHW -> the same tensor in cnnx's NHWC order (other ranks as they are)."""
    t = _materialise(g, t, base)
    if len(t.shape) == 3:
        return g.node("Transpose", [t.name], base + "/to_nhwc", perm=list(_NCHW_TO_NHWC))
    return t.name


def _from_cnnx_order(g, name, shape, base):
    """A tensor in cnnx's order -> how the graph stores it (rank 3: NCHW)."""
    if len(shape) == 3:
        return _T(g.node("Transpose", [name], base + "/to_nchw", perm=list(_NHWC_TO_NCHW)), shape)
    return _T(name, shape)


def _reshape(g, op, ts):
    t = ts[0]
    out = op.output.shape
    if len(out) == 1 and len(t.shape) == 3:  # Flatten: features in (c, h, w) until a Dense
        h, w, c = t.shape
        y = g.node("Flatten", [t.name], op.name, axis=1)
        return _T(y, out, None if h * w == 1 else (c, h, w))
    if len(out) == 1 and len(t.shape) == 1:
        return t
    x = _to_cnnx_order(g, t, op.name)
    shape = g.const(op.name + "/shape", [0, *out], np.int64)  # 0: the batch size as it is
    return _from_cnnx_order(g, g.node("Reshape", [x, shape], op.name), out, op.name)


def _conv_transpose(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    _need_image(op, t)
    a = op.attrs
    _h, _w, _c, kh, kw, _cout, sh, sw, dh, dw, pt, pb, pl, pr, oph, opw, groups = a["geometry"]
    kernel = np.asarray(a["kernel"].array, np.float32)  # (KH, KW, C_out/g, C_in)
    ins = [t.name, g.const(op.name + "/W", kernel.transpose(3, 2, 0, 1))]  # (C_in, C_out/g, KH, KW)
    if a["bias"] is not None:
        ins.append(g.const(op.name + "/B", a["bias"].array))
    y = g.node(
        "ConvTranspose",
        ins,
        op.name,
        kernel_shape=[kh, kw],
        strides=[sh, sw],
        dilations=[dh, dw],
        pads=[pt, pl, pb, pr],
        output_padding=[oph, opw],
        group=int(groups),
    )
    return _activation(g, _T(y, op.output.shape), a["act"], op.name, a["alpha"])


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge"}


def _pad2d(g, op, ts):
    t, a = ts[0], op.attrs
    _need_image(op, t)
    h, w, _c = t.shape
    pads = a["pads"]
    crop = [max(-p, 0) for p in pads]  # (top, bottom, left, right): negative pads crop
    name = t.name
    if any(crop):
        starts = g.const(op.name + "/starts", [crop[0], crop[2]], np.int64)
        ends = g.const(op.name + "/ends", [h - crop[1], w - crop[3]], np.int64)
        axes = g.const(op.name + "/axes", [2, 3], np.int64)
        name = g.node("Slice", [name, starts, ends, axes], op.name + "/crop")
    grow = [max(p, 0) for p in pads]
    if any(grow):
        t_, b_, l_, r_ = grow
        onnx_pads = g.const(op.name + "/pads", [0, 0, t_, l_, 0, 0, b_, r_], np.int64)
        mode = a["mode"].name
        ins = [name, onnx_pads]
        if mode == "constant":
            ins.append(g.const(op.name + "/value", np.float32(a["value"])))
        name = g.node("Pad", ins, op.name, mode=_PAD_MODES[mode])
    if name == t.name:  # nothing to do: an Identity keeps one node per op
        name = g.node("Identity", [name], op.name)
    return _T(name, op.output.shape)


def _upsample2d(g, op, ts):
    t, a = ts[0], op.attrs
    _need_image(op, t)
    fh, fw = a["factors"]
    scales = g.const(op.name + "/scales", [1.0, 1.0, float(fh), float(fw)])
    if a["mode"].name == "nearest":
        attrs = dict(
            mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"
        )
    else:  # PyTorch's align_corners=False
        attrs = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    y = g.node("Resize", [t.name, "", scales], op.name, **attrs)
    return _T(y, op.output.shape)


def _depth_to_space(g, op, ts):
    t, a = ts[0], op.attrs
    _need_image(op, t)
    y = g.node(
        "DepthToSpace",
        [t.name],
        op.name,
        blocksize=int(a["block_size"]),
        mode=a["order"].name.upper(),
    )
    return _T(y, op.output.shape)


def _space_to_depth(g, op, ts):
    t, a = ts[0], op.attrs
    _need_image(op, t)
    b = int(a["block_size"])
    if a["order"].name == "dcr":  # ONNX's SpaceToDepth
        return _T(g.node("SpaceToDepth", [t.name], op.name, blocksize=b), op.output.shape)
    h, w, c = t.shape  # CRD: output channel c*b*b + i*b + j
    s6 = g.const(op.name + "/shape6", [0, c, h // b, b, w // b, b], np.int64)
    x = g.node("Reshape", [t.name, s6], op.name + "/blocks")
    x = g.node("Transpose", [x], op.name + "/crd", perm=[0, 1, 3, 5, 2, 4])
    s4 = g.const(op.name + "/shape4", [0, c * b * b, h // b, w // b], np.int64)
    return _T(g.node("Reshape", [x, s4], op.name), op.output.shape)


def _channel_shuffle(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    groups = int(op.attrs["groups"])
    shape = t.shape
    c = shape[-1]
    rest = [shape[0], shape[1]] if len(shape) == 3 else list(shape[:-1])
    channel_first = len(shape) == 3  # NCHW: channels right after the batch
    if channel_first:
        split, perm, joined = [0, groups, c // groups, *rest], [0, 2, 1, 3, 4], [0, c, *rest]
    else:
        n = len(rest)
        split, joined = [0, *rest, groups, c // groups], [0, *rest, c]
        perm = list(range(n + 1)) + [n + 2, n + 1]
    x = g.node(
        "Reshape", [t.name, g.const(op.name + "/split", split, np.int64)], op.name + "/split"
    )
    x = g.node("Transpose", [x], op.name + "/swap", perm=perm)
    y = g.node("Reshape", [x, g.const(op.name + "/join", joined, np.int64)], op.name)
    return _T(y, op.output.shape)


def _transpose(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    perm = op.attrs["perm"]
    nd = len(t.shape)
    p1 = list(_NCHW_TO_NHWC) if nd == 3 else list(range(nd + 1))  # stored -> cnnx order
    q = [0] + [p + 1 for p in perm]  # the permutation
    p2 = list(_NHWC_TO_NCHW) if len(op.output.shape) == 3 else list(range(nd + 1))
    total = [p1[q[p2[i]]] for i in range(nd + 1)]
    return _T(g.node("Transpose", [t.name], op.name, perm=total), op.output.shape)


def _identity(g, op, ts):
    return ts[0]


# ---- issue 19 (layers-a) --------------------------------------------------------


def _nchw_param(t, arr):
    """A per-example-shaped (NHWC) parameter broadcastable against tensor t in
    its ONNX layout: (c, 1, 1) per channel of an image, (c, h, w) per value."""
    arr = np.asarray(arr, np.float32)
    nd = len(t.shape)
    if nd == 3:
        if arr.ndim == 1:
            return arr.reshape(-1, 1, 1) if arr.size > 1 else arr
        if arr.ndim == 2:  # (w, c)
            return arr.transpose(1, 0)[:, None, :]
        return arr.transpose(2, 0, 1)
    return arr


def _prelu(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    slope = np.asarray(op.attrs["slope"].array, np.float32)
    shape = slope.shape
    # slopes repeat along the flattened values: they cover trailing axes of x
    nd = len(t.shape)
    full = slope.reshape(t.shape[nd - len(shape) :]) if slope.size > 1 else slope.reshape(1)
    y = g.node("PRelu", [t.name, g.const(op.name + "/slope", _nchw_param(t, full))], op.name)
    return _T(y, t.shape)


def _lrn(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    a = op.attrs
    if len(t.shape) != 3:
        raise _err(op, f"is exported for images (n_H, n_W, n_C), got shape {t.shape}")
    y = g.node(
        "LRN",
        [t.name],
        op.name,
        size=int(a["size"]),
        alpha=float(a["alpha"]),
        beta=float(a["beta"]),
        bias=float(a["bias"]),
    )
    return _T(y, t.shape)


def _affine_tail(g, op, t, y):
    """y * gamma + beta per channel (the ONNX channel axis of t)."""
    a = op.attrs
    c = op.output.shape[-1]
    shape = (c, 1, 1) if len(t.shape) == 3 else (c,)
    if a["gamma"] is not None:
        y = g.node(
            "Mul",
            [
                y,
                g.const(
                    op.name + "/gamma", np.asarray(a["gamma"].array, np.float32).reshape(shape)
                ),
            ],
            op.name + "/scale",
        )
    if a["beta"] is not None:
        y = g.node(
            "Add",
            [y, g.const(op.name + "/beta", np.asarray(a["beta"].array, np.float32).reshape(shape))],
            op.name + "/shift",
        )
    return y


def _group_norm(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    a = op.attrs
    if len(t.shape) not in (1, 3):
        raise _err(op, f"is exported for images or flat features, got shape {t.shape}")
    groups = a["groups"]
    # (N, C, ...) -> (N, G, rest): instance norm over each group, then back
    grouped = g.node(
        "Reshape",
        [t.name, g.const(op.name + "/groups_shape", [0, groups, -1], np.int64)],
        op.name + "/grouped",
    )
    ones = g.const(op.name + "/ones", np.ones(groups, np.float32))
    zeros = g.const(op.name + "/zeros", np.zeros(groups, np.float32))
    normed = g.node(
        "InstanceNormalization",
        [grouped, ones, zeros],
        op.name + "/normalise",
        epsilon=float(a["epsilon"]),
    )
    shape = g.node("Shape", [t.name], op.name + "/shape")
    y = g.node("Reshape", [normed, shape], op.name + "/ungrouped")
    return _T(_affine_tail(g, op, t, y), t.shape)


def _layer_norm(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    a = op.attrs
    eps = float(a["epsilon"])
    c = op.output.shape[-1]
    if len(t.shape) == 3:
        x = g.node("Transpose", [t.name], op.name + "/to_nhwc", perm=list(_NCHW_TO_NHWC))
    else:
        x = t.name
    if g.opset >= 17:
        gamma = (
            np.asarray(a["gamma"].array, np.float32)
            if a["gamma"] is not None
            else np.ones(c, np.float32)
        )
        ins = [x, g.const(op.name + "/gamma", gamma)]
        if a["beta"] is not None:
            ins.append(g.const(op.name + "/beta", np.asarray(a["beta"].array, np.float32)))
        y = g.node("LayerNormalization", ins, op.name, axis=-1, epsilon=eps)
    else:  # (x - mean) / sqrt(var + eps) over the last axis, then the affine
        mean = g.node("ReduceMean", [x], op.name + "/mean", axes=[-1], keepdims=1)
        d = g.node("Sub", [x, mean], op.name + "/centred")
        var = g.node(
            "ReduceMean",
            [g.node("Mul", [d, d], op.name + "/sq")],
            op.name + "/var",
            axes=[-1],
            keepdims=1,
        )
        std = g.node(
            "Sqrt",
            [
                g.node(
                    "Add", [var, g.const(op.name + "/eps", np.float32(eps))], op.name + "/var_eps"
                )
            ],
            op.name + "/std",
        )
        y = g.node("Div", [d, std], op.name + "/normalised")
        if a["gamma"] is not None:
            y = g.node(
                "Mul",
                [y, g.const(op.name + "/gamma", np.asarray(a["gamma"].array, np.float32))],
                op.name + "/scale",
            )
        if a["beta"] is not None:
            y = g.node(
                "Add",
                [y, g.const(op.name + "/beta", np.asarray(a["beta"].array, np.float32))],
                op.name + "/shift",
            )
    if len(t.shape) == 3:
        y = g.node("Transpose", [y], op.name + "/to_nchw", perm=list(_NHWC_TO_NCHW))
    return _T(y, t.shape)


def _python(g, op, ts):
    layer = op.attrs["python_layer"]
    raise ONNXConversionError(
        f"model: layer {layer.name!r} ({type(layer).__name__}) has no lowering into the op graph, "
        f"so no ONNX export (exported layers: {', '.join(SUPPORTED_EXPORT_LAYERS)})"
    )


def _channel_const(g, op, t, name, values):
    """Per-channel constants of a rescale / normalize op, shaped to broadcast
    against ``t`` in the exported layout (images NCHW)."""
    a = op.attrs
    values = np.asarray(values, np.float32).reshape(-1)
    if a["channels"] == 1:
        return g.const(f"{op.name}/{name}", values.reshape(()))
    shape = t.shape  # per example, NHWC order
    axis = next(
        k
        for k in reversed(range(len(shape)))
        if shape[k] == a["channels"] and int(np.prod(shape[k + 1 :], dtype=np.int64)) == a["inner"]
    )
    if len(shape) == 3:  # NCHW: (C, 1, 1) along channels, (H, 1) along rows, (W,) along columns
        dims = {2: [1, 1], 0: [1], 1: []}[axis]
    else:
        dims = [1] * (len(shape) - 1 - axis)
    return g.const(f"{op.name}/{name}", values.reshape([values.size] + dims))


def _rescale(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    a = op.attrs
    y = g.node("Mul", [t.name, _channel_const(g, op, t, "scale", a["scale"])], op.name)
    y = g.node("Add", [y, _channel_const(g, op, t, "offset", a["offset"])], op.name)
    return _T(y, t.shape)


def _normalize(g, op, ts):
    t = _materialise(g, ts[0], op.name)
    a = op.attrs
    var = np.asarray(a["variance"].array, np.float32)
    denom = np.maximum(np.sqrt(var), np.float32(a["epsilon"]))
    y = g.node("Sub", [t.name, _channel_const(g, op, t, "mean", a["mean"].array)], op.name)
    y = g.node("Div", [y, _channel_const(g, op, t, "denominator", denom)], op.name)
    return _T(y, t.shape)


def _augment(g, op, ts):
    """Random augmentations are the identity at inference (resolved before
    export); a crop is Keras's centred window of the output's aspect ratio,
    resized: Slice, then a bilinear Resize with half-pixel centres."""
    from .. import _core

    t, a = ts[0], op.attrs
    if a["identity_at_inference"]:
        return t
    _need_image(op, t)
    spec = a["spec"]
    tr = _core.augment_transform(spec, 0, 0, False)
    top, left = tr["top"], tr["left"]
    ch, cw = round(tr["matrix"][4] * spec.oh), round(tr["matrix"][0] * spec.ow)
    starts = g.const(op.name + "/starts", [top, left], np.int64)
    ends = g.const(op.name + "/ends", [top + ch, left + cw], np.int64)
    axes = g.const(op.name + "/axes", [2, 3], np.int64)
    x = g.node("Slice", [t.name, starts, ends, axes], op.name + "/window")
    shape = g.node("Shape", [x], op.name + "/shape")
    nc = g.node(
        "Slice",
        [
            shape,
            g.const(op.name + "/zero", [0], np.int64),
            g.const(op.name + "/two", [2], np.int64),
        ],
        op.name + "/nc",
    )
    sizes = g.node(
        "Concat",
        [nc, g.const(op.name + "/hw", [spec.oh, spec.ow], np.int64)],
        op.name + "/sizes",
        axis=0,
    )
    y = g.node(
        "Resize",
        [x, "", "", sizes],
        op.name,
        mode="linear",
        coordinate_transformation_mode="half_pixel",
    )
    return _T(y, op.output.shape)


_EXPORTERS = {
    OpKind.conv2d: _conv,
    OpKind.dense: _dense,
    OpKind.pool: _pool,
    OpKind.batch_norm: _batch_norm,
    OpKind.activation: _activation_op,
    OpKind.eltwise: _eltwise,
    OpKind.concat: _concat,
    OpKind.reshape: _reshape,
    OpKind.dropout: _identity,
    OpKind.python: _python,
    OpKind.conv_transpose2d: _conv_transpose,
    OpKind.pad2d: _pad2d,
    OpKind.upsample2d: _upsample2d,
    OpKind.depth_to_space: _depth_to_space,
    OpKind.space_to_depth: _space_to_depth,
    OpKind.channel_shuffle: _channel_shuffle,
    OpKind.transpose: _transpose,
    OpKind.prelu: _prelu,
    OpKind.lrn: _lrn,
    OpKind.group_norm: _group_norm,
    OpKind.layer_norm: _layer_norm,
}
_EXPORTERS.update(
    {OpKind.rescale: _rescale, OpKind.normalize: _normalize, OpKind.augment: _augment}
)


def _check_opset(onnx, opset):
    latest = int(onnx.defs.onnx_opset_version())
    if opset is None:
        return min(DEFAULT_OPSET, latest)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset: expected an int, got {type(opset).__name__}")
    if not MIN_OPSET <= int(opset) <= latest:
        raise ValueError(
            f"opset: expected {MIN_OPSET}..{latest} (the installed onnx "
            f"{onnx.__version__} knows up to {latest}), got {opset}"
        )
    return int(opset)


def _io_names(base, n, given, what):
    if isinstance(given, (list, tuple)):
        if len(given) != n or not all(isinstance(v, str) and v for v in given):
            raise TypeError(f"{what}: expected {n} non-empty names, got {given!r}")
        return list(given)
    if not isinstance(given, str) or not given:
        raise TypeError(f"{what}: expected a non-empty str, got {given!r}")
    return [given] if n == 1 else [f"{given}_{i}" for i in range(n)]


def to_onnx(model, opset=None, input_name="input", output_name="output"):
    """The ONNX ``ModelProto`` of a built cnnx model (see :func:`export`)."""
    from ..layers.base import Layer
    from ..quant import QuantizedModel

    if isinstance(model, QuantizedModel):  # a QDQ graph
        from ._export_int8 import to_onnx_qdq

        return to_onnx_qdq(model, opset, input_name, output_name)
    onnx = require_onnx()
    if not isinstance(model, Layer) or not hasattr(model, "to_graph"):
        raise TypeError(
            f"model: expected a cnnx model (Model or Sequential), got {type(model).__name__}"
        )
    if not model.built:
        raise ValueError("model: not built yet (give input_shape= or call build/fit first)")
    opset = _check_opset(onnx, opset)
    graph = model.to_graph()
    in_names = _io_names("input", len(graph.inputs), input_name, "input_name")
    out_names = _io_names("output", len(graph.outputs), output_name, "output_name")
    if len(set(in_names + out_names)) != len(in_names) + len(out_names):
        raise ValueError("output_name: input and output names must all differ")
    for v in graph.inputs:
        if len(v.shape) not in (1, 3):
            raise ValueError(
                f"model: input shape {v.shape} is not exported (images (n_H, n_W, "
                "n_C) or flat features (n,))"
            )
    helper = onnx.helper
    g = _Graph(onnx, opset)
    g.names.update(in_names + out_names)
    tensors = {}
    for v, name in zip(graph.inputs, in_names):
        if len(v.shape) == 3:
            tensors[v.id] = _T(
                g.node("Transpose", [name], name + "/to_nchw", perm=list(_NHWC_TO_NCHW)), v.shape
            )
        else:
            tensors[v.id] = _T(name, v.shape)
    for op in graph.ops:
        tensors[op.output.id] = _EXPORTERS[op.kind](g, op, [tensors[v.id] for v in op.inputs])
    f32 = onnx.TensorProto.FLOAT
    outputs = []
    renamed = {}  # a tensor renamed to an output name (possible once)
    for v, name in zip(graph.outputs, out_names):
        t = _materialise(g, tensors[v.id], name)
        if len(t.shape) == 3:
            t = _T(
                g.node("Transpose", [t.name], name + "/to_nhwc", perm=list(_NCHW_TO_NHWC)), t.shape
            )
        producer = next((n for n in g.nodes if t.name in n.output), None)
        if (
            producer is not None
            and t.name not in renamed
            and not any(t.name in n.input for n in g.nodes)
        ):
            producer.output[list(producer.output).index(t.name)] = name
            renamed[t.name] = name
        else:  # an input, a tensor other nodes read, or one already an output
            g.nodes.append(
                helper.make_node(
                    "Identity", [renamed.get(t.name, t.name)], [name], name=g.unique(name)
                )
            )
        outputs.append(helper.make_tensor_value_info(name, f32, ["N", *v.shape]))
    inputs = [
        helper.make_tensor_value_info(name, f32, ["N", *v.shape])
        for v, name in zip(graph.inputs, in_names)
    ]
    onnx_graph = helper.make_graph(
        g.nodes, model.name or "cnnx", inputs, outputs, initializer=g.inits
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        onnx_graph,
        opset_imports=opsets,
        producer_name="cnnx",
        producer_version=__version__,
        doc_string="Exported by cnnx: inputs NHWC float32, as model.predict",
    )
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, path, opset=None, input_name="input", output_name="output"):
    """Write ``model`` as an ONNX file that ONNX Runtime runs like ``model.predict``.

    Args:
        model: a built cnnx ``Model`` or ``Sequential`` whose layers all
            have an ONNX form (:data:`~cnnx.onnx.SUPPORTED_EXPORT_LAYERS`).
        path: the ``.onnx`` file to write (atomically: a temporary file in
            the same directory, then a rename).
        opset: ONNX opset (default :data:`DEFAULT_OPSET` = 17; 13 or newer).
        input_name, output_name: names of the graph's input and output.

    The graph's inputs are the NHWC float32 batches ``model.predict`` takes
    (any batch size) and its outputs what ``predict`` returns. A model with
    several inputs or outputs gets names ``input_0``, ``input_1``... (or pass
    lists of names).
    ``onnx.checker`` validates the graph before it is written. Returns
    ``path``.

    Raises :class:`~cnnx.onnx.ONNXConversionError` (a ValueError) naming the
    layer for anything ONNX cannot express exactly, e.g. an adaptive pool
    whose output size does not divide its input size.

    A quantized model (:func:`cnnx.quantize`) is written as a QDQ graph
    (:mod:`cnnx.onnx._export_int8`), which ONNX Runtime runs with its int8
    kernels.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    path = os.fspath(path)
    proto = to_onnx(model, opset, input_name, output_name)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"path: directory {directory!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".cnnx-onnx-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
