"""The int8 pass over the op graph (used by :func:`cnnx.quantize` and the
ONNX QDQ import).

It works on the graph every model lowers into, in three steps:

1. :func:`prepare`: the inference views and the fusions int8 stores absorb
   (batch norm folded into the convolution or dense op before it, ReLU into
   the store of a convolution, dense op or add).
2. :func:`int8_form` says which ops have an int8 kernel (convolution of any
   groups, dense, max / average / global average pooling, adaptive pools
   with whole windows, a two-input add, concatenation); :func:`settle`
   decides, from the values that have quantisation parameters, which of
   them run in int8 and which parameters are worth keeping.
3. :func:`lower` writes the executable graph (:class:`QGraph`): every value
   with parameters is stored as uint8 (``real = scale * (q - zero_point)``),
   every other as float32. An op runs in int8 when its inputs are uint8 (and
   a pool, add or concatenation also has parameters for its output); a
   convolution or dense op stores uint8 when its output has parameters and
   float32 otherwise (a classifier's logits, a layer before a sigmoid).
   Other ops run in float32, with ``quantize`` / ``dequantize`` ops at their
   edges; the graph's outputs are float32.

Parameters are keyed by the ids of the prepared graph's values (the ids
lowering gives them, so a model rebuilt from its config has the same keys);
quantised weights by the id of their op's output.
"""

import math

import numpy as np

from .. import _core
from ..functional import _int8 as Q
from . import passes
from .ir import Act, EltwiseKind, Graph, OpKind, PoolKind

__all__ = [
    "prepare",
    "int8_form",
    "settle",
    "lower",
    "QGraph",
    "quantize_layer_weights",
    "QWeights",
    "weight_ops",
    "degenerate_reason",
]

#: int8 kernels' largest reduction depth (kQGemmMaxK)
MAX_K = 65536

_QACT = {Act.none: None, Act.relu: "relu"}


def prepare(g):
    """The inference views and the fusions an int8 store can absorb (in place)."""
    passes.resolve_views(g, training=False)
    passes.prune(g)
    passes.fold_batch_norm(g)
    passes.fuse_activations(
        g, allowed={Act.relu}, producers=(OpKind.conv2d, OpKind.dense, OpKind.eltwise)
    )
    passes.prune(g)
    return g


def _whole_windows(op):
    """An adaptive pool as a plain (kh, kw, sh, sw, 0, 0, 0, 0) window when every
    output size divides its input size (the exact window rule then agrees), else None."""
    h, w, _c = op.inputs[0].shape
    oh, ow = op.attrs["output_hw"]
    if h % oh or w % ow:
        return None
    sh, sw = h // oh, w // ow
    return (h - (oh - 1) * sh, w - (ow - 1) * sw, sh, sw, 0, 0, 0, 0)


def int8_form(op):
    """The int8 op kind that can compute ``op`` (None: float32 only) and, for
    pools, ``(pool kind, window)`` of the int8 form."""
    a = op.attrs
    k = op.kind
    if k == OpKind.conv2d:
        _h, _w, c, kh, kw, _co, *_rest, groups = a["geometry"]
        if len(op.inputs) == 1 and a["act"] in _QACT and kh * kw * (c // groups) <= MAX_K:
            return OpKind.qconv2d, None
    elif k == OpKind.dense:
        if a["act"] in _QACT and a["in_features"] <= MAX_K:
            return OpKind.qdense, None
    elif k == OpKind.pool:
        pk = a["pool_kind"]
        if pk in (PoolKind.max, PoolKind.avg):
            return OpKind.qpool, (pk, a["window"])
        if pk == PoolKind.global_avg:
            return OpKind.qpool, (pk, None)
        if pk in (PoolKind.adaptive_avg, PoolKind.adaptive_max):
            win = _whole_windows(op)
            if win is not None:
                return OpKind.qpool, (
                    PoolKind.max if pk == PoolKind.adaptive_max else PoolKind.avg,
                    win,
                )
    elif k == OpKind.eltwise:
        if a["eltwise"] == EltwiseKind.add and len(op.inputs) == 2 and a["act"] in _QACT:
            return OpKind.qadd, None
    elif k == OpKind.concat:
        return OpKind.qconcat, None
    return None, None


def _keeps_input_params(op):
    """A max pool's uint8 output has its input's parameters."""
    kind, extra = int8_form(op)
    return kind == OpKind.qpool and extra[0] == PoolKind.max


def weight_ops(g):
    """The conv2d / dense ops with an int8 form (the ones whose weights are quantised)."""
    return [op for op in g.ops if int8_form(op)[0] in (OpKind.qconv2d, OpKind.qdense)]


def _runs_int8(op, params, weights, exclude=()):
    kind, _ = int8_form(op)
    if kind is None or op.name in exclude or not all(v.id in params for v in op.inputs):
        return False
    if kind in (OpKind.qconv2d, OpKind.qdense):
        return op.output.id in weights
    if kind == OpKind.qpool and _keeps_input_params(op):
        got = params.get(op.output.id)
        return got is None or tuple(got) == tuple(params[op.inputs[0].id])
    return op.output.id in params


def wanted_values(g, weights, exclude=()):
    """The values :func:`cnnx.quantize` gives parameters before calibration:
    every input of an op with an int8 form, and the output of a pool, add or
    concatenation with one (a conv / dense output only when an int8 op reads
    it). Returns ``(calibrated ids, {max pool output id: input id})``."""
    want = set()
    for op in g.ops:
        kind, _ = int8_form(op)
        if (
            kind is None
            or op.name in exclude
            or (kind in (OpKind.qconv2d, OpKind.qdense) and op.output.id not in weights)
        ):
            continue
        want.update(v.id for v in op.inputs)
        if kind in (OpKind.qpool, OpKind.qadd, OpKind.qconcat):
            want.add(op.output.id)
    inherit = {}
    for op in g.ops:  # in order: a chain of max pools inherits from its first input
        if op.output.id in want and _keeps_input_params(op):
            inherit[op.output.id] = op.inputs[0].id
    return want - set(inherit), inherit


def settle(g, params, weights, exclude=()):
    """Drop parameters no int8 op uses: a value keeps its parameters when an
    op reading it runs in int8, or when an int8 pool / add / concatenation
    writes it. Also drops the int8 islands with no convolution or dense op
    (a pool between two float layers would only add quantize / dequantize
    steps and their error). Repeats until stable (a dropped value may stop an
    op from running in int8). Returns the kept ``{id: (scale, zero_point)}``."""
    params = dict(params)
    users = g.consumers()
    producer = {op.output.id: op for op in g.ops}
    while True:
        runs = {id(op) for op in g.ops if _runs_int8(op, params, weights, exclude)}
        keep = {}
        for vid, p in params.items():
            readers = users.get(vid, [])
            src = producer.get(vid)
            if any(id(r) in runs for r in readers) or (
                src is not None
                and id(src) in runs
                and src.kind in (OpKind.pool, OpKind.eltwise, OpKind.concat)
            ):
                keep[vid] = p
        for vid in _island_inputs(g, runs, users, producer):
            keep.pop(vid, None)
        if keep.keys() == params.keys():
            return keep
        params = keep


def _island_inputs(g, runs, users, producer):
    """Values entering int8 islands without a conv2d / dense op: the groups of
    int8 ops joined by the values they pass each other. Values also read by
    int8 ops outside such an island are kept."""
    parent = {}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    ops = [op for op in g.ops if id(op) in runs]
    for op in ops:
        parent[id(op)] = id(op)
    for op in ops:
        for v in op.inputs:
            src = producer.get(v.id)
            if src is not None and id(src) in runs:
                parent[find(id(op))] = find(id(src))
    anchored = {find(id(op)) for op in ops if op.kind in (OpKind.conv2d, OpKind.dense)}
    drop = set()
    for op in ops:
        if find(id(op)) in anchored:
            continue
        for v in op.inputs:
            src = producer.get(v.id)
            if src is not None and id(src) in runs:
                continue
            if not any(id(r) in runs and find(id(r)) in anchored for r in users.get(v.id, [])):
                drop.add(v.id)
    return drop


def degenerate_reason(lo, hi):
    """Why a calibrated range [lo, hi] cannot give a usable scale (None if it can)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo == 0.0:
        return f"its calibrated range is [{lo:g}, {hi:g}] (scale 0)"
    scale = np.float32((hi - lo) / 255.0)
    if not (np.isfinite(scale) and scale >= np.finfo(np.float32).tiny * 2**24):
        return f"its calibrated range [{lo:g}, {hi:g}] gives a scale of {float(scale):g}"
    return None


# ---------------------------------------------------------------- weights


class QWeights:
    """A conv2d / dense op's int8 weights: ``w`` (int8, HWIO or (n_in, n_out)),
    ``scale`` (float32 per output channel), ``bias`` (float32, real units, or
    None), ``bias_acc`` (int32 in accumulator units, or None), ``groups``.
    ``packed`` packs them for the active kernel (once per kernel)."""

    __slots__ = ("w", "scale", "bias", "bias_acc", "groups", "_packed")

    def __init__(self, w, scale, bias=None, bias_acc=None, groups=1):
        self.w = np.ascontiguousarray(w, np.int8)
        self.scale = np.ascontiguousarray(scale, np.float32)
        self.bias = None if bias is None else np.ascontiguousarray(bias, np.float32)
        self.bias_acc = None if bias_acc is None else np.ascontiguousarray(bias_acc, np.int32)
        self.groups = int(groups)
        self._packed = None

    @property
    def packed(self):
        if self._packed is None:
            if self.w.ndim == 4:
                self._packed = Q.qpack_conv2d(self.w, self.scale, self.groups)
            else:
                self._packed = Q.qpack_matmul(self.w, self.scale)
        return self._packed


def _float_weights(op):
    """The op's float weights and bias with a folded batch norm applied (as the
    fp32 plan folds it: per output channel s = gamma / sqrt(var + eps))."""
    a = op.attrs
    w = np.asarray(a["kernel"].array, np.float32)
    c = w.shape[-1]
    b = np.asarray(a["bias"].array, np.float32) if a["bias"] is not None else None
    bn = a.get("bn")
    if bn is not None:
        gamma = (
            np.asarray(bn["gamma"].array, np.float32)
            if bn["gamma"] is not None
            else np.ones(c, np.float32)
        )
        beta = (
            np.asarray(bn["beta"].array, np.float32)
            if bn["beta"] is not None
            else np.zeros(c, np.float32)
        )
        mean = np.asarray(bn["moving_mean"].array, np.float32)
        var = np.asarray(bn["moving_var"].array, np.float32)
        s = (gamma / np.sqrt(var + np.float32(bn["epsilon"]))).astype(np.float32)
        w = (w * s).astype(np.float32)
        b = ((b if b is not None else np.zeros(c, np.float32)) - mean) * s + beta
    return w, (None if b is None else b.astype(np.float32))


def quantize_layer_weights(op):
    """Symmetric per-output-channel int8 weights of a conv2d / dense op
    (batch norm folded first). Raises ValueError naming the layer for
    non-finite weights."""
    w, b = _float_weights(op)
    if not np.isfinite(w).all() or (b is not None and not np.isfinite(b).all()):
        raise ValueError(
            f"model: layer {op.name!r} has NaN or infinite weights (after folding "
            "its batch norm); it cannot be quantized"
        )
    wq, scale = Q.quantize_weights(w, axis=-1)
    groups = op.attrs["geometry"][-1] if op.kind == OpKind.conv2d else 1
    return QWeights(wq, scale, b, None, groups)


# ---------------------------------------------------------------- lowering


class QGraph(Graph):
    """The executable int8 graph: a :class:`~cnnx.graph.ir.Graph` whose
    ``u8`` values (a dict id -> (scale, zero_point)) hold uint8, the others
    float32. ``precision`` maps each prepared-graph op to ``"int8"`` or
    ``"fp32"``; each op keeps the ``layer`` it came from."""

    def __init__(self):
        super().__init__()
        self.u8 = {}
        self.precision = {}

    def add(self, kind, inputs, shape, src, **attrs):
        v = self.emit(kind, inputs, shape, **attrs)
        v.producer.layer = src.layer if src is not None else None
        v.producer.name = src.name if src is not None else kind.name
        v.name = v.producer.name
        return v


def _pool_attrs(op, x_q, y_q):
    kind, (pk, window) = int8_form(op)
    h, w, _c = op.inputs[0].shape
    if window is None:
        window = (h, w, 1, 1, 0, 0, 0, 0)
    return dict(
        pool_kind=pk,
        window=tuple(window),
        count_include_pad=bool(op.attrs.get("count_include_pad", False)),
        x_q=x_q,
        y_q=y_q,
    )


def lower(g, params, weights, exclude=()):
    """The :class:`QGraph` of prepared graph ``g`` with value parameters
    ``params`` ({id: (scale, zero_point)}) and int8 weights ``weights``
    ({op output id: QWeights}); ops named in ``exclude`` run in float32.
    See the module docstring."""
    q = QGraph()
    stored = {}  # prepared value id -> its QGraph value (uint8 when it has parameters)
    as_f32 = {}  # prepared value id -> a float32 QGraph value (a dequantized copy)

    def put(v, nv, src):
        """nv (float32) holds v: store it quantized when v has parameters."""
        if v.id in params:
            p = tuple(params[v.id])
            qv = q.add(OpKind.quantize, [nv], v.shape, src, q=p)
            q.u8[qv.id] = p
            stored[v.id] = qv
            as_f32[v.id] = None
        else:
            stored[v.id] = nv
            as_f32[v.id] = nv

    def f32(v):
        got = as_f32.get(v.id)
        if got is None:
            nv = stored[v.id]
            got = q.add(OpKind.dequantize, [nv], v.shape, v.producer, q=q.u8[nv.id])
            as_f32[v.id] = got
        return got

    for v in g.inputs:
        put(v, q.input(v.shape, v.name), None)
    for op in g.ops:
        if _runs_int8(op, params, weights, exclude):
            q.precision[id(op)] = "int8"
            kind, _ = int8_form(op)
            xs = [stored[v.id] for v in op.inputs]
            in_q = [tuple(params[v.id]) for v in op.inputs]
            out_q = params.get(op.output.id)
            out_q = None if out_q is None else tuple(out_q)
            a = op.attrs
            if kind in (OpKind.qconv2d, OpKind.qdense):
                extra = (
                    dict(geometry=a["geometry"])
                    if kind == OpKind.qconv2d
                    else dict(in_features=a["in_features"], out_features=a["out_features"])
                )
                y = q.add(
                    kind,
                    xs,
                    op.output.shape,
                    op,
                    weights=weights[op.output.id],
                    x_q=in_q[0],
                    y_q=out_q,
                    act=_QACT[a["act"]],
                    **extra,
                )
            elif kind == OpKind.qpool:
                if _keeps_input_params(op):
                    out_q = in_q[0]
                y = q.add(kind, xs, op.output.shape, op, **_pool_attrs(op, in_q[0], out_q))
            elif kind == OpKind.qadd:
                y = q.add(
                    kind,
                    xs,
                    op.output.shape,
                    op,
                    a_q=in_q[0],
                    b_q=in_q[1],
                    y_q=out_q,
                    act=_QACT[a["act"]],
                )
            else:
                y = q.add(kind, xs, op.output.shape, op, axis=a["axis"], in_q=in_q, y_q=out_q)
            if out_q is not None:
                q.u8[y.id] = out_q
                stored[op.output.id] = y
                as_f32[op.output.id] = None
            else:
                stored[op.output.id] = as_f32[op.output.id] = y
        else:
            q.precision[id(op)] = "fp32"
            y = q.add(op.kind, [f32(v) for v in op.inputs], op.output.shape, op, **dict(op.attrs))
            put(op.output, y, op)
    q.outputs = [f32(v) for v in g.outputs]
    return q


def scale_zero_point(lo, hi):
    """uint8 ``(scale, zero_point)`` for a range (0 included, as ONNX Runtime's MinMax)."""
    return Q.quantization_params(lo, hi)


def qparams_ok(p):
    s, z = p
    return math.isfinite(s) and s > 0 and 0 <= int(z) <= 255 and np.float32(s) > 0


# The plan spec of each int8 kind, from a QGraph op (see cnnx/op_spec.h).
def _qact(name):
    return {None: _core.QActivation.none, "relu": _core.QActivation.relu}[name]


def qop_spec(op, ids):
    """The ``_core.OpSpec`` of an int8 QGraph op; ``ids`` maps value ids to buffers."""
    a = op.attrs
    spec = _core.OpSpec(op.kind, [ids[v.id] for v in op.inputs], ids[op.output.id])
    k = op.kind
    if k == OpKind.quantize:
        spec.count = op.output.size
        spec.set_quant([], a["q"])
    elif k == OpKind.dequantize:
        spec.count = op.output.size
        spec.set_quant([a["q"]])
    elif k in (OpKind.qconv2d, OpKind.qdense):
        if k == OpKind.qconv2d:
            spec.conv = a["geometry"]
        else:
            spec.dense = (a["in_features"], a["out_features"])
        w = a["weights"]
        spec.set_qweights(w.packed.packed(), w.bias, w.bias_acc)
        y_q = a["y_q"]
        spec.set_quant(
            [a["x_q"]],
            y_q if y_q is not None else (1.0, 0),
            _core.QOutput.u8 if y_q is not None else _core.QOutput.f32,
            _qact(a["act"]),
        )
    elif k == OpKind.qpool:
        spec.pool_kind = a["pool_kind"]
        spec.pool_input = op.inputs[0].shape
        spec.pool_window = a["window"]
        spec.count_include_pad = a["count_include_pad"]
        spec.set_quant([a["x_q"]], a["y_q"])
    elif k == OpKind.qadd:
        spec.count = op.output.size
        spec.set_quant([a["a_q"], a["b_q"]], a["y_q"], _core.QOutput.u8, _qact(a["act"]))
    elif k == OpKind.qconcat:
        axis = a["axis"]
        spec.outer = math.prod(op.output.shape[:axis])
        spec.inner = [math.prod(v.shape[axis:]) for v in op.inputs]
        spec.set_quant(list(a["in_q"]), a["y_q"])
    else:
        raise ValueError(f"op: {k} is not an int8 op")
    return spec


INT8_KINDS = (
    OpKind.quantize,
    OpKind.dequantize,
    OpKind.qconv2d,
    OpKind.qdense,
    OpKind.qpool,
    OpKind.qadd,
    OpKind.qconcat,
)


def compile_int8(q):
    """A :class:`~cnnx.graph.plans.CompiledInference` running QGraph ``q`` as one
    C++ call (consumed), or None when an op has no plan form (a Python layer):
    uint8 values take a quarter of the floats in the plan's buffers."""
    from . import plans

    shapes = [v.shape for v in q.outputs]
    try:
        plans._distinct_outputs(q)
        sizes, buffer_of = plans.assign_buffers(
            q, lambda v: (v.size + 3) // 4 if v.id in q.u8 else v.size
        )
        plan = _core.InferencePlan(sizes, len(q.inputs), len(q.outputs))
        for op in q.ops:
            plan.add(
                qop_spec(op, buffer_of) if op.kind in INT8_KINDS else plans.op_spec(op, buffer_of)
            )
    except plans.Unsupported:
        return None
    return plans.CompiledInference(plan, shapes)
