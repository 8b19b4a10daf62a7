"""cnnx model -> ONNX graph (:func:`export`).

The graph takes the model's own NHWC float32 batch (batch size free) and
returns exactly what ``model.predict`` returns. Inside, image tensors are
NCHW, the layout of ONNX's Conv and pooling operators:

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
- ``Add`` (+ activation) for Residual, with the shortcut's layers (the 1x1
  projection) on the second branch;
- a Transpose back to NHWC if the output is an image, and the softmax that
  ``predict`` applies to a logits model compiled with cross-entropy.
"""
import os
import tempfile

import numpy as np

from .._version import __version__
from ..functional._shapes import resolve_padding
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
        self.nodes.append(self.helper.make_node(op, list(inputs), [out],
                                                name=self.unique(base + "/" + op), **attrs))
        return out


def _err(layer, msg):
    return ONNXConversionError(f"model: layer {layer.name!r} ({type(layer).__name__}) {msg}")


def _act_alpha(layer):
    # LeakyReLU slope of a fused activation (Conv2D/Dense/Residual use the default 0.01)
    return float(getattr(getattr(layer, "_act", None), "alpha", 0.01))


def _activation(g, t, kind, base, alpha=0.01, axis=None):
    """Append an activation node; ``axis`` is the NHWC (cnnx) softmax axis."""
    if kind is None or kind == "linear":
        return t
    if kind == "relu":
        name = g.node("Relu", [t.name], base)
    elif kind == "leaky_relu":
        name = g.node("LeakyRelu", [t.name], base, alpha=float(alpha))
    elif kind == "sigmoid":
        name = g.node("Sigmoid", [t.name], base)
    elif kind == "tanh":
        name = g.node("Tanh", [t.name], base)
    elif kind == "softmax":
        nd = len(t.shape) + 1
        a = (nd - 1) if axis is None else axis % nd
        if nd == 4:
            a = _NHWC_AXIS_IN_NCHW[a]
        elif nd != 2:
            raise ONNXConversionError(f"model: softmax over a {nd}-D tensor is not exported")
        name = g.node("Softmax", [t.name], base, axis=int(a))
    else:
        raise ONNXConversionError(f"model: activation {kind!r} has no ONNX export")
    return _T(name, t.shape, t.chw)


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


def _pads(layer, pads):
    (t, b), (l, r) = pads
    return [int(t), int(l), int(b), int(r)]


def _need_image(layer, t):
    if len(t.shape) != 3:
        raise _err(layer, f"expects an image (n_H, n_W, n_C), got shape {t.shape}")


def _conv(g, layer, t):
    from ..layers.conv import Conv2D  # noqa: F401  (documentation of the dispatch)

    _need_image(layer, t)
    h, w, _c = t.shape
    pads = resolve_padding(layer.padding, (h, w), layer.kernel_size, layer.strides,
                           layer.dilation_rate)
    kernel = np.asarray(layer.params["kernel"], np.float32)  # HWIO
    ins = [t.name, g.const(layer.name + "/W", kernel.transpose(3, 2, 0, 1))]  # OIHW
    if layer.use_bias:
        ins.append(g.const(layer.name + "/B", layer.params["bias"]))
    y = g.node("Conv", ins, layer.name, kernel_shape=list(layer.kernel_size),
               strides=list(layer.strides), dilations=list(layer.dilation_rate),
               pads=_pads(layer, pads), group=int(layer.groups))
    out = _T(y, layer.output_shape)
    return _activation(g, out, layer.activation, layer.name, _act_alpha(layer), axis=-1)


def _pool(g, layer, t, op, kernel, strides, pads, **extra):
    y = g.node(op, [t.name], layer.name, kernel_shape=[int(k) for k in kernel],
               strides=[int(s) for s in strides], pads=_pads(layer, pads), **extra)
    return _T(y, layer.output_shape)


def _adaptive(g, layer, t, op):
    _need_image(layer, t)
    h, w, _c = t.shape
    kernel, strides = [], []
    for n, o, axis in zip((h, w), layer.output_size, ("n_H", "n_W")):
        if n % o:
            raise _err(layer, f"cannot be exported exactly: ONNX has no adaptive pooling, and "
                              f"{axis} = {n} is not a multiple of the output size {o}, so its "
                              f"windows [floor(i*{n}/{o}), ceil((i+1)*{n}/{o})) differ in size "
                              f"or stride (use an input size divisible by the output size, or "
                              f"a fixed MaxPool2D/AvgPool2D)")
        s = n // o
        strides.append(s)
        kernel.append(n - (o - 1) * s)
    extra = {"count_include_pad": 0} if op == "AveragePool" else {}
    return _pool(g, layer, t, op, kernel, strides, ((0, 0), (0, 0)), **extra)


def _dense(g, layer, t):
    if len(t.shape) != 1:
        raise _err(layer, f"expects flat features (n_in,), got shape {t.shape}")
    kernel = np.asarray(layer.params["kernel"], np.float32)  # (n_in, n_out), rows in (h, w, c)
    if t.chw is not None:
        c, h, w = t.chw
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
    ins = [t.name, g.const(layer.name + "/W", kernel)]
    if layer.use_bias:
        ins.append(g.const(layer.name + "/B", layer.params["bias"]))
    y = g.node("Gemm", ins, layer.name)
    return _activation(g, _T(y, layer.output_shape), layer.activation, layer.name,
                       _act_alpha(layer), axis=-1)


def _batch_norm(g, layer, t):
    c = layer.output_shape[-1]
    gamma = layer.params["gamma"] if layer.scale else np.ones(c, np.float32)
    beta = layer.params["beta"] if layer.center else np.zeros(c, np.float32)
    mean = layer.buffers["moving_mean"]
    var = layer.buffers["moving_var"]
    arrays = [np.asarray(a, np.float32) for a in (gamma, beta, mean, var)]
    if len(t.shape) == 1 and t.chw is not None:  # per-feature statistics, features in (c,h,w)
        cc, h, w = t.chw
        arrays = [a.reshape(h, w, cc).transpose(2, 0, 1).ravel() for a in arrays]
    elif len(t.shape) not in (1, 3):
        raise _err(layer, f"is exported for images or flat features, got shape {t.shape}")
    names = [g.const(f"{layer.name}/{k}", a)
             for k, a in zip(("scale", "B", "mean", "var"), arrays)]
    y = g.node("BatchNormalization", [t.name] + names, layer.name,
               epsilon=float(layer.epsilon), momentum=float(layer.momentum))
    return _T(y, t.shape, t.chw)


def _flatten(g, layer, t):
    if len(t.shape) == 1:
        return t
    if len(t.shape) != 3:
        raise _err(layer, f"is exported for images, got shape {t.shape}")
    h, w, c = t.shape
    y = g.node("Flatten", [t.name], layer.name, axis=1)
    return _T(y, (h * w * c,), None if h * w == 1 else (c, h, w))


def _residual(g, layer, t):
    t = _materialise(g, t, layer.name)
    h = _emit(g, layer.block, t)
    s = t if layer.shortcut is None else _emit(g, layer.shortcut, t)
    h = _materialise(g, h, layer.name + "/block")
    s = _materialise(g, s, layer.name + "/shortcut")
    y = _T(g.node("Add", [h.name, s.name], layer.name), layer.output_shape)
    return _activation(g, y, layer.activation, layer.name, _act_alpha(layer), axis=-1)


def _emit_layer(g, layer, t):
    from .. import layers as L
    from ..models import Sequential

    if isinstance(layer, Sequential):
        return _emit(g, layer.layers, t)
    if not layer.built or layer.input_shape is None:
        raise _err(layer, "is not built")
    if tuple(layer.input_shape) != t.shape:
        raise _err(layer, f"was built for input {layer.input_shape}, but receives {t.shape}")
    if isinstance(layer, L.Conv2D):
        return _conv(g, layer, _materialise(g, t, layer.name))
    if isinstance(layer, L.MaxPool2D):
        _need_image(layer, t)
        pads = resolve_padding(layer.padding, t.shape[:2], layer.pool_size, layer.strides)
        return _pool(g, layer, t, "MaxPool", layer.pool_size, layer.strides, pads)
    if isinstance(layer, L.AvgPool2D):
        _need_image(layer, t)
        pads = resolve_padding(layer.padding, t.shape[:2], layer.pool_size, layer.strides)
        return _pool(g, layer, t, "AveragePool", layer.pool_size, layer.strides, pads,
                     count_include_pad=int(layer.count_include_pad))
    if isinstance(layer, L.AdaptiveAvgPool2D):
        return _adaptive(g, layer, t, "AveragePool")
    if isinstance(layer, L.AdaptiveMaxPool2D):
        return _adaptive(g, layer, t, "MaxPool")
    if isinstance(layer, L.GlobalAvgPool2D):
        _need_image(layer, t)
        y = g.node("GlobalAveragePool", [t.name], layer.name)
        y = g.node("Flatten", [y], layer.name, axis=1)
        return _T(y, layer.output_shape)
    if isinstance(layer, L.Flatten):
        return _flatten(g, layer, t)
    if isinstance(layer, L.Dense):
        return _dense(g, layer, t)
    if isinstance(layer, L.BatchNormalization):
        return _batch_norm(g, layer, t)
    if isinstance(layer, L.Dropout):
        return t
    if isinstance(layer, L.ReLU):
        return _activation(g, t, "relu", layer.name)
    if isinstance(layer, L.LeakyReLU):
        return _activation(g, t, "leaky_relu", layer.name, alpha=layer.alpha)
    if isinstance(layer, L.Sigmoid):
        return _activation(g, t, "sigmoid", layer.name)
    if isinstance(layer, L.Tanh):
        return _activation(g, t, "tanh", layer.name)
    if isinstance(layer, L.Softmax):
        # softmax over all features is order-independent: a (c,h,w) order may stay
        return _activation(g, t, "softmax", layer.name, axis=layer.axis)
    if isinstance(layer, L.Residual):
        return _residual(g, layer, t)
    raise _err(layer, f"has no ONNX export (exported layers: {', '.join(SUPPORTED_EXPORT_LAYERS)})")


def _emit(g, layers, t):
    for layer in layers:
        t = _emit_layer(g, layer, t)
    return t


def _check_opset(onnx, opset):
    latest = int(onnx.defs.onnx_opset_version())
    if opset is None:
        return min(DEFAULT_OPSET, latest)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset: expected an int, got {type(opset).__name__}")
    if not MIN_OPSET <= int(opset) <= latest:
        raise ValueError(f"opset: expected {MIN_OPSET}..{latest} (the installed onnx "
                         f"{onnx.__version__} knows up to {latest}), got {opset}")
    return int(opset)


def to_onnx(model, opset=None, input_name="input", output_name="output"):
    """The ONNX ``ModelProto`` of a built cnnx model (see :func:`export`)."""
    from ..layers.base import Layer

    onnx = require_onnx()
    if not isinstance(model, Layer):
        raise TypeError(f"model: expected a cnnx model (Sequential or Layer), got "
                        f"{type(model).__name__}")
    if not model.built or model.input_shape is None:
        raise ValueError("model: not built yet (give input_shape= or call build/fit first)")
    for argname, v in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(v, str) or not v:
            raise TypeError(f"{argname}: expected a non-empty str, got {v!r}")
    if input_name == output_name:
        raise ValueError("output_name: must differ from input_name")
    opset = _check_opset(onnx, opset)
    in_shape = tuple(int(s) for s in model.input_shape)
    if len(in_shape) not in (1, 3):
        raise ValueError(f"model: input shape {in_shape} is not exported (images (n_H, n_W, "
                         "n_C) or flat features (n,))")
    helper = onnx.helper
    g = _Graph(onnx, opset)
    g.names.update((input_name, output_name))
    if len(in_shape) == 3:
        x = g.node("Transpose", [input_name], "input/to_nchw", perm=list(_NHWC_TO_NCHW))
        t = _T(x, in_shape)
    else:
        t = _T(input_name, in_shape)
    t = _emit_layer(g, model, t)
    t = _materialise(g, t, "output")
    if len(t.shape) == 3:
        t = _T(g.node("Transpose", [t.name], "output/to_nhwc", perm=list(_NCHW_TO_NHWC)),
               t.shape)
    if getattr(model, "_head", None) == "logits":
        # predict() turns a cross-entropy model's logits into probabilities (last axis)
        nd = len(t.shape) + 1
        t = _T(g.node("Softmax", [t.name], "output/probabilities", axis=nd - 1), t.shape)
    if g.nodes and t.name == g.nodes[-1].output[0]:
        g.nodes[-1].output[0] = output_name
    else:
        g.nodes.append(helper.make_node("Identity", [t.name], [output_name], name="output"))
    out_shape = tuple(int(s) for s in model.output_shape)
    if out_shape != t.shape:
        raise ONNXConversionError(f"model: output shape {out_shape} but the graph gives {t.shape}")
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, model.name or "cnnx",
        [helper.make_tensor_value_info(input_name, f32, ["N", *in_shape])],
        [helper.make_tensor_value_info(output_name, f32, ["N", *out_shape])],
        initializer=g.inits)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="cnnx",
                              producer_version=__version__,
                              doc_string="Exported by cnnx: input NHWC float32, as model.predict")
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, path, opset=None, input_name="input", output_name="output"):
    """Write ``model`` as an ONNX file that ONNX Runtime runs like ``model.predict``.

    Args:
        model: a built cnnx ``Sequential`` (or any built layer of
            :data:`~cnnx.onnx.SUPPORTED_EXPORT_LAYERS`).
        path: the ``.onnx`` file to write (atomically: a temporary file in
            the same directory, then a rename).
        opset: ONNX opset (default :data:`DEFAULT_OPSET` = 17; 13 or newer).
        input_name, output_name: names of the graph's input and output.

    The graph's input is the same NHWC float32 batch ``model.predict`` takes
    (any batch size) and its output is what ``predict`` returns: a softmax is
    appended for a model compiled with cross-entropy that ends in logits.
    ``onnx.checker`` validates the graph before it is written. Returns
    ``path``.

    Raises :class:`~cnnx.onnx.ONNXConversionError` (a ValueError) naming the
    layer for anything ONNX cannot express exactly, e.g. an adaptive pool
    whose output size does not divide its input size.
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
