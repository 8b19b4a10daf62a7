"""Running an op graph op by op from Python.

Three uses: the reference the int8 plan is tested against (the int8 ops
call the kernels directly, not through the plan), the fallback for models a
plan cannot run (a layer with no lowering runs its own Python forward), and
calibration of such models. Float ops run as one-op plans, so they compute
what the compiled plan computes.
"""

import numpy as np

from .. import _core
from ..graph import plans
from ..graph.ir import OpKind, PoolKind

__all__ = ["run_graph"]

_QACT = {None: _core.QActivation.none, "relu": _core.QActivation.relu}


def _requantize(x, xq, yq):
    if tuple(xq) == tuple(yq):
        return x
    return _core.quantize(_core.dequantize(x, *xq), *yq)


def _int8(op, ins):
    a = op.attrs
    k = op.kind
    m = ins[0].shape[0]
    if k == OpKind.quantize:
        return _core.quantize(ins[0], *a["q"])
    if k == OpKind.dequantize:
        return _core.dequantize(ins[0], *a["q"])
    if k in (OpKind.qconv2d, OpKind.qdense):
        w = a["weights"]
        y_q = a["y_q"]
        out = _core.QOutput.u8 if y_q is not None else _core.QOutput.f32
        ys, yz = y_q if y_q is not None else (1.0, 0)
        xs, xz = a["x_q"]
        if k == OpKind.qconv2d:
            h, wd, c, _kh, _kw, _co, sh, sw, dh, dw, pt, pb, pl, pr, groups = a["geometry"]
            x = ins[0].reshape(m, h, wd, c)
            return _core.qconv2d_forward(
                x,
                w.packed.packed(),
                (sh, sw),
                (dh, dw),
                (pt, pb, pl, pr),
                groups,
                xs,
                xz,
                w.bias,
                _QACT[a["act"]],
                out,
                ys,
                yz,
                w.bias_acc,
            )
        x = ins[0].reshape(m, a["in_features"])
        return _core.qgemm(
            x, w.packed.packed(), xs, xz, w.bias, _QACT[a["act"]], out, ys, yz, w.bias_acc
        )
    if k == OpKind.qpool:
        kh, kw, sh, sw, pt, pb, pl, pr = a["window"]
        x = ins[0].reshape((m,) + op.inputs[0].shape)
        if a["pool_kind"] == PoolKind.max:
            return _core.qmax_pool2d(x, (kh, kw), (sh, sw), (pt, pb, pl, pr))
        y = _core.qavg_pool2d(
            x, (kh, kw), (sh, sw), (pt, pb, pl, pr), a["count_include_pad"], *a["x_q"], *a["y_q"]
        )
        return y.reshape((m,) + op.output.shape)
    if k == OpKind.qadd:
        return _core.qadd(ins[0], ins[1], *a["a_q"], *a["b_q"], *a["y_q"], a["act"] == "relu")
    if k == OpKind.qconcat:
        axis = a["axis"] + 1
        parts = [
            _requantize(x.reshape((m,) + v.shape), q, a["y_q"])
            for x, v, q in zip(ins, op.inputs, a["in_q"])
        ]
        return np.concatenate(parts, axis=axis)
    raise ValueError(f"op: {k} is not an int8 op")


def _float(op, ins):
    if op.kind == OpKind.python:
        layer = op.attrs["python_layer"]
        xs = [x.reshape((x.shape[0],) + v.shape) for x, v in zip(ins, op.inputs)]
        return layer._forward(xs if len(xs) > 1 else xs[0], False)
    ids, sizes, arrays = {}, [], []
    for v, x in zip(op.inputs, ins):
        if v.id not in ids:
            ids[v.id] = len(sizes)
            sizes.append(v.size)
            arrays.append(np.ascontiguousarray(x, np.float32))
    ids[op.output.id] = len(sizes)
    sizes.append(op.output.size)
    plan = _core.InferencePlan(sizes, len(arrays), 1)
    plan.add(plans.op_spec(op, ids))
    return plan.run(arrays)[0]


def run_graph(g, xs, capture=(), on_value=None):
    """The outputs of graph ``g`` (a :class:`~cnnx.graph.ir.Graph` or its int8
    form) for input batches ``xs``, op by op; ``capture``: value ids whose
    arrays are returned too, as ``(outputs, {id: array})``. ``on_value(op,
    array)``, if given, sees each op's output as it is computed."""
    from ..graph.quantize import INT8_KINDS

    m = xs[0].shape[0]
    vals = {v.id: x for v, x in zip(g.inputs, xs)}
    keep = {v.id for v in g.outputs} | set(capture)
    last = {}
    for i, op in enumerate(g.ops):
        for v in op.inputs:
            last[v.id] = i
    for i, op in enumerate(g.ops):
        ins = [vals[v.id] for v in op.inputs]
        y = _int8(op, ins) if op.kind in INT8_KINDS else _float(op, ins)
        y = np.asarray(y).reshape((m,) + op.output.shape)
        vals[op.output.id] = y
        if on_value is not None:
            on_value(op, y)
        for v in op.inputs:
            if last.get(v.id) == i and v.id not in keep:
                vals.pop(v.id, None)
    outs = [vals[v.id] for v in g.outputs]
    return outs, {vid: vals[vid] for vid in capture}
