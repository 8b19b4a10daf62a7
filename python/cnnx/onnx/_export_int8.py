"""A quantized cnnx model -> an ONNX QDQ graph (``cnnx.onnx.export(q, path)``).

The graph is written from the model's int8 graph (:mod:`cnnx.graph.quantize`)
in the QDQ form ONNX Runtime's ``quantize_static`` writes, so ONNX Runtime
fuses it into its int8 kernels (QLinearConv and friends):

- a uint8 value is a ``QuantizeLinear`` -> ``DequantizeLinear`` pair with its
  (scale, zero point); readers take the dequantized tensor;
- an int8 convolution is ``Conv`` on the dequantized input, the int8
  weights through a per-channel ``DequantizeLinear`` (axis 0 of OIHW) and the
  bias as int32 in accumulator units (``round(bias / (x_scale * w_scale))``,
  what ONNX Runtime's quantizer writes; cnnx adds its bias in float, so the
  two differ by a fraction of the output's last bit); its ReLU is a ``Relu``
  before the output's QuantizeLinear (ONNX Runtime folds it);
- int8 dense layers likewise (``Gemm``, per-column weight scales on axis 1);
- int8 pools, adds and concatenations are the float operators between
  DequantizeLinear and QuantizeLinear nodes;
- layers cnnx runs in float32 are exported as float operators (batch norm
  folded into its convolution as cnnx folds it).

Layouts as in :mod:`cnnx.onnx._export`: NHWC inputs and outputs, NCHW inside.
"""

import numpy as np

from .._version import __version__
from ..graph.ir import OpKind
from ..graph.quantize import _float_weights
from ._common import ONNXConversionError, require_onnx
from ._export import (
    _EXPORTERS,
    _NCHW_TO_NHWC,
    _NHWC_TO_NCHW,
    _T,
    _Graph,
    _activation,
    _check_opset,
    _io_names,
    _materialise,
)

__all__ = ["to_onnx_qdq"]


def _flat(g, t, base):
    """t as flat features (a Flatten of an image keeps (c, h, w) order, see _T)."""
    if len(t.shape) == 1:
        return t
    h, w, c = t.shape
    y = g.node("Flatten", [t.name], base + "/flatten", axis=1)
    return _T(y, (h * w * c,), None if h * w == 1 else (c, h, w))


def _scalar(g, base, value, dtype):
    """A rank-0 initializer (g.const makes arrays of rank >= 1)."""
    name = g.unique(base)
    g.inits.append(g.onnx.numpy_helper.from_array(np.array(value, dtype=dtype), name))
    return name


def _qdq(g, t, q, base):
    """A QuantizeLinear -> DequantizeLinear pair with q = (scale, zero_point)."""
    s = _scalar(g, base + "/scale", q[0], np.float32)
    z = _scalar(g, base + "/zero_point", q[1], np.uint8)
    qt = g.node("QuantizeLinear", [t.name, s, z], base + "/q")
    return _T(g.node("DequantizeLinear", [qt, s, z], base + "/dq"), t.shape, t.chw)


def _weights_dq(g, base, wq, scale, axis):
    w = g.const(base + "/W_int8", wq, np.int8)
    s = g.const(base + "/W_scale", scale)
    z = g.const(base + "/W_zero_point", np.zeros(scale.shape, np.int8), np.int8)
    return g.node("DequantizeLinear", [w, s, z], base + "/W", axis=int(axis))


def _bias_dq(g, base, w, x_scale):
    """The bias as int32 in accumulator units, dequantized with scale x_scale * w_scale."""
    scale = (np.float32(x_scale) * w.scale).astype(np.float32)
    if w.bias_acc is not None:
        acc = w.bias_acc.astype(np.int64)
        if w.bias is not None:
            acc = acc + np.rint(w.bias / scale).astype(np.int64)
    elif w.bias is not None:
        acc = np.rint(w.bias.astype(np.float64) / scale.astype(np.float64)).astype(np.int64)
    else:
        return None
    if np.abs(acc).max(initial=0) >= 2**31:
        raise ONNXConversionError(
            f"model: the bias of {base!r} does not fit int32 in accumulator units"
        )
    b = g.const(base + "/B_int32", acc.astype(np.int32), np.int32)
    s = g.const(base + "/B_scale", scale)
    z = g.const(base + "/B_zero_point", np.zeros(scale.shape, np.int32), np.int32)
    return g.node("DequantizeLinear", [b, s, z], base + "/B", axis=0)


def _qconv(g, op, ts):
    a = op.attrs
    t = _materialise(g, ts[0], op.name)
    w = a["weights"]
    _h, _w, _c, kh, kw, _co, sh, sw, dh, dw, pt, pb, pl, pr, groups = a["geometry"]
    ins = [t.name, _weights_dq(g, op.name, w.w.transpose(3, 2, 0, 1), w.scale, 0)]
    b = _bias_dq(g, op.name, w, a["x_q"][0])
    if b is not None:
        ins.append(b)
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
    if a["act"] == "relu":
        y = g.node("Relu", [y], op.name)
    return _T(y, op.output.shape)


def _qdense(g, op, ts):
    a = op.attrs
    t = _flat(g, ts[0], op.name)
    w = a["weights"]
    wq = w.w
    if t.chw is not None:  # features in (c, h, w) order: reorder the rows
        c, h, wd = t.chw
        wq = wq.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1)
    ins = [t.name, _weights_dq(g, op.name, wq, w.scale, 1)]
    b = _bias_dq(g, op.name, w, a["x_q"][0])
    if b is not None:
        ins.append(b)
    y = g.node("Gemm", ins, op.name)
    if a["act"] == "relu":
        y = g.node("Relu", [y], op.name)
    return _T(y, op.output.shape)


def _qpool(g, op, ts):
    from ..graph.ir import PoolKind

    a = op.attrs
    t = ts[0]
    kh, kw, sh, sw, pt, pb, pl, pr = a["window"]
    h, w, _c = t.shape
    if a["pool_kind"] == PoolKind.global_avg:
        y = g.node("GlobalAveragePool", [t.name], op.name)
        return _T(g.node("Flatten", [y], op.name, axis=1), op.output.shape)
    extra = (
        {} if a["pool_kind"] == PoolKind.max else {"count_include_pad": int(a["count_include_pad"])}
    )
    y = g.node(
        "MaxPool" if a["pool_kind"] == PoolKind.max else "AveragePool",
        [t.name],
        op.name,
        kernel_shape=[int(kh), int(kw)],
        strides=[int(sh), int(sw)],
        pads=[int(pt), int(pl), int(pb), int(pr)],
        **extra,
    )
    return _T(y, op.output.shape)


def _qadd(g, op, ts):
    ts = [_materialise(g, t, op.name) for t in ts]
    y = g.node("Add", [t.name for t in ts], op.name)
    if op.attrs["act"] == "relu":
        y = g.node("Relu", [y], op.name)
    return _T(y, op.output.shape)


def _qconcat(g, op, ts):
    return _EXPORTERS[OpKind.concat](g, op, ts)


def _fconv(g, op, ts):
    """A float convolution or dense op, with its folded batch norm applied."""
    a = op.attrs
    w, b = _float_weights(op)
    if op.kind == OpKind.conv2d:
        t = _materialise(g, ts[0], op.name)
        _h, _w, _c, kh, kw, _co, sh, sw, dh, dw, pt, pb, pl, pr, groups = a["geometry"]
        ins = [t.name, g.const(op.name + "/W", w.transpose(3, 2, 0, 1))]
        if b is not None:
            ins.append(g.const(op.name + "/B", b))
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
    else:
        t = _flat(g, ts[0], op.name)
        if t.chw is not None:
            c, h, wd = t.chw
            w = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1)
        ins = [t.name, g.const(op.name + "/W", w)]
        if b is not None:
            ins.append(g.const(op.name + "/B", b))
        y = g.node("Gemm", ins, op.name)
    return _activation(g, _T(y, op.output.shape), a["act"], op.name, a["alpha"])


_Q_EXPORTERS = {
    OpKind.qconv2d: _qconv,
    OpKind.qdense: _qdense,
    OpKind.qpool: _qpool,
    OpKind.qadd: _qadd,
    OpKind.qconcat: _qconcat,
    OpKind.conv2d: _fconv,
    OpKind.dense: _fconv,
}


def to_onnx_qdq(model, opset=None, input_name="input", output_name="output"):
    """The ONNX ``ModelProto`` (QDQ form) of a :class:`~cnnx.quant.QuantizedModel`."""
    onnx = require_onnx()
    opset = _check_opset(onnx, opset)
    q = model.int8_graph()
    in_names = _io_names("input", len(q.inputs), input_name, "input_name")
    out_names = _io_names("output", len(q.outputs), output_name, "output_name")
    if len(set(in_names + out_names)) != len(in_names) + len(out_names):
        raise ValueError("output_name: input and output names must all differ")
    for v in q.inputs:
        if len(v.shape) not in (1, 3):
            raise ValueError(
                f"model: input shape {v.shape} is not exported (images (n_H, n_W, "
                "n_C) or flat features (n,))"
            )
    helper = onnx.helper
    g = _Graph(onnx, opset)
    g.names.update(in_names + out_names)
    tensors = {}
    for v, name in zip(q.inputs, in_names):
        if len(v.shape) == 3:
            tensors[v.id] = _T(
                g.node("Transpose", [name], name + "/to_nchw", perm=list(_NHWC_TO_NCHW)), v.shape
            )
        else:
            tensors[v.id] = _T(name, v.shape)
    for op in q.ops:
        ts = [tensors[v.id] for v in op.inputs]
        if op.kind == OpKind.quantize:
            t = _qdq(g, ts[0], op.attrs["q"], op.name)
        elif op.kind == OpKind.dequantize:
            t = ts[0]  # readers already take the dequantized tensor
        else:
            make = _Q_EXPORTERS.get(op.kind) or _EXPORTERS.get(op.kind)
            if make is None:
                raise ONNXConversionError(
                    f"model: op {op.kind.name} ({op.name!r}) has no ONNX export"
                )
            t = make(g, op, ts)
            if op.output.id in q.u8:
                t = _qdq(g, t, q.u8[op.output.id], op.name)
        tensors[op.output.id] = t
    f32 = onnx.TensorProto.FLOAT
    outputs = []
    for v, name, shape in zip(q.outputs, out_names, model.output_shapes):
        t = tensors[v.id]
        if len(shape) == 1:
            t = _materialise(g, _flat(g, t, name), name)
        elif len(t.shape) == 3:
            t = _T(
                g.node("Transpose", [t.name], name + "/to_nhwc", perm=list(_NCHW_TO_NHWC)), t.shape
            )
        g.nodes.append(helper.make_node("Identity", [t.name], [name], name=g.unique(name)))
        outputs.append(helper.make_tensor_value_info(name, f32, ["N", *shape]))
    inputs = [
        helper.make_tensor_value_info(name, f32, ["N", *v.shape])
        for v, name in zip(q.inputs, in_names)
    ]
    graph = helper.make_graph(g.nodes, model.name or "cnnx", inputs, outputs, initializer=g.inits)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="cnnx",
        producer_version=__version__,
        doc_string="Exported by cnnx (int8, QDQ): inputs NHWC float32, as model.predict",
    )
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    return proto
