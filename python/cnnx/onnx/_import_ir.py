"""The import's own small graph: cnnx layers to be, between cnnx (NHWC) tensors.

ONNX nodes convert into it (:mod:`._import_ops`), the passes below tidy it
up, and :func:`build` turns it into a functional ``cnnx.Model``. Keeping
layers as descriptions until the end lets a pass change what a layer will
be (fold a bias into a convolution, give it an activation) before the layer
is built.

Passes, each exact up to float rounding:

- :func:`fold_affines`: ``x * scale + offset`` by per-channel constants (an
  ONNX ``Mul``/``Add``/``Sub``/``Div`` by a constant) folds into the
  BatchNormalization, convolution or dense layer before it when that layer
  feeds nothing else (its gamma/beta or weights/bias absorb it, in training
  as well as inference); otherwise it becomes a 1x1 depthwise ``Conv2D``
  (kernel = scale, bias = offset: one multiply and one add per value, as
  ONNX computes it); on flat features it folds into the Dense after it;
- :func:`fuse_activations`: an activation right after a convolution, dense
  or elementwise-join layer that feeds nothing else becomes that layer's
  ``activation``;
- :func:`global_pools`: a 1x1 adaptive average pool followed by a Flatten
  (through elementwise layers) becomes ``GlobalAvgPool2D``;
- :func:`prune`: layers no output needs are dropped.
"""

import numpy as np

from ._common import ONNXConversionError

__all__ = [
    "Tensor",
    "Node",
    "Graph",
    "fold_affines",
    "fuse_activations",
    "global_pools",
    "prune",
    "build",
]


class Tensor:
    """A cnnx tensor to be: ``shape`` per example (NHWC images, or flat)."""

    __slots__ = ("shape", "producer", "consumers", "name")

    def __init__(self, shape, producer, name):
        self.shape = tuple(int(s) for s in shape)
        self.producer = producer
        self.consumers = []  # one entry per use (a node reading it twice is listed twice)
        self.name = name


class Node:
    """A cnnx layer to be: class name ``cls`` (or ``"Affine"``, resolved by a
    pass), constructor ``config``, the ``params``/``buffers`` to copy in once
    built, and ``source``, the ONNX node it comes from (for messages)."""

    __slots__ = (
        "cls",
        "config",
        "inputs",
        "output",
        "params",
        "buffers",
        "source",
        "name",
        "multi",
        "dead",
    )

    def __init__(self, cls, inputs, config, params, buffers, source, name, multi):
        self.cls = cls
        self.inputs = list(inputs)
        self.config = dict(config or {})
        self.params = dict(params or {})
        self.buffers = dict(buffers or {})
        self.source = source
        self.name = name
        self.multi = multi
        self.output = None
        self.dead = False


class Graph:
    def __init__(self):
        self.nodes = []
        self.inputs = []
        self.outputs = []

    def input(self, shape, name):
        t = Tensor(shape, None, name)
        self.inputs.append(t)
        return t

    def add(
        self,
        cls,
        inputs,
        shape,
        source,
        config=None,
        params=None,
        buffers=None,
        multi=False,
        name=None,
    ):
        """Append a layer reading ``inputs``; returns its output Tensor."""
        if name is None:
            name = (source.name if source is not None else "") or None
        node = Node(cls, inputs, config, params, buffers, source, name, multi)
        for t in node.inputs:
            t.consumers.append(node)
        node.output = Tensor(shape, node, name)
        self.nodes.append(node)
        return node.output

    def is_output(self, t):
        return any(o is t for o in self.outputs)

    def sole_reader(self, t):
        """The one node reading ``t`` once, when ``t`` is no graph output."""
        if len(t.consumers) != 1 or self.is_output(t):
            return None
        return t.consumers[0]

    def replace_uses(self, old, new):
        for node in dict.fromkeys(old.consumers):
            uses = sum(t is old for t in node.inputs)
            node.inputs = [new if t is old else t for t in node.inputs]
            new.consumers.extend([node] * uses)
        old.consumers = []
        self.outputs = [new if t is old else t for t in self.outputs]

    def detach(self, node):
        node.dead = True
        for t in node.inputs:
            if node in t.consumers:
                t.consumers.remove(node)
        node.inputs = []

    def bypass(self, node, new):
        """Let the readers of ``node``'s output read ``new`` instead; drop ``node``."""
        self.replace_uses(node.output, new)
        self.detach(node)

    def set_input(self, node, i, new):
        old = node.inputs[i]
        old.consumers.remove(node)
        node.inputs[i] = new
        new.consumers.append(node)

    def compact(self):
        self.nodes = [n for n in self.nodes if not n.dead]


# ---------------------------------------------------------------------------
# passes
# ---------------------------------------------------------------------------


def _fold_into(src, scale, offset):
    """Make layer ``src`` compute ``src(x) * scale + offset`` itself; True if it can."""
    if src.cls in ("Conv2D", "Dense"):
        if src.config.get("activation") is not None:
            return False
        src.params["kernel"] = np.ascontiguousarray(src.params["kernel"] * scale, np.float32)
        bias = src.params.get("bias")
        if bias is not None or np.any(offset != 0):
            bias = np.zeros_like(offset) if bias is None else bias
            src.params["bias"] = (bias * scale + offset).astype(np.float32)
            src.config["use_bias"] = True
        return True
    if src.cls == "BatchNormalization":
        src.params["gamma"] = (src.params["gamma"] * scale).astype(np.float32)
        src.params["beta"] = (src.params["beta"] * scale + offset).astype(np.float32)
        return True
    return False


def fold_affines(g, fail):
    """Resolve every ``Affine`` node (see the module docstring)."""
    for node in g.nodes:
        if node.cls != "Affine" or node.dead:
            continue
        scale, offset = node.params["scale"], node.params["offset"]
        x = node.inputs[0]
        if (
            x.producer is not None
            and g.sole_reader(x) is node
            and _fold_into(x.producer, scale, offset)
        ):
            g.bypass(node, x)
            continue
        if len(x.shape) == 3:  # a 1x1 depthwise convolution: y = x * k + b per channel
            c = x.shape[-1]
            node.cls = "Conv2D"
            use_bias = bool(np.any(offset != 0))
            node.config = dict(
                filters=c, kernel_size=1, groups=c, use_bias=use_bias, kernel_initializer="zeros"
            )
            node.params = {"kernel": scale.reshape(1, 1, 1, c).astype(np.float32)}
            if use_bias:
                node.params["bias"] = offset
            continue
        reader = g.sole_reader(node.output)
        if reader is not None and reader.cls == "Affine":  # (x*s1 + o1)*s2 + o2
            s2, o2 = reader.params["scale"], reader.params["offset"]
            reader.params = {
                "scale": (scale * s2).astype(np.float32),
                "offset": (offset * s2 + o2).astype(np.float32),
            }
        elif reader is not None and reader.cls == "Dense":  # (x*s + o) @ W + b
            w = reader.params["kernel"]
            b = reader.params.get("bias")
            bias = offset.astype(np.float64) @ w.astype(np.float64)
            if b is not None:
                bias += b
            reader.params["kernel"] = np.ascontiguousarray(w * scale[:, None], np.float32)
            if b is not None or np.any(bias != 0):
                reader.params["bias"] = bias.astype(np.float32)
                reader.config["use_bias"] = True
        else:
            raise fail(
                node.source,
                "multiplying or adding a constant to flat features is "
                "supported only next to a Gemm/MatMul or "
                "BatchNormalization that can absorb it",
            )
        g.set_input(reader, reader.inputs.index(node.output), x)
        g.detach(node)
    g.compact()


_FUSED_ACTIVATIONS = {
    "ReLU": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "LeakyReLU": "leaky_relu",
    "Softmax": "softmax",
}
_TAKES_ACTIVATION = ("Conv2D", "Dense", "Add", "Subtract", "Multiply", "Average")


def fuse_activations(g):
    for node in g.nodes:
        kind = _FUSED_ACTIVATIONS.get(node.cls)
        if kind is None or node.dead:
            continue
        if kind == "leaky_relu" and abs(node.config.get("alpha", 0.01) - 0.01) > 1e-9:
            continue  # a fused leaky ReLU has the default slope
        if kind == "softmax" and node.config.get("axis", -1) != -1:
            continue
        x = node.inputs[0]
        src = x.producer
        if (
            src is None
            or src.cls not in _TAKES_ACTIVATION
            or g.sole_reader(x) is not node
            or src.config.get("activation") is not None
        ):
            continue
        src.config["activation"] = kind
        g.bypass(node, x)
    g.compact()


_ELEMENTWISE = ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout")


def global_pools(g):
    """AdaptiveAvgPool2D(1) -> [elementwise layers] -> Flatten  ==>  GlobalAvgPool2D -> [...]."""
    for node in g.nodes:
        if node.cls != "Flatten" or node.dead:
            continue
        chain, reader, x = [], node, node.inputs[0]
        while (
            x.producer is not None and x.producer.cls in _ELEMENTWISE and g.sole_reader(x) is reader
        ):
            reader = x.producer
            chain.append(reader)
            x = reader.inputs[0]
        src = x.producer
        if (
            src is None
            or src.cls != "AdaptiveAvgPool2D"
            or src.config["output_size"] != 1
            or g.sole_reader(x) is not reader
        ):
            continue
        c = x.shape[-1]
        src.cls, src.config = "GlobalAvgPool2D", {}
        src.output.shape = (c,)
        for n in chain:
            n.output.shape = (c,)
        g.bypass(node, node.inputs[0])
    g.compact()


def prune(g):
    """Drop the layers no graph output needs."""
    need = {id(t) for t in g.outputs}
    for node in reversed(g.nodes):
        if id(node.output) in need:
            need.update(id(t) for t in node.inputs)
        else:
            g.detach(node)
    g.compact()


# ---------------------------------------------------------------------------
# the cnnx model
# ---------------------------------------------------------------------------


def build(g, name, single_input, single_output, fail):
    """The functional ``cnnx.Model`` of graph ``g``, weights copied in."""
    from ..layers.base import get_layer_class
    from ..models import Input, Model

    sym = {}
    for t in g.inputs:
        sym[id(t)] = Input(t.shape, t.name)
    used_names = set()
    made = []
    for node in g.nodes:
        cls = get_layer_class(node.cls)
        base = node.name or cls.__name__
        lname, k = base, 1
        while lname in used_names:
            k += 1
            lname = f"{base}_{k}"
        used_names.add(lname)
        args = [sym[id(t)] for t in node.inputs]
        try:
            layer = cls(name=lname, **node.config)
            out = layer(args if node.multi else args[0])
        except (ValueError, TypeError) as e:
            raise fail(
                node.source,
                f"cannot be built as cnnx.{cls.__name__} for its input "
                f"{', '.join(str(t.shape) for t in node.inputs)} ({e})",
            ) from None
        if tuple(out.shape) != node.output.shape:  # the converter's shape must be the layer's
            raise ONNXConversionError(
                f"internal: {cls.__name__} {lname!r} gives {out.shape}, "
                f"expected {node.output.shape}"
            )
        sym[id(node.output)] = out
        made.append((layer, node))
    ins = [sym[id(t)] for t in g.inputs]
    outs = [sym[id(t)] for t in g.outputs]
    model = Model(ins[0] if single_input else ins, outs[0] if single_output else outs, name=name)
    for layer, node in made:
        if node.config.get("kernel_initializer") == "zeros":
            layer.kernel_initializer = "auto"  # zeros only spared drawing weights now replaced
        for key, value in node.params.items():
            layer.params[key] = value
        for key, value in node.buffers.items():
            layer.buffers[key] = value
    return model
