"""Quantized ONNX graphs -> a cnnx int8 model (:func:`load_quantized`).

Reads the two forms ONNX Runtime's ``quantize_static`` writes (and cnnx's
own QDQ export):

- QDQ: float operators between ``DequantizeLinear`` and ``QuantizeLinear``
  nodes, weights as int8 initializers through a (per-channel)
  ``DequantizeLinear``, biases as int32 in accumulator units;
- QOperator: ``QLinearConv`` / ``QLinearMatMul`` (and ONNX Runtime's
  ``com.microsoft`` ``QGemm``, ``QLinearAdd``, ``QLinearAveragePool``,
  ``QLinearGlobalAveragePool``, ``QLinearConcat``).

How: the graph is rewritten into a float graph (every quantized operator
becomes DequantizeLinear -> float operator -> QuantizeLinear, then each
QuantizeLinear -> DequantizeLinear pair is removed, its (scale, zero point)
remembered for the tensor it quantized, and every dequantized constant is
folded into a float initializer). The float graph loads with
:func:`cnnx.onnx.from_onnx`, whose layers are named after the ONNX nodes;
the remembered parameters then attach to the values of the model's op
graph (:mod:`cnnx.graph.quantize`) through those names, and each int8
layer's weights are recovered exactly from its float weights and weight
scales (``w_q = round(w / scale)``, checked). The result is a
:class:`~cnnx.quant.QuantizedModel` that runs in the int8 path, with the
imported graph's semantics: uint8 storage exactly where the graph quantizes,
int32 biases added as QLinearConv adds them. Int8 activations (signed zero
points) are stored as uint8 with the zero point moved by 128 (the same
real values).

A tensor quantized twice with different parameters, weights with a
non-zero zero point, a quantized graph input or output, or an operator
outside these forms raise :class:`~cnnx.onnx.ONNXConversionError` naming the
node, or (weights that cannot be recovered exactly) keep that layer in
float32 with a warning.
"""

import os
import warnings

import numpy as np

from ._common import ONNXConversionError, require_onnx

__all__ = ["load_quantized", "from_onnx_quantized", "is_quantized"]

_QOPS = (
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "QLinearAdd",
    "QLinearAveragePool",
    "QLinearGlobalAveragePool",
    "QLinearConcat",
    "QGemm",
)
# operators that commute with dequantization (QOperator graphs apply them to uint8)
_TRANSPARENT = ("MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity")
# operators a loaded layer absorbs into the layer before it (the loader fuses them)
_ABSORBED = ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "Identity", "Dropout", "Transpose")


def is_quantized(proto):
    """True when the graph holds quantization operators."""
    return any(n.op_type in _QOPS for n in proto.graph.node)


class _Rewriter:
    def __init__(self, onnx, proto, where):
        self.onnx = onnx
        self.where = where
        self.h = onnx.helper
        self.nh = onnx.numpy_helper
        g = proto.graph
        self.consts = {i.name: self.nh.to_array(i) for i in g.initializer}
        for n in g.node:
            if n.op_type == "Constant" and not n.input:
                a = {x.name: self.h.get_attribute_value(x) for x in n.attribute}
                if "value" in a:
                    self.consts[n.output[0]] = self.nh.to_array(a["value"])
        self.nodes = [n for n in g.node if not (n.op_type == "Constant" and not n.input)]
        self.names = set()
        self.counter = 0
        self.params = {}  # float tensor name -> (scale, zero point as uint8)
        self.wscales = {}  # float weight tensor name -> (scale array, axis)
        self.out_consts = {}  # new float initializers

    def fail(self, node, msg):
        return ONNXConversionError(f"{self.where}: {node.op_type} (node {node.name!r}): {msg}")

    def fresh(self, base):
        self.counter += 1
        name = f"{base}__q{self.counter}"
        while name in self.names:
            self.counter += 1
            name = f"{base}__q{self.counter}"
        self.names.add(name)
        return name

    def const(self, node, name, what):
        if name not in self.consts:
            raise self.fail(node, f"{what} ({name!r}) must be a constant")
        return self.consts[name]

    def act_params(self, node, scale_name, zp_name):
        """(scale, uint8 zero point) of a per-tensor activation quantization."""
        s = np.asarray(self.const(node, scale_name, "the scale"), np.float32)
        z = (
            np.asarray(self.const(node, zp_name, "the zero point"))
            if zp_name
            else np.zeros((), np.uint8)
        )
        if s.size != 1 or z.size != 1:
            raise self.fail(
                node,
                "activations need one scale and zero point per tensor "
                f"(got shapes {s.shape} and {z.shape})",
            )
        zv = int(z.reshape(-1)[0])
        if z.dtype == np.int8:
            zv += 128  # int8 activations as uint8: q + 128 with zero point + 128
        elif z.dtype != np.uint8:
            raise self.fail(node, f"activation zero points must be uint8 or int8, got {z.dtype}")
        sv = float(s.reshape(-1)[0])
        if not (np.isfinite(sv) and sv > 0):
            raise self.fail(node, f"the scale must be finite and > 0, got {sv}")
        return sv, zv

    # -- step 1: quantized operators -> DQ -> float op -> Q ----------------------------
    def expand(self):
        out = []
        for n in self.nodes:
            self.names.update(n.output)
            self.names.update(n.input)
        for n in self.nodes:
            t = n.op_type
            if t == "QLinearConv":
                out += self._qlinear(n, "Conv", [(0, 1, 2)], (3, 4, 5), (6, 7), bias=8)
            elif t == "QLinearMatMul":
                out += self._qlinear(n, "MatMul", [(0, 1, 2)], (3, 4, 5), (6, 7))
            elif t == "QGemm":
                a = {x.name: self.h.get_attribute_value(x) for x in n.attribute}
                if int(a.get("transA", 0)):
                    raise self.fail(n, "transA is not supported")
                y = (7, 8) if len(n.input) > 7 and n.input[7] else None
                out += self._qlinear(
                    n,
                    "Gemm",
                    [(0, 1, 2)],
                    (3, 4, 5),
                    y,
                    bias=6,
                    w_axis=0 if int(a.get("transB", 0)) else 1,
                )
            elif t == "QLinearAdd":
                out += self._qlinear(n, "Add", [(0, 1, 2), (3, 4, 5)], None, (6, 7))
            elif t in ("QLinearAveragePool", "QLinearGlobalAveragePool"):
                out += self._qlinear(
                    n, t[len("QLinear") :], [(0, 1, 2)], None, (3, 4), keep_attrs=("channels_last",)
                )
            elif t == "QLinearConcat":
                k = (len(n.input) - 2) // 3
                ins = [(2 + 3 * i, 3 + 3 * i, 4 + 3 * i) for i in range(k)]
                out += self._qlinear(n, "Concat", ins, None, (0, 1))
            else:
                if n.domain not in ("", "ai.onnx"):
                    raise self.fail(n, f"operator domain {n.domain!r} not supported")
                out.append(n)
        self.nodes = out

    def _dq(self, x, s, z, base, axis=None):
        y = self.fresh(base)
        ins = [x, s] + ([z] if z else [])
        kw = {} if axis is None else {"axis": axis}
        return self.h.make_node(
            "DequantizeLinear", ins, [y], name=self.fresh(base + "/dq"), **kw
        ), y

    def _qlinear(self, n, float_op, xs, w, y, bias=None, keep_attrs=None, w_axis=None):
        if n.attribute and keep_attrs is not None:
            a = {x.name: self.h.get_attribute_value(x) for x in n.attribute}
            if int(a.get("channels_last", 0)):
                raise self.fail(n, "channels_last is not supported")
        nodes, ins = [], []
        for xi, si, zi in xs:
            d, name = self._dq(n.input[xi], n.input[si], n.input[zi], n.output[0])
            nodes.append(d)
            ins.append(name)
        if w is not None:
            wi, si, zi = w
            axis = w_axis if w_axis is not None else (0 if float_op == "Conv" else 1)
            scale = np.asarray(self.const(n, n.input[si], "the weight scale"), np.float32)
            d, name = self._dq(
                n.input[wi],
                n.input[si],
                n.input[zi],
                n.output[0] + "_W",
                axis if scale.size > 1 else None,
            )
            nodes.append(d)
            ins.append(name)
            if bias is not None and len(n.input) > bias and n.input[bias]:
                xs_ = np.float32(
                    np.asarray(self.const(n, n.input[xs[0][1]], "x_scale")).reshape(-1)[0]
                )
                bscale = (xs_ * scale).astype(np.float32)
                sname = self.fresh(n.output[0] + "_Bscale")
                self.consts[sname] = bscale.reshape(-1) if bscale.size > 1 else bscale.reshape(())
                d, name = self._dq(
                    n.input[bias], sname, None, n.output[0] + "_B", 0 if bscale.size > 1 else None
                )
                nodes.append(d)
                ins.append(name)
        attrs = {
            x.name: self.h.get_attribute_value(x)
            for x in n.attribute
            if keep_attrs is None or x.name not in keep_attrs
        }
        if y is None:  # a float output (QGemm without y_scale)
            nodes.append(
                self.h.make_node(
                    float_op, ins, [n.output[0]], name=n.name or self.fresh(float_op), **attrs
                )
            )
            return nodes
        mid = self.fresh(n.output[0] + "_f")
        nodes.append(
            self.h.make_node(float_op, ins, [mid], name=n.name or self.fresh(float_op), **attrs)
        )
        nodes.append(
            self.h.make_node(
                "QuantizeLinear",
                [mid, n.input[y[0]], n.input[y[1]]],
                [n.output[0]],
                name=self.fresh(n.output[0] + "/q"),
            )
        )
        return nodes

    # -- step 1b: layout and max operators on uint8 tensors (QOperator graphs) -----------
    def dequantize_transparent(self):
        """MaxPool, Flatten, Reshape... applied to a quantized tensor commute with
        dequantization: they run on the dequantized tensor, and their output is
        quantized again with the same parameters."""
        quantized = {}  # tensor -> (scale name, zero point name)
        out = []
        for n in self.nodes:
            if n.op_type == "QuantizeLinear":
                quantized[n.output[0]] = (n.input[1], n.input[2] if len(n.input) > 2 else "")
                out.append(n)
                continue
            if n.op_type == "DequantizeLinear" or not any(i in quantized for i in n.input):
                out.append(n)
                continue
            if n.op_type not in _TRANSPARENT or n.input[0] not in quantized:
                raise self.fail(
                    n,
                    "reads a quantized (uint8) tensor; cnnx reads those through "
                    "DequantizeLinear or the QLinear operators only",
                )
            s, z = quantized[n.input[0]]
            d, name = self._dq(n.input[0], s, z, n.output[0] + "_in")
            out.append(d)
            n.input[0] = name
            y = n.output[0]
            mid = self.fresh(y + "_f")
            n.output[0] = mid
            out.append(n)
            out.append(
                self.h.make_node(
                    "QuantizeLinear", [mid, s] + ([z] if z else []), [y], name=self.fresh(y + "/q")
                )
            )
            quantized[y] = (s, z)
        self.nodes = out

    # -- step 2: constants through DequantizeLinear -> float initializers ------------------
    def fold_constant_dq(self):
        out = []
        for n in self.nodes:
            if n.op_type == "DequantizeLinear" and n.input[0] in self.consts:
                q = np.asarray(self.consts[n.input[0]])
                s = np.asarray(self.const(n, n.input[1], "the scale"), np.float32)
                z = (
                    np.asarray(self.const(n, n.input[2], "the zero point"))
                    if len(n.input) > 2 and n.input[2]
                    else np.zeros(s.shape, q.dtype)
                )
                a = {x.name: self.h.get_attribute_value(x) for x in n.attribute}
                axis = int(a.get("axis", 1))
                if s.size > 1:
                    shape = [1] * q.ndim
                    axis = axis % q.ndim
                    shape[axis] = -1
                    sb, zb = s.reshape(shape), z.reshape(shape).astype(np.int64)
                else:
                    sb, zb = s.reshape(()), z.reshape(()).astype(np.int64)
                f = ((q.astype(np.int64) - zb).astype(np.float32) * sb).astype(np.float32)
                self.consts[n.output[0]] = f
                self.out_consts[n.output[0]] = f
                if q.dtype == np.int8 and q.ndim >= 2:
                    self.wscales[n.output[0]] = (
                        s.reshape(-1),
                        axis if s.size > 1 else None,
                        bool(np.all(z == 0)),
                    )
                continue
            out.append(n)
        self.nodes = out

    # -- step 3: Q -> DQ pairs removed, their parameters kept ------------------------------
    def strip_pairs(self, graph_inputs, graph_outputs):
        consumers = {}
        for n in self.nodes:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        rename = {}
        dead = set()
        for n in self.nodes:
            if n.op_type != "QuantizeLinear":
                continue
            users = consumers.get(n.output[0], [])
            if (
                not users
                or any(u.op_type != "DequantizeLinear" for u in users)
                or n.output[0] in graph_outputs
            ):
                raise self.fail(
                    n,
                    "a quantized tensor must be read through DequantizeLinear "
                    "only (cnnx takes and gives float32 at the graph's edges)",
                )
            p = self.act_params(n, n.input[1], n.input[2] if len(n.input) > 2 else None)
            src = n.input[0]
            while src in rename:
                src = rename[src]
            for u in users:
                pu = self.act_params(u, u.input[1], u.input[2] if len(u.input) > 2 else None)
                if pu != p:
                    raise self.fail(u, "dequantizes with other parameters than its QuantizeLinear")
                rename[u.output[0]] = src
                dead.add(id(u))
            old = self.params.get(src)
            if old is not None and old != p:
                raise self.fail(n, f"tensor {src!r} is quantized twice with different parameters")
            self.params[src] = p
            dead.add(id(n))
        for n in self.nodes:
            if id(n) in dead:
                continue
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                raise self.fail(
                    n,
                    "a DequantizeLinear of a computed tensor must follow a "
                    "QuantizeLinear (cnnx takes float32 inputs)",
                )
        # A graph output read through a pair (ONNX Runtime quantizes the
        # logits too): the tensor it quantized takes the output's name.
        back = {}
        for o in graph_outputs:
            r = o
            while r in rename:
                r = rename[r]
            if r != o:
                if r in graph_inputs or r in back:
                    raise ONNXConversionError(
                        f"{self.where}: output {o!r} is a quantized copy "
                        "of an input or of another output"
                    )
                back[r] = o
                if r in self.params:
                    self.params[o] = self.params.pop(r)

        def final(name):
            while name in rename:
                name = rename[name]
            return back.get(name, name)

        out = []
        for n in self.nodes:
            if id(n) in dead:
                continue
            for k, i in enumerate(n.input):
                n.input[k] = final(i)
            for k, o in enumerate(n.output):
                n.output[k] = back.get(o, o)
            out.append(n)
        self.nodes = out
        return rename


def _unique_names(proto):
    seen = set()
    for i, n in enumerate(proto.graph.node):
        base = n.name or f"{n.op_type}_{i}"
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        n.name = name
        seen.add(name)


def _float_proto(onnx, proto, where):
    """(float ModelProto, {tensor: (scale, zp)}, {weight tensor: (scales, axis, symmetric)})."""
    work = onnx.ModelProto()
    work.CopyFrom(proto)
    _unique_names(work)
    rw = _Rewriter(onnx, work, where)
    rw.expand()
    rw.dequantize_transparent()
    rw.fold_constant_dq()
    g = work.graph
    outputs = {o.name for o in g.output}
    rename = rw.strip_pairs({i.name for i in g.input}, outputs)
    del rename
    h = onnx.helper
    keep_inits = [i for i in g.initializer if any(i.name in n.input for n in rw.nodes)]
    new_inits = [
        onnx.numpy_helper.from_array(np.ascontiguousarray(a), name)
        for name, a in rw.out_consts.items()
        if any(name in n.input for n in rw.nodes)
    ]
    # constants created for biases' scales are only read by folded DequantizeLinear nodes
    graph = h.make_graph(
        rw.nodes,
        g.name or "model",
        list(g.input),
        list(g.output),
        initializer=keep_inits + new_inits,
    )
    opsets = [o for o in work.opset_import if o.domain in ("", "ai.onnx")]
    fp = h.make_model(graph, opset_imports=opsets, producer_name=work.producer_name)
    fp.ir_version = work.ir_version
    return fp, rw.params, rw.wscales, {n.name: n for n in rw.nodes}


def _consumers(nodes):
    out = {}
    for n in nodes.values():
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _value_tensors(model, fp_nodes, graph_inputs):
    """For each value of the model's prepared op graph: the ONNX tensors that
    hold it (a layer's output, then through what the loader absorbed or
    resolved as a view), last first."""
    from ..graph.quantize import prepare
    from ..graph.ir import OpKind

    layer_names = set()
    raw = model.to_graph()
    for op in raw.ops:
        if op.layer is not None:
            layer_names.add(op.layer.name)
    users = _consumers(fp_nodes)

    def chain(tensor):
        out = [tensor]
        while True:
            us = users.get(out[-1], [])
            if len(us) != 1 or us[0].name in layer_names or us[0].op_type not in _ABSORBED:
                return out
            out.append(us[0].output[0])

    # raw value id -> tensors
    tensors = {}
    for v, name in zip(raw.inputs, graph_inputs):
        tensors[v.id] = chain(name)
    for op in raw.ops:
        node = fp_nodes.get(op.layer.name) if op.layer is not None else None
        if node is not None and op.kind != OpKind.python:
            tensors[op.output.id] = chain(node.output[0])
    # views: a reshape's or dropout's output is its input in the prepared graph
    alias = {}
    for op in raw.ops:
        if op.kind in (OpKind.reshape, OpKind.dropout):
            alias[op.output.id] = op.inputs[0].id
    merged = {}
    for vid, ts in tensors.items():
        root = vid
        while root in alias:
            root = alias[root]
        merged.setdefault(root, []).extend(ts)
    g = prepare(model.to_graph())
    return g, {v.id: merged.get(v.id, []) for v in g.values}


def _recover_weights(op, x_q, wscale, name):
    """The QWeights of a conv2d / dense op whose float weights came from int8
    ones with per-channel ``wscale`` (scales, axis, symmetric); None if not exact."""
    from ..graph.quantize import QWeights

    a = op.attrs
    if a.get("bn") is not None:
        return None
    w = np.asarray(a["kernel"].array, np.float32)
    c = w.shape[-1]
    scales, axis, symmetric = wscale
    if not symmetric:
        return None
    s = (
        np.broadcast_to(np.asarray(scales, np.float32).reshape(-1), (c,))
        if scales.size in (1, c)
        else None
    )
    if s is None or not (np.all(np.isfinite(s)) and np.all(s > 0)):
        return None
    q = np.rint(w / s)
    if (
        q.min(initial=0) < -128
        or q.max(initial=0) > 127
        or not np.array_equal((q.astype(np.float32) * s).astype(np.float32), w)
    ):
        return None
    bias_acc = None
    if a["bias"] is not None:
        b = np.asarray(a["bias"].array, np.float32)
        bscale = (np.float32(x_q[0]) * s).astype(np.float32)
        bq = np.rint(b.astype(np.float64) / bscale.astype(np.float64))
        if np.abs(bq).max(initial=0) < 2**30 and np.array_equal(
            (bq.astype(np.int64).astype(np.float32) * bscale).astype(np.float32), b
        ):
            bias_acc = bq.astype(np.int32)
        else:
            warnings.warn(
                f"{name}: the bias of layer {op.name!r} is not an int32 multiple of "
                "x_scale * w_scale; it is added in float",
                stacklevel=4,
            )
            return QWeights(
                q.astype(np.int8), s, b, None, a["geometry"][-1] if op.kind.name == "conv2d" else 1
            )
    return QWeights(
        q.astype(np.int8), s, None, bias_acc, a["geometry"][-1] if op.kind.name == "conv2d" else 1
    )


def from_onnx_quantized(proto, input_shape=None, where="proto"):
    """A :class:`~cnnx.quant.QuantizedModel` from a quantized ``ModelProto``."""
    from ..graph.quantize import weight_ops
    from ..quant import QuantizedModel
    from ._load import from_onnx

    onnx = require_onnx()
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"{where}: expected an onnx.ModelProto, got {type(proto).__name__}")
    fp, tparams, wscales, fp_nodes = _float_proto(onnx, proto, where)
    model = from_onnx(fp, input_shape, where=where)
    inputs = [
        i.name for i in fp.graph.input if i.name not in {x.name for x in fp.graph.initializer}
    ]
    g, tensors = _value_tensors(model, fp_nodes, inputs)
    params = {}
    for v in g.values:
        for t in reversed(tensors.get(v.id, [])):  # the last tensor with parameters
            if t in tparams:
                params[v.id] = tparams[t]
                break
    weights = {}
    for op in weight_ops(g):
        node = fp_nodes.get(op.layer.name) if op.layer is not None else None
        x_q = params.get(op.inputs[0].id)
        if node is None or x_q is None or len(node.input) < 2:
            continue
        ws = wscales.get(node.input[1])
        if ws is None:
            continue
        qw = _recover_weights(op, x_q, ws, where)
        if qw is None:
            warnings.warn(
                f"{where}: the int8 weights of layer {op.name!r} cannot be recovered "
                "exactly (zero points, or folded constants); it runs in float32",
                stacklevel=3,
            )
            continue
        weights[op.output.id] = qw
    return QuantizedModel(
        model, params, weights, {"method": "imported", "source": proto.producer_name or "onnx"}
    )


def load_quantized(path, input_shape=None):
    """Load a quantized ONNX model file (QDQ or QLinearConv form) as a
    :class:`~cnnx.quant.QuantizedModel` taking NHWC float32 input (see the
    module docstring). ``input_shape`` as :func:`cnnx.onnx.load`."""
    onnx = require_onnx()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such file {path!r}")
    try:
        proto = onnx.load(path)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise ValueError(f"path: {path!r} is not a readable ONNX model ({e})") from None
    return from_onnx_quantized(proto, input_shape, where="path")
