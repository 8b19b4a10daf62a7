"""ONNX graph -> cnnx model (:func:`load`).

Reads the graphs that cnnx exports and the NCHW image classifiers that
``torch.onnx.export`` writes (the TorchScript exporter and the newer
``dynamo=True`` one, whose weights may sit in a ``.onnx.data`` file beside
the model). The result is a ``cnnx.Sequential`` that takes **NHWC** input:

- OIHW Conv kernels become HWIO; explicit ``pads`` / ``auto_pad`` become
  cnnx's ``((top, bottom), (left, right))``;
- the Gemm (or MatMul + Add) after a Flatten of an NCHW image gets its
  rows permuted from (c, h, w) to cnnx's (h, w, c) order;
- an ``Add`` of two branches that leave the same tensor becomes a
  ``cnnx.Residual`` (the longer branch is the block, the other the
  shortcut: identity or e.g. a 1x1 Conv), so ResNets import as one
  Sequential;
- a Relu / LeakyRelu / Sigmoid / Tanh / Softmax directly after a Conv,
  Gemm or residual Add becomes that layer's fused ``activation``.

Every operator, attribute and graph shape is checked: anything cnnx cannot
run exactly raises :class:`~cnnx.onnx.ONNXConversionError` naming the
operator, the node and what is supported. Nothing is converted approximately.
"""
import heapq
import os

import numpy as np

from ..layers.base import MAX_NESTING
from ._common import ONNXConversionError, SUPPORTED_IMPORT_OPS, require_onnx
from ._external import external_tensors, inline_external_data

__all__ = ["load", "from_onnx", "MAX_NODES"]

#: the most nodes a graph may have (ResNet-152 has about 500); residual Adds
#: may nest at most cnnx.layers.MAX_NESTING deep (each becomes a Residual)
MAX_NODES = 100_000
#: per-axis limit of kernels, strides, dilations and pads (the C++ kernels' own)
_MAX_EXTENT = 2**40

_ACTS = {"Relu": "relu", "LeakyRelu": "leaky_relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}
_SHAPE_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Identity",
              "Constant", "Slice")


def _node_desc(node):
    return f"{node.op_type} (node {node.name or '<unnamed>'!r})"


class _Ctx:
    """What the converter knows about the graph: constants, attributes, opset."""

    def __init__(self, onnx, proto, where):
        self.onnx = onnx
        self.where = where  # "path" or "proto": the argument named in errors
        self.opset = 1
        for o in proto.opset_import:
            if o.domain in ("", "ai.onnx"):
                self.opset = int(o.version)
        self.consts = {}
        for init in proto.graph.initializer:
            self.consts[init.name] = self.to_array(init, f"initializer {init.name!r}")
        self.value_shapes = {}
        self.batch = None  # the graph input's static batch size, if any
        self.current = None  # the node being converted (named by errors from cnnx's layers)

    def to_array(self, tensor, what, node=None):
        """A TensorProto as NumPy, or an error naming it (dims that disagree
        with the data, unknown types...) instead of NumPy's bare message."""
        try:
            return self.onnx.numpy_helper.to_array(tensor)
        except Exception as e:  # noqa: BLE001 - NumPy/onnx raise several types
            raise self.fail(node, f"{what}: dims {list(tensor.dims)} and data type "
                                  f"{tensor.data_type} do not describe its data ({e})") from None

    def fail(self, node, msg):
        where = f"{_node_desc(node)}: " if node is not None else ""
        return ONNXConversionError(f"{self.where}: {where}{msg}")

    def unsupported_op(self, node):
        return self.fail(node, "operator not supported by cnnx.onnx.load (supported: "
                               f"{', '.join(SUPPORTED_IMPORT_OPS)})")

    def attrs(self, node):
        h = self.onnx.helper
        out = {}
        for a in node.attribute:
            v = h.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            out[a.name] = v
        return out

    def check_attrs(self, node, attrs, allowed):
        extra = sorted(set(attrs) - set(allowed))
        if extra:
            raise self.fail(node, f"attribute(s) {extra} not supported (supported: "
                                  f"{sorted(allowed)})")

    def const(self, node, name, what):
        if name not in self.consts:
            raise self.fail(node, f"{what} ({name!r}) must be a constant (an initializer), "
                                  "but it is computed in the graph")
        return self.consts[name]


# ---------------------------------------------------------------------------
# constant folding of the small shape computations exporters emit
# ---------------------------------------------------------------------------

def _fold_constants(ctx, nodes, input_name, batch_shape):
    """Evaluate Constant/Identity/Shape/Gather/... nodes whose inputs are known.

    ``Shape`` of a data tensor uses the static shape known from shape
    inference, with the batch dimension as -1 (so a Reshape target built from
    it keeps "whatever the batch is"). Returns the nodes that remain.
    """
    onnx = ctx.onnx
    remaining = []
    for node in nodes:
        op = node.op_type
        ins = list(node.input)
        if op == "Constant":
            a = ctx.attrs(node)
            if "value" in a:
                ctx.consts[node.output[0]] = ctx.to_array(a["value"], "attribute value", node)
            elif "value_float" in a:
                ctx.consts[node.output[0]] = np.array(a["value_float"], np.float32)
            elif "value_floats" in a:
                ctx.consts[node.output[0]] = np.array(a["value_floats"], np.float32)
            elif "value_int" in a:
                ctx.consts[node.output[0]] = np.array(a["value_int"], np.int64)
            elif "value_ints" in a:
                ctx.consts[node.output[0]] = np.array(a["value_ints"], np.int64)
            else:
                raise ctx.fail(node, f"constant kind {sorted(a)} not supported")
            continue
        if op == "Shape" and ins and ins[0] not in ctx.consts:
            shape = ctx.value_shapes.get(ins[0])
            if shape is None or any(d is None for d in shape[1:]):
                remaining.append(node)
                continue
            full = np.array([-1] + list(shape[1:]), np.int64)
            a = ctx.attrs(node)
            start, end = a.get("start", 0), a.get("end", len(full))
            ctx.consts[node.output[0]] = full[start:end]
            continue
        if op in _SHAPE_OPS and ins and all((not i) or i in ctx.consts for i in ins):
            a = ctx.attrs(node)
            v = [ctx.consts[i] if i else None for i in ins]
            try:
                if op == "Identity":
                    r = v[0]
                elif op == "Cast":
                    r = v[0].astype(onnx.helper.tensor_dtype_to_np_dtype(a["to"]))
                elif op == "Gather":
                    r = np.take(v[0], v[1].astype(np.int64), axis=a.get("axis", 0))
                elif op == "Unsqueeze":
                    axes = a["axes"] if "axes" in a else list(v[1])
                    r = v[0]
                    for ax in sorted(int(x) % (r.ndim + len(axes)) for x in axes):
                        r = np.expand_dims(r, ax)
                elif op == "Squeeze":
                    axes = a.get("axes", list(v[1]) if len(v) > 1 and v[1] is not None else None)
                    r = np.squeeze(v[0], axis=None if axes is None else tuple(int(x) for x in axes))
                elif op == "Concat":
                    r = np.concatenate([np.atleast_1d(x) for x in v], axis=a.get("axis", 0))
                elif op == "Slice":
                    starts, ends = v[1], v[2]
                    axes = v[3] if len(v) > 3 and v[3] is not None else range(len(starts))
                    steps = v[4] if len(v) > 4 and v[4] is not None else [1] * len(starts)
                    sl = [slice(None)] * v[0].ndim
                    for s, e, ax, st in zip(starts, ends, axes, steps):
                        sl[int(ax)] = slice(int(s), int(e), int(st))
                    r = v[0][tuple(sl)]
                else:  # pragma: no cover
                    raise KeyError(op)
            except (KeyError, IndexError, ValueError, TypeError) as e:
                raise ctx.fail(node, f"cannot evaluate this constant expression ({e})") from None
            ctx.consts[node.output[0]] = np.asarray(r)
            continue
        remaining.append(node)
    return remaining


# ---------------------------------------------------------------------------
# graph structure: chains and residual adds
# ---------------------------------------------------------------------------

def _data_inputs(ctx, node):
    return [i for i in node.input if i and i not in ctx.consts]


class _Res:
    """A residual Add: ``block`` and ``shortcut`` are item lists from ``fork``."""

    __slots__ = ("node", "block", "shortcut")

    def __init__(self, node, block, shortcut):
        self.node, self.block, self.shortcut = node, block, shortcut


def _structure(ctx, nodes, input_name, output_name):
    """Turn the node list into nested items (nodes and _Res) from input to output."""
    producer = {}
    order = {input_name: -1}
    for i, node in enumerate(nodes):
        for o in node.output:
            if o:
                producer[o] = node
                order[o] = i
    for node in nodes:
        for d in _data_inputs(ctx, node):
            if d not in producer and d != input_name:
                raise ctx.fail(node, f"input {d!r} is neither the graph input, a constant nor "
                                     "the output of another node")
    visited = set()

    def fork_of(a, b):
        """The latest value both ``a`` and ``b`` depend on (None if none).

        Values are expanded latest-first (a heap on the node order, which is
        topological), so the first one reached from both sides is the
        answer, and only the nodes between it and the Add are looked at:
        a graph of many consecutive residual blocks costs linear time.
        """
        reached = {a: 1, b: 2}
        heap = [(-order[a], a), (-order[b], b)]
        queued = {a, b}
        while heap:
            _, u = heapq.heappop(heap)
            if reached[u] == 3:
                return u
            if u in producer:
                for d in _data_inputs(ctx, producer[u]):
                    reached[d] = reached.get(d, 0) | reached[u]
                    if d not in queued:
                        queued.add(d)
                        heapq.heappush(heap, (-order[d], d))
        return None

    def walk(value, stop, depth=0):
        items = []
        v = value
        while v != stop:
            if v == input_name or v not in producer or order[v] < order[stop]:
                raise ONNXConversionError(
                    f"{ctx.where}: graph structure not supported: value {value!r} does not "
                    f"come from {stop!r} through a chain of single-input operators and "
                    "residual Adds (cnnx imports sequential networks and ResNet-style skip "
                    "connections)")
            node = producer[v]
            if id(node) in visited:
                raise ctx.fail(node, "graph structure not supported: this node's output is "
                                     "used by several branches")
            visited.add(id(node))
            data = _data_inputs(ctx, node)
            if node.op_type in ("Add", "Sum") and len(data) == 2:
                a, b = data
                if depth >= MAX_NESTING - 1:
                    raise ctx.fail(node, f"residual Adds nested more than {MAX_NESTING} deep are "
                                         "not supported (cnnx.layers.MAX_NESTING)")
                fork = fork_of(a, b)
                if fork is None:
                    raise ctx.fail(node, "graph structure not supported: the two summands do "
                                         "not share an input")
                ba, bb = walk(a, fork, depth + 1), walk(b, fork, depth + 1)
                block, short = (ba, bb) if _count(ba) >= _count(bb) else (bb, ba)
                if not block:
                    raise ctx.fail(node, "x + x (both summands the same tensor) is not "
                                         "supported")
                items.append(_Res(node, block, short))
                v = fork
                continue
            if len(data) != 1:
                if len(data) == 0:
                    raise ctx.fail(node, "has no data input (only constants)")
                raise ctx.fail(node, f"takes {len(data)} computed inputs; cnnx supports this "
                                     "only for the residual Add of two branches")
            items.append(node)
            v = data[0]
        items.reverse()
        return items

    items = walk(output_name, input_name)
    if len(visited) != len(nodes):
        left = [n for n in nodes if id(n) not in visited]
        raise ctx.fail(left[0], "graph structure not supported: this node does not lie on "
                                "the path from the input to the output (a second output or "
                                "a branch cnnx cannot express)")
    return items


def _count(items):
    return sum(1 + (_count(i.block) + _count(i.shortcut) if isinstance(i, _Res) else 0)
               for i in items)


# ---------------------------------------------------------------------------
# conversion of a chain, with the NHWC shape carried along
# ---------------------------------------------------------------------------

class _State:
    """cnnx shape of the current tensor (no batch), plus a pending (C, H, W)
    when it is an NCHW image flattened in ONNX's (c, h, w) order."""

    __slots__ = ("shape", "chw")

    def __init__(self, shape, chw=None):
        self.shape = tuple(shape)
        self.chw = chw


class _Item:
    """A cnnx layer to be, with the weights to copy in once the model is built."""

    def __init__(self, layer, node, params=None, buffers=None, kind=None):
        self.layer = layer
        self.node = node
        self.params = params or {}
        self.buffers = buffers or {}
        self.kind = kind  # "conv", "dense", "residual", "gap", "matmul" or None


def _nchw(shape):
    """cnnx shape -> the ONNX (NCHW) shape without batch."""
    if len(shape) == 3:
        h, w, c = shape
        return (c, h, w)
    return tuple(shape)


def _pair(ctx, node, attrs, key, default):
    v = attrs.get(key, default)
    v = [int(x) for x in v]
    if len(v) != 2:
        raise ctx.fail(node, f"attribute {key}={v}: only 2-D (two values) is supported")
    if min(v) < 1 or max(v) >= _MAX_EXTENT:
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
        if max(pads) >= _MAX_EXTENT:
            raise ctx.fail(node, f"attribute pads={pads}: expected values below 2**40")
        t, l, b, r = pads
        return ((t, b), (l, r))
    if auto == "VALID":
        return ((0, 0), (0, 0))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for n, f, s, d in zip(hw, kernel, strides, dilations):
            o = -(-n // s)
            total = max((o - 1) * s + (f - 1) * d + 1 - n, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return tuple(out)
    raise ctx.fail(node, f"auto_pad={auto!r} not supported")


def _need_rank(ctx, node, st, ranks, what):
    if len(st.shape) not in ranks:
        raise ctx.fail(node, f"{what}; its input has shape {('N',) + _nchw(st.shape)}")


def _no_pending(ctx, node, st):
    if st.chw is not None:
        c, h, w = st.chw
        raise ctx.fail(node, f"follows a Flatten of a {c}x{h}x{w} NCHW tensor; cnnx flattens "
                             "in (h, w, c) order and can reorder only the Gemm/MatMul weights "
                             "that consume it, not this operator's input")


def _conv(ctx, node, st):
    from .. import layers as L

    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("kernel_shape", "strides", "pads", "dilations", "group",
                                  "auto_pad"))
    _need_rank(ctx, node, st, (3,), "only 2-D convolution of NCHW images is supported")
    _no_pending(ctx, node, st)
    w = np.asarray(ctx.const(node, node.input[1], "the weight W"), np.float32)
    if w.ndim != 4:
        raise ctx.fail(node, f"weight of shape {w.shape}: only 2-D convolution is supported")
    o, ig, kh, kw = w.shape
    if "kernel_shape" in attrs and [int(k) for k in attrs["kernel_shape"]] != [kh, kw]:
        raise ctx.fail(node, f"kernel_shape {attrs['kernel_shape']} disagrees with the weight "
                             f"shape {w.shape}")
    group = int(attrs.get("group", 1))
    h, wd, c = st.shape
    if ig * group != c or o % group:
        raise ctx.fail(node, f"weight {w.shape} with group={group} does not fit {c} input "
                             "channels")
    strides = _pair(ctx, node, attrs, "strides", (1, 1))
    dil = _pair(ctx, node, attrs, "dilations", (1, 1))
    for f, d in zip((kh, kw), dil):
        if (f - 1) * d + 1 >= _MAX_EXTENT:
            raise ctx.fail(node, f"attribute dilations={dil}: the dilated {kh}x{kw} kernel "
                                 "would span 2**40 pixels or more")
    pads = _explicit_pads(ctx, node, attrs, (h, wd), (kh, kw), strides, dil)
    for n, (p0, p1) in zip((h, wd), pads):
        if n + p0 + p1 >= _MAX_EXTENT:
            raise ctx.fail(node, f"attribute pads: the padded input ({n} + {p0} + {p1} "
                                 "pixels) must span fewer than 2**40 pixels per axis")
    b = None
    if len(node.input) > 2 and node.input[2]:
        b = np.asarray(ctx.const(node, node.input[2], "the bias B"), np.float32).reshape(-1)
        if b.shape != (o,):
            raise ctx.fail(node, f"bias of shape {b.shape}, expected ({o},)")
    layer = L.Conv2D(o, (kh, kw), strides=tuple(strides), padding=pads,
                     dilation_rate=tuple(dil), groups=group, use_bias=b is not None,
                     name=node.name or None)
    params = {"kernel": w.transpose(2, 3, 1, 0)}
    if b is not None:
        params["bias"] = b
    return _Item(layer, node, params, kind="conv")


def _pool(ctx, node, st):
    from .. import layers as L
    from ..functional._shapes import output_hw

    attrs = ctx.attrs(node)
    op = node.op_type
    allowed = ["kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "dilations"]
    allowed += ["storage_order"] if op == "MaxPool" else ["count_include_pad"]
    ctx.check_attrs(node, attrs, allowed)
    if len([o for o in node.output if o]) > 1:
        raise ctx.fail(node, "the Indices output of MaxPool is not supported")
    _need_rank(ctx, node, st, (3,), "only 2-D pooling of NCHW images is supported")
    _no_pending(ctx, node, st)
    kernel = _pair(ctx, node, attrs, "kernel_shape", None) if "kernel_shape" in attrs else None
    if kernel is None:
        raise ctx.fail(node, "attribute kernel_shape is required")
    strides = _pair(ctx, node, attrs, "strides", (1, 1))
    dil = _pair(ctx, node, attrs, "dilations", (1, 1))
    if dil != [1, 1]:
        raise ctx.fail(node, f"dilations={dil} not supported for pooling (only 1)")
    h, w, _c = st.shape
    pads = _explicit_pads(ctx, node, attrs, (h, w), kernel, strides, dil)
    (pt, pb), (pl, pr) = pads
    if max(pt, pb) > kernel[0] // 2 or max(pl, pr) > kernel[1] // 2:
        raise ctx.fail(node, f"pads {pads} larger than half the window {kernel} are not "
                             "supported")
    if int(attrs.get("ceil_mode", 0)):
        floor_hw = output_hw((h, w), kernel, pads, strides)
        ceil_hw = tuple(-(-(n + p[0] + p[1] - k) // s) + 1
                        for n, k, p, s in zip((h, w), kernel, pads, strides))
        # ONNX (like PyTorch) drops a last window that starts in the end padding
        ceil_hw = tuple(o - 1 if (o - 1) * s >= n + p[0] else o
                        for o, n, p, s in zip(ceil_hw, (h, w), pads, strides))
        if ceil_hw != floor_hw:
            raise ctx.fail(node, f"ceil_mode=1 gives output {ceil_hw} where floor mode gives "
                                 f"{floor_hw}; cnnx pools in floor mode only")
    name = node.name or None
    if op == "MaxPool":
        layer = L.MaxPool2D(tuple(kernel), tuple(strides), pads, name=name)
    else:
        cip = bool(int(attrs.get("count_include_pad", 0)))
        layer = L.AvgPool2D(tuple(kernel), tuple(strides), pads, count_include_pad=cip,
                            name=name)
    return _Item(layer, node)


def _is_flatten(ctx, node, st):
    """True for Flatten(axis=1) or a Reshape to (batch, -1) of the current tensor."""
    if node is None or isinstance(node, _Res):
        return False
    if node.op_type == "Flatten":
        return True
    if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in ctx.consts:
        target = [int(v) for v in np.asarray(ctx.consts[node.input[1]]).reshape(-1)]
        if len(target) != 2:
            return False
        n = int(np.prod(st.shape))
        # the batch entry: -1, 0 (copy), or the graph's static batch size baked in by
        # an exporter; the feature entry: n or -1
        batch_ok = target[0] in (-1, 0) or (ctx.batch is not None and target[0] == ctx.batch)
        return batch_ok and target[1] in (n, -1)
    return False


def _flatten(ctx, node, st):
    from .. import layers as L

    attrs = ctx.attrs(node)
    if node.op_type == "Flatten":
        ctx.check_attrs(node, attrs, ("axis",))
        axis = int(attrs.get("axis", 1))
        nd = len(st.shape) + 1
        if axis < 0:
            axis += nd
        if axis != 1:
            raise ctx.fail(node, f"axis={axis} not supported (only 1: keep the batch)")
    else:
        ctx.check_attrs(node, attrs, ("allowzero",))
        target = [int(v) for v in np.asarray(ctx.consts.get(node.input[1], [])).reshape(-1)]
        if not _is_flatten(ctx, node, st):
            raise ctx.fail(node, f"Reshape to {target} of a tensor of shape "
                                 f"{('N',) + _nchw(st.shape)} is not supported (only "
                                 "flattening to (N, features))")
    _no_pending(ctx, node, st)
    if len(st.shape) == 1:
        return None, st
    n = int(np.prod(st.shape))
    chw = None
    if len(st.shape) == 3 and st.shape[0] * st.shape[1] > 1:
        h, w, c = st.shape
        chw = (c, h, w)
    elif len(st.shape) != 3:
        raise ctx.fail(node, f"flattening a tensor of shape {('N',) + st.shape} is not supported")
    return _Item(L.Flatten(name=node.name or None), node), _State((n,), chw)


def _dense_weights(ctx, node, st, w):
    """(n_in, n_out) weights, rows permuted from (c,h,w) to (h,w,c) after an NCHW Flatten."""
    n_in = st.shape[0] if len(st.shape) == 1 else None
    if n_in is None:
        raise ctx.fail(node, f"needs flat features (N, n); its input has shape "
                             f"{('N',) + _nchw(st.shape)}")
    if w.shape[0] != n_in:
        raise ctx.fail(node, f"weight of shape {w.shape} does not fit {n_in} input features")
    if st.chw is not None:
        c, h, ww = st.chw
        w = w.reshape(c, h, ww, -1).transpose(1, 2, 0, 3).reshape(n_in, -1)
    return np.ascontiguousarray(w, np.float32)


def _gemm(ctx, node, st):
    from .. import layers as L

    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("alpha", "beta", "transA", "transB", "broadcast"))
    if int(attrs.get("transA", 0)):
        raise ctx.fail(node, "transA=1 is not supported (the input must be (N, n_in))")
    w = np.asarray(ctx.const(node, node.input[1], "the weight B"), np.float32)
    if w.ndim != 2:
        raise ctx.fail(node, f"weight of shape {w.shape}: expected 2-D")
    if int(attrs.get("transB", 0)):
        w = w.T
    w = _dense_weights(ctx, node, st, w * np.float32(attrs.get("alpha", 1.0)))
    n_out = w.shape[1]
    b = None
    if len(node.input) > 2 and node.input[2]:
        c = np.asarray(ctx.const(node, node.input[2], "the bias C"), np.float32)
        if c.size not in (1, n_out) or (c.ndim == 2 and c.shape[0] != 1):
            raise ctx.fail(node, f"bias of shape {c.shape} is not supported (expected "
                                 f"({n_out},), (1, {n_out}) or a scalar)")
        b = (np.broadcast_to(c.reshape(-1), (n_out,)) * np.float32(attrs.get("beta", 1.0))
             ).astype(np.float32)
    layer = L.Dense(n_out, use_bias=b is not None, name=node.name or None)
    params = {"kernel": w}
    if b is not None:
        params["bias"] = b
    return _Item(layer, node, params, kind="dense"), _State((n_out,))


def _matmul(ctx, node, st):
    from .. import layers as L

    w = np.asarray(ctx.const(node, node.input[1], "the second input (weights)"), np.float32)
    if w.ndim != 2:
        raise ctx.fail(node, f"weight of shape {w.shape}: expected 2-D")
    w = _dense_weights(ctx, node, st, w)
    layer = L.Dense(w.shape[1], use_bias=False, name=node.name or None)
    return _Item(layer, node, {"kernel": w}, kind="matmul"), _State((w.shape[1],))


def _bias_add(ctx, node, st, items):
    """Add of a constant: folded into the bias of the Conv / MatMul / Gemm just before."""
    from .. import layers as L

    prev = items[-1] if items else None
    const = [i for i in node.input if i in ctx.consts]
    b = np.asarray(ctx.consts[const[0]], np.float32)
    n_c = st.shape[-1]
    # ONNX broadcasting aligns trailing axes: a per-channel bias of an NCHW image
    # is (C, 1, 1) or (1, C, 1, 1); of flat features (F,) or (1, F)
    if b.size == 1:
        ok_shape = True
        b = np.full(n_c, b.reshape(()), np.float32)
    elif len(st.shape) == 3:
        ok_shape = (b.ndim in (3, 4) and b.shape[-3:] == (n_c, 1, 1) and b.size == n_c)
    else:
        ok_shape = b.ndim in (1, 2) and b.shape[-1] == n_c and b.size == n_c
    if not ok_shape or prev is None or prev.kind not in ("conv", "dense", "matmul") or \
            getattr(prev.layer, "activation", None) is not None:
        raise ctx.fail(node, f"adding a constant of shape {b.shape} is supported only as the "
                             "per-channel bias right after a Conv, Gemm or MatMul")
    b = b.reshape(-1)
    layer = prev.layer
    if "bias" in prev.params:
        prev.params["bias"] = prev.params["bias"] + b
    else:
        prev.params["bias"] = b.copy()
        if isinstance(layer, L.Dense):
            prev.layer = L.Dense(layer.units, use_bias=True, name=layer.name)
        else:
            prev.layer = L.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                                  padding=layer.padding, dilation_rate=layer.dilation_rate,
                                  groups=layer.groups, use_bias=True, name=layer.name)
    prev.kind = "dense" if prev.kind == "matmul" else prev.kind
    return st


def _batch_norm(ctx, node, st):
    from .. import layers as L

    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("epsilon", "momentum", "training_mode", "spatial",
                                  "consumed_inputs", "is_test"))
    if int(attrs.get("training_mode", 0)):
        raise ctx.fail(node, "training_mode=1 is not supported (export the model in eval mode)")
    if int(attrs.get("spatial", 1)) != 1:
        raise ctx.fail(node, "spatial=0 is not supported")
    if len([o for o in node.output if o]) > 1:
        raise ctx.fail(node, "the running-statistics outputs are not supported")
    _need_rank(ctx, node, st, (1, 3), "only (N, C) or (N, C, H, W) inputs are supported")
    c = st.shape[-1]
    arrs = []
    for i, what in zip(range(1, 5), ("scale", "B", "mean", "var")):
        a = np.asarray(ctx.const(node, node.input[i], what), np.float32).reshape(-1)
        if a.shape != (c,):
            raise ctx.fail(node, f"{what} of shape {a.shape}, expected ({c},)")
        arrs.append(a)
    if st.chw is not None:  # per-feature statistics of (c,h,w)-ordered features
        cc, h, w = st.chw
        arrs = [a.reshape(cc, h, w).transpose(1, 2, 0).ravel() for a in arrs]
    eps = float(attrs.get("epsilon", 1e-5))
    mom = float(attrs.get("momentum", 0.9))
    if not 0.0 < mom < 1.0:
        mom = 0.9
    if not eps > 0.0:
        raise ctx.fail(node, f"epsilon={eps}: cnnx needs epsilon > 0")
    layer = L.BatchNormalization(momentum=mom, epsilon=eps, name=node.name or None)
    return _Item(layer, node, {"gamma": arrs[0], "beta": arrs[1]},
                 {"moving_mean": arrs[2], "moving_var": arrs[3]})


def _dropout(ctx, node, st):
    from .. import layers as L

    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("ratio", "seed", "is_test"))
    if len([o for o in node.output if o]) > 1:
        raise ctx.fail(node, "the mask output of Dropout is not supported")
    rate = float(attrs.get("ratio", 0.5))
    if len(node.input) > 1 and node.input[1]:
        rate = float(np.asarray(ctx.const(node, node.input[1], "ratio")).reshape(()))
    if len(node.input) > 2 and node.input[2]:
        if bool(np.asarray(ctx.const(node, node.input[2], "training_mode")).reshape(())):
            raise ctx.fail(node, "training_mode=True is not supported")
    if not 0.0 <= rate < 1.0:
        raise ctx.fail(node, f"ratio={rate} not supported (expected [0, 1))")
    return _Item(L.Dropout(rate, name=node.name or None), node)


def _global_pool(ctx, node, st, flatten_next):
    """GlobalAveragePool / GlobalMaxPool / ReduceMean over H and W."""
    from .. import layers as L

    attrs = ctx.attrs(node)
    op = node.op_type
    keepdims = True
    if op == "ReduceMean":
        ctx.check_attrs(node, attrs, ("axes", "keepdims", "noop_with_empty_axes"))
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = np.asarray(ctx.const(node, node.input[1], "axes")).reshape(-1).tolist()
        nd = len(st.shape) + 1
        if axes is None or sorted(int(a) % nd for a in axes) != [2, 3] or nd != 4:
            raise ctx.fail(node, f"ReduceMean over axes {axes} is supported only as a global "
                                 "average pool (axes [2, 3] of an NCHW image)")
        keepdims = bool(int(attrs.get("keepdims", 1)))
    else:
        ctx.check_attrs(node, attrs, ())
    _need_rank(ctx, node, st, (3,), "only NCHW images are supported")
    _no_pending(ctx, node, st)
    c = st.shape[2]
    name = node.name or None
    if op == "GlobalMaxPool":
        return _Item(L.AdaptiveMaxPool2D(1, name=name), node), _State((1, 1, c)), False
    if not keepdims or flatten_next:
        return _Item(L.GlobalAvgPool2D(name=name), node), _State((c,)), flatten_next
    return _Item(L.AdaptiveAvgPool2D(1, name=name), node), _State((1, 1, c)), False


def _softmax(ctx, node, st):
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("axis",))
    nd = len(st.shape) + 1
    if ctx.opset >= 13:
        axis = int(attrs.get("axis", -1)) % nd
    else:
        axis = int(attrs.get("axis", 1)) % nd
        if axis != nd - 1 and not (axis == 1 and nd == 2):
            raise ctx.fail(node, f"opset {ctx.opset} Softmax with axis={axis} on a {nd}-D "
                                 "tensor (softmax over the flattened trailing axes) is not "
                                 "supported")
    if nd == 4:
        return {1: 3, 2: 1, 3: 2}[axis]  # NCHW axis -> NHWC axis
    if nd == 2 and axis == 1:
        return 1
    raise ctx.fail(node, f"softmax over axis {axis} of a {nd}-D tensor is not supported")


def _transpose(ctx, node, st, first, last, input_is_nchw, nxt):
    """Transposes that only move between NCHW and NHWC views cnnx already has.

    Returns True when the next node flattens an NHWC view (Keras-style graphs:
    Transpose(0, 2, 3, 1) -> Flatten), which is cnnx's own Flatten order.
    """
    attrs = ctx.attrs(node)
    perm = [int(p) for p in attrs.get("perm", [])]
    if first and perm == [0, 3, 1, 2] and len(st.shape) == 3 and not input_is_nchw:
        return False  # an NHWC graph input turned into NCHW: exactly cnnx's own layout
    if last and perm == [0, 2, 3, 1] and len(st.shape) == 3:
        return False  # an NCHW output turned into NHWC: cnnx's output already is
    if perm == [0, 2, 3, 1] and len(st.shape) == 3 and _is_flatten(ctx, nxt, st):
        return True
    raise ctx.fail(node, f"Transpose with perm={perm} is supported only as NHWC->NCHW right "
                         "after the input, NCHW->NHWC right before the output, or "
                         "NCHW->NHWC right before a Flatten")


def _fuse_activation(items, kind, alpha=None):
    """Turn ``kind`` into the previous Conv/Dense/Residual's activation if possible."""
    from .. import layers as L

    if not items:
        return False
    prev = items[-1]
    if prev.kind not in ("conv", "dense", "residual") or prev.layer.activation is not None:
        return False
    if kind == "leaky_relu" and abs(alpha - 0.01) > 1e-9:
        return False  # fused leaky ReLUs use the default slope
    if kind == "softmax" and prev.kind == "residual":
        return False
    layer = prev.layer
    if prev.kind == "conv":
        prev.layer = L.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                              padding=layer.padding, dilation_rate=layer.dilation_rate,
                              groups=layer.groups, activation=kind, use_bias=layer.use_bias,
                              name=layer.name)
    elif prev.kind == "dense":
        prev.layer = L.Dense(layer.units, activation=kind, use_bias=layer.use_bias,
                             name=layer.name)
    else:
        prev.layer = L.Residual(layer.block, shortcut=layer.shortcut if layer.shortcut_spec
                                == "layers" else "identity", activation=kind, name=layer.name)
    return True


def _convert(ctx, items, st, input_is_nchw, is_top):
    """Items (nodes/_Res) -> list of _Item, and the state after them."""
    from .. import layers as L

    out = []
    skip_next = hwc_flatten = False
    for idx, it in enumerate(items):
        if skip_next:
            skip_next = False
            continue
        if hwc_flatten and (isinstance(it, _Res) or it.op_type not in ("Flatten", "Reshape")):
            hwc_flatten = False
        nxt = items[idx + 1] if idx + 1 < len(items) else None
        if isinstance(it, _Res):
            if st.chw is not None:
                _no_pending(ctx, it.node, st)
            b_items, b_st = _convert(ctx, it.block, st, input_is_nchw, False)
            s_items, s_st = _convert(ctx, it.shortcut, st, input_is_nchw, False)
            if b_st.shape != s_st.shape or b_st.chw or s_st.chw:
                raise ctx.fail(it.node, f"the two summands have shapes "
                                        f"{('N',) + _nchw(b_st.shape)} and "
                                        f"{('N',) + _nchw(s_st.shape)}: broadcasting is not "
                                        "supported")
            block = [i.layer for i in b_items]
            short = [i.layer for i in s_items] if s_items else "identity"
            layer = L.Residual(block, shortcut=short, activation=None,
                               name=it.node.name or None)
            item = _Item(layer, it.node, kind="residual")
            item.children = b_items + s_items
            out.append(item)
            st = b_st
            continue
        node = ctx.current = it
        op = node.op_type
        data = _data_inputs(ctx, node)
        if op == "Conv":
            out.append(_conv(ctx, node, st))
            st = _State(_build_layer(ctx, node, st, out[-1].layer))
        elif op in ("MaxPool", "AveragePool"):
            out.append(_pool(ctx, node, st))
            st = _State(_build_layer(ctx, node, st, out[-1].layer))
        elif op in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean"):
            flat_next = nxt is not None and _is_flatten(ctx, nxt, _State((1, 1, st.shape[-1])))
            item, st, skip_next = _global_pool(ctx, node, st, flat_next)
            out.append(item)
        elif op in ("Flatten", "Reshape"):
            item, st = _flatten(ctx, node, st)
            if hwc_flatten:  # flattening an NHWC view: already cnnx's (h, w, c) order
                st.chw = None
                hwc_flatten = False
            if item is not None:
                out.append(item)
        elif op == "Gemm":
            item, st = _gemm(ctx, node, st)
            out.append(item)
        elif op == "MatMul":
            item, st = _matmul(ctx, node, st)
            out.append(item)
        elif op == "Add":
            st = _bias_add(ctx, node, st, out)
        elif op in _ACTS:
            attrs = ctx.attrs(node)
            ctx.check_attrs(node, attrs, ("alpha",) if op == "LeakyRelu" else ())
            kind = _ACTS[op]
            alpha = float(attrs.get("alpha", 0.01))
            if not _fuse_activation(out, kind, alpha):
                name = node.name or None
                layer = {"relu": lambda: L.ReLU(name=name),
                         "leaky_relu": lambda: L.LeakyReLU(alpha, name=name),
                         "sigmoid": lambda: L.Sigmoid(name=name),
                         "tanh": lambda: L.Tanh(name=name)}[kind]()
                out.append(_Item(layer, node))
        elif op == "Softmax":
            axis = _softmax(ctx, node, st)
            fused = axis == len(st.shape) and _fuse_activation(out, "softmax")
            if not fused:
                out.append(_Item(L.Softmax(axis=axis, name=node.name or None), node))
        elif op == "BatchNormalization":
            out.append(_batch_norm(ctx, node, st))
        elif op == "Dropout":
            out.append(_dropout(ctx, node, st))
        elif op == "Identity":
            pass
        elif op == "Transpose":
            hwc_flatten = _transpose(ctx, node, st, is_top and idx == 0,
                                     is_top and idx == len(items) - 1, input_is_nchw, nxt)
        else:
            raise ctx.unsupported_op(node)
        if len(data) != 1 and op != "Add":
            raise ctx.fail(node, f"takes {len(data)} computed inputs")
        outs = [o for o in node.output if o]
        if op not in ("Transpose", "Identity", "Dropout") and outs:
            _check_shape(ctx, node, outs[0], st)
    return out, st


def _build_layer(ctx, node, st, layer):
    try:
        return layer.build(st.shape)
    except ValueError as e:
        raise ctx.fail(node, f"does not fit its input {('N',) + _nchw(st.shape)} ({e})") from None


def _check_shape(ctx, node, value, st):
    """Compare our shape with ONNX shape inference's (when it knows it)."""
    known = ctx.value_shapes.get(value)
    if known is None or any(d is None for d in known[1:]):
        return
    mine = _nchw(st.shape)
    if tuple(known[1:]) != tuple(mine) and not (st.chw is None and len(known) == 4 and
                                                 len(mine) == 1 and known[2:] == (1, 1)):
        raise ctx.fail(node, f"output shape {('N',) + tuple(mine)} in cnnx but "
                             f"{tuple(known)} in the ONNX graph")


def _assign(items):
    for it in items:
        layer = it.layer
        for k, v in it.params.items():
            dst = layer.params.get(k)
            if dst is None or dst.shape != v.shape:
                raise ONNXConversionError(f"internal: parameter {k} of {layer.name}")
            dst[...] = v
        for k, v in it.buffers.items():
            layer.buffers[k][...] = v
        _assign(getattr(it, "children", []))


def _shape_of(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else None)
    return tuple(dims)


def from_onnx(proto, input_shape=None, where="proto"):
    """A cnnx ``Sequential`` from an ONNX ``ModelProto`` (see :func:`load`)."""
    from ..models import Sequential

    onnx = require_onnx()
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"{where}: expected an onnx.ModelProto, got {type(proto).__name__}")
    graph = proto.graph
    if len(graph.node) > MAX_NODES:
        raise ONNXConversionError(f"{where}: the graph has {len(graph.node)} nodes, more than "
                                  f"cnnx imports (cnnx.onnx.MAX_NODES = {MAX_NODES})")
    ext = external_tensors(onnx, proto)
    if ext:
        raise ONNXConversionError(f"{where}: tensor {ext[0].name!r} keeps its data in an external "
                                  "file; load the model with cnnx.onnx.load(path), which reads "
                                  "it from the model's folder")
    ctx = _Ctx(onnx, proto, where)
    for o in proto.opset_import:
        if o.domain not in ("", "ai.onnx"):
            used = [n for n in graph.node if n.domain == o.domain]
            if used:
                raise ctx.fail(used[0], f"operator domain {o.domain!r} not supported (only the "
                                        "standard ONNX domain)")
    inputs = [i for i in graph.input if i.name not in ctx.consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ONNXConversionError(f"{where}: the graph has {len(inputs)} inputs and "
                                  f"{len(graph.output)} outputs; cnnx models have one of each")
    inp, outp = inputs[0], graph.output[0]
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ONNXConversionError(f"{where}: input {inp.name!r} has element type "
                                  f"{onnx.TensorProto.DataType.Name(inp.type.tensor_type.elem_type)}"
                                  "; cnnx takes float32")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + \
                list(inferred.graph.input):
            s = _shape_of(vi)
            if s is not None:
                ctx.value_shapes[vi.name] = s
    except Exception:  # noqa: BLE001 - shape inference is only a cross-check
        pass
    in_dims = _shape_of(inp)
    if in_dims:
        ctx.batch = in_dims[0]
    nodes = _fold_constants(ctx, list(graph.node), inp.name, in_dims)
    # an NHWC input (as cnnx exports) starts with Transpose perm [0, 3, 1, 2]
    first = next((n for n in nodes if inp.name in n.input), None)
    nhwc_in = (first is not None and first.op_type == "Transpose" and
               [int(p) for p in ctx.attrs(first).get("perm", [])] == [0, 3, 1, 2])
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
    else:
        if in_dims is None or len(in_dims) not in (2, 4) or any(d is None for d in in_dims[1:]):
            raise ONNXConversionError(
                f"{where}: input {inp.name!r} has shape {in_dims}; cnnx needs a fixed (C, H, W) "
                "or (features,) after the batch (pass input_shape=(H, W, C))")
        if len(in_dims) == 2:
            shape = (in_dims[1],)
        elif nhwc_in:
            shape = tuple(in_dims[1:])
        else:
            shape = (in_dims[2], in_dims[3], in_dims[1])
    if len(shape) not in (1, 3):
        raise ValueError(f"input_shape: expected (H, W, C) or (features,), got {shape}")
    if outp.name == inp.name:
        raise ONNXConversionError(f"{where}: the graph's output is its input")
    items = _structure(ctx, nodes, inp.name, outp.name)
    try:
        conv, st = _convert(ctx, items, _State(shape), not nhwc_in, True)
    except ONNXConversionError:
        raise
    except (ValueError, TypeError) as e:  # a cnnx layer refused the node's settings
        raise ctx.fail(ctx.current, f"cannot be expressed in cnnx ({e})") from None
    if st.chw is not None:
        c, h, w = st.chw
        raise ONNXConversionError(f"{where}: the output is a flattened {c}x{h}x{w} NCHW tensor; "
                                  "cnnx would give its features in (h, w, c) order")
    if not conv:
        raise ONNXConversionError(f"{where}: the graph has no operator cnnx can run")
    model = Sequential([it.layer for it in conv], input_shape=shape,
                       name=graph.name or "Sequential")
    _assign(conv)
    return model


def load(path, input_shape=None):
    """Load an ONNX model file as a cnnx ``Sequential`` that takes NHWC input.

    Args:
        path: an ``.onnx`` file; weights stored as external data (e.g. the
            ``.onnx.data`` file of ``torch.onnx.export(..., dynamo=True)``)
            are read from beside it.
        input_shape: ``(H, W, C)`` (or ``(features,)``) when the graph's input
            has dynamic spatial sizes; normally read from the graph.

    Supported: Conv (any pads/auto_pad, strides, dilations, group), MaxPool,
    AveragePool (floor mode, or ceil mode where it gives the same size),
    GlobalAveragePool / ReduceMean over H, W, GlobalMaxPool, Flatten /
    Reshape to (N, features), Gemm, MatMul (+ Add bias), Relu, LeakyRelu,
    Sigmoid, Tanh, Softmax, BatchNormalization (inference form), Dropout,
    Identity, residual ``Add`` of two branches, and the constant shape
    arithmetic exporters emit. An NCHW graph takes NHWC input in cnnx; a graph
    exported by cnnx (NHWC input + Transpose) is read back as it was.

    The model is not compiled; call ``compile`` to train it further with
    ``fit``. Raises :class:`~cnnx.onnx.ONNXConversionError` naming the operator
    and node for anything it cannot run exactly.
    """
    onnx = require_onnx()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such file {path!r}")
    try:
        proto = onnx.load(path, load_external_data=False)  # cnnx reads external data itself
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise ValueError(f"path: {path!r} is not a readable ONNX model ({e})") from None
    inline_external_data(onnx, proto, os.path.dirname(os.path.abspath(path)), where="path")
    return from_onnx(proto, input_shape, where="path")
