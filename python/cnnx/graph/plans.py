"""Op graph -> the compiled C++ plans (``_core.InferencePlan``, ``_core.TrainPlan``).

Both plans take the same op descriptions (``_core.OpSpec``, one C++ header:
``cpp/include/cnnx/op_spec.h``); :func:`op_spec` writes one from a graph op,
through a table keyed by op kind. The inference plan gets buffers assigned
by liveness (a value's buffer is reused once its last reader has run), so a
chunk of images fits in the core's cache; the training step keeps every
value, since backward reads them.

A graph with an op no plan runs (a user's Python layer; dropout while
training) compiles to None and the model runs layer by layer.
"""

import math

from .. import _core
from . import passes
from .ir import GROUPED_ACTS, Act, OpKind, PoolKind

__all__ = [
    "Unsupported",
    "op_spec",
    "compile_inference",
    "compile_training",
    "CompiledInference",
    "CompiledTraining",
    "assign_buffers",
    "Head",
    "loss_heads",
    "plan_loss",
]


class Unsupported(Exception):
    """The graph holds an op the plans do not run."""


def _arr(ref):
    return None if ref is None else ref.array


def _grad(ref):
    return None if ref is None else ref.grad


def _weights(spec, a, training):
    k, b = a["kernel"], a["bias"]
    if training:
        spec.set_weights(k.array, _arr(b), k.grad, _grad(b))
    else:
        spec.set_weights(k.array, _arr(b))
    spec.act = a["act"]
    spec.alpha = a["alpha"]
    spec.beta = a.get("beta", 0.0)
    bn = a.get("bn")
    if bn is not None:
        spec.set_batch_norm(
            _arr(bn["gamma"]),
            _arr(bn["beta"]),
            bn["moving_mean"].array,
            bn["moving_var"].array,
            bn["epsilon"],
        )
    spec.relu_mask_applied_later = bool(a.get("relu_mask_applied_later", False))


def _conv(spec, op, training):
    spec.conv = op.attrs["geometry"]
    spec.k = op.output.shape[-1]
    _weights(spec, op.attrs, training)


def _dense(spec, op, training):
    a = op.attrs
    spec.dense = (a["in_features"], a["out_features"])
    spec.k = a["out_features"]
    _weights(spec, a, training)


def _pool(spec, op, training):
    a = op.attrs
    spec.pool_kind = a["pool_kind"]
    spec.pool_input = op.inputs[0].shape
    spec.pool_window = a["window"]
    spec.count_include_pad = a["count_include_pad"]
    if a["pool_kind"] in (PoolKind.adaptive_avg, PoolKind.adaptive_max):
        spec.pool_output = a["output_hw"]
    spec.pool_dilation = a.get("dilation", (1, 1))
    spec.pool_ceil_mode = a.get("ceil_mode", False)
    spec.mask_grad_by_output = bool(a.get("mask_grad_by_output", False))


def _batch_norm(spec, op, training):
    a = op.attrs
    spec.channels = op.output.shape[-1]
    spec.count = op.output.size
    gamma, beta = a["gamma"], a["beta"]
    spec.set_batch_norm(
        _arr(gamma),
        _arr(beta),
        a["moving_mean"].array,
        a["moving_var"].array,
        a["epsilon"],
        a["momentum"],
        _grad(gamma) if training else None,
        _grad(beta) if training else None,
    )


def _activation(spec, op, training):
    a = op.attrs
    if a["act"] in GROUPED_ACTS and a["axis"] != len(op.output.shape) - 1:
        raise Unsupported("softmax over an axis other than the last")
    spec.act = a["act"]
    spec.alpha = a["alpha"]
    spec.beta = a.get("beta", 0.0)
    spec.count = op.output.size
    spec.k = op.output.shape[-1] if op.output.shape else 1


def _eltwise(spec, op, training):
    spec.eltwise = op.attrs["eltwise"]
    spec.act = op.attrs["act"]
    spec.alpha = op.attrs["alpha"]
    spec.beta = op.attrs.get("beta", 0.0)
    spec.count = op.output.size
    spec.k = op.output.shape[-1] if op.output.shape else 1


def _concat(spec, op, training):
    axis = op.attrs["axis"]
    spec.outer = math.prod(op.output.shape[:axis])
    spec.inner = [math.prod(v.shape[axis:]) for v in op.inputs]


def _rescale(spec, op, training):
    a = op.attrs
    spec.channels, spec.chan_inner, spec.count = a["channels"], a["inner"], op.output.size
    spec.set_weights(a["scale"], a["offset"])


def _normalize(spec, op, training):
    a = op.attrs
    spec.channels, spec.chan_inner, spec.count = a["channels"], a["inner"], op.output.size
    spec.set_normalization(a["mean"].array, a["variance"].array, a["epsilon"])


def _augment(spec, op, training):
    spec.set_augment(op.attrs["spec"], op.attrs["seed_cell"] if training else None)


def _conv_transpose(spec, op, training):
    spec.conv_transpose = op.attrs["geometry"]
    spec.k = op.output.shape[-1]
    _weights(spec, op.attrs, training)


def _pad(spec, op, training):
    a = op.attrs
    spec.set_pad(a["image"], a["mode"], a["pads"], a["value"])


def _upsample(spec, op, training):
    spec.set_upsample(op.attrs["image"], op.attrs["mode"], *op.attrs["factors"])


def _space_depth(spec, op, training):
    spec.set_space_depth(op.attrs["image"], op.attrs["block_size"], op.attrs["order"])


def _channel_shuffle(spec, op, training):
    shape = op.attrs["image"]
    spec.set_channel_shuffle(math.prod(shape) // shape[-1], shape[-1], op.attrs["groups"])


def _transpose(spec, op, training):
    spec.set_transpose(op.attrs["image"], op.attrs["perm"])


def _prelu(spec, op, training):
    a = op.attrs
    spec.count = op.output.size
    spec.channels = a["slopes"]
    s = a["slope"]
    if training:
        spec.set_weights(s.array, None, s.grad)
    else:
        spec.set_weights(s.array)


def _lrn(spec, op, training):
    a = op.attrs
    spec.count = op.output.size
    spec.channels = op.output.shape[-1]
    spec.lrn = (a["size"], a["alpha"], a["beta"], a["bias"])


def _affine_norm(spec, op, training):
    a = op.attrs
    spec.count = op.output.size
    spec.channels = op.output.shape[-1]
    spec.eps = a["epsilon"]
    spec.groups = a.get("groups", 1)
    gamma, beta = a["gamma"], a["beta"]
    if training:
        spec.set_affine(_arr(gamma), _arr(beta), _grad(gamma), _grad(beta))
    else:
        spec.set_affine(_arr(gamma), _arr(beta))


_SPECS = {
    OpKind.conv2d: _conv,
    OpKind.dense: _dense,
    OpKind.pool: _pool,
    OpKind.batch_norm: _batch_norm,
    OpKind.activation: _activation,
    OpKind.eltwise: _eltwise,
    OpKind.concat: _concat,
    OpKind.conv_transpose2d: _conv_transpose,
    OpKind.pad2d: _pad,
    OpKind.upsample2d: _upsample,
    OpKind.depth_to_space: _space_depth,
    OpKind.space_to_depth: _space_depth,
    OpKind.channel_shuffle: _channel_shuffle,
    OpKind.transpose: _transpose,
    OpKind.prelu: _prelu,
    OpKind.lrn: _lrn,
    OpKind.group_norm: _affine_norm,
    OpKind.layer_norm: _affine_norm,
}
_SPECS.update({OpKind.rescale: _rescale, OpKind.normalize: _normalize, OpKind.augment: _augment})


def op_spec(op, ids, training=False):
    """The ``_core.OpSpec`` of graph op ``op``; ``ids`` maps value ids to plan ids."""
    make = _SPECS.get(op.kind)
    if make is None:
        raise Unsupported(f"{op.kind.name} ({op.name})")
    spec = _core.OpSpec(op.kind, [ids[v.id] for v in op.inputs], ids[op.output.id])
    make(spec, op, training)
    return spec


def _copy_op(g, v):
    """A fresh value holding a copy of v (a one-input concat)."""
    return g.emit(OpKind.concat, [v], v.shape, axis=0)


def _distinct_outputs(g):
    """Outputs that are inputs, or repeated, become copies (each output needs its own buffer)."""
    seen = {v.id for v in g.inputs}
    outs = []
    for v in g.outputs:
        if v.id in seen:
            v = _copy_op(g, v)
        seen.add(v.id)
        outs.append(v)
    g.outputs = outs


class CompiledInference:
    """An inference plan: ``plan(xs) -> [outputs]`` (each reshaped per example)."""

    def __init__(self, plan, output_shapes):
        self.plan = plan
        self.output_shapes = [tuple(s) for s in output_shapes]

    def __call__(self, xs):
        ys = self.plan.run(list(xs))
        return [y.reshape((y.shape[0],) + s) for y, s in zip(ys, self.output_shapes)]

    def profile(self, xs, reps=10, parts=1):
        return self.plan.profile(list(xs), reps, parts)


def assign_buffers(g, floats=lambda v: v.size):
    """Buffers by liveness: ``(sizes, buffer_of)``. The inputs and outputs
    come first (the caller's arrays); a scratch buffer is reused once the
    last reader of its value has run. ``floats(v)``: floats value v needs
    per image."""
    ni, no = len(g.inputs), len(g.outputs)
    buffer_of = {v.id: i for i, v in enumerate(g.inputs)}
    for j, v in enumerate(g.outputs):
        buffer_of[v.id] = ni + j
    sizes = [floats(v) for v in g.inputs] + [floats(v) for v in g.outputs]
    last_use = {}
    for i, op in enumerate(g.ops):
        for v in op.inputs:
            last_use[v.id] = i
    free = []
    for i, op in enumerate(g.ops):
        out = op.output
        if out.id not in buffer_of:
            if free:
                b = free.pop()
                sizes[b] = max(sizes[b], floats(out))
            else:
                sizes.append(floats(out))
                b = len(sizes) - 1
            buffer_of[out.id] = b
        for vid in {v.id for v in op.inputs}:
            if last_use.get(vid) == i and buffer_of[vid] >= ni + no:
                free.append(buffer_of[vid])
    return sizes, buffer_of


def compile_inference(g):
    """A :class:`CompiledInference` of graph ``g`` (consumed: passes run on it), or None."""
    shapes = [v.shape for v in g.outputs]
    try:
        passes.for_inference(g)
        _distinct_outputs(g)
        passes.sort(g)
        sizes, buffer_of = assign_buffers(g)
        plan = _core.InferencePlan(sizes, len(g.inputs), len(g.outputs))
        for op in g.ops:
            plan.add(op_spec(op, buffer_of))
    except Unsupported:
        return None
    return CompiledInference(plan, shapes)


class CompiledTraining:
    """A training step from the op graph.

    ``heads`` (see :func:`loss_heads`) say, per output with a loss, which value
    the loss reads. With every loss in C++ one call runs the step:
    ``step(xs, targets, sample_weight) -> (loss, [terms], [head values])``.
    With a loss written in Python (``external``) the step is two calls:
    ``forward(xs) -> [head values]``, then ``backward(targets, grads,
    sample_weight) -> (loss of the C++ terms, [terms])``.
    """

    #: called before each step's forward: the random augmentations draw their seeds
    before_step = ()

    def __init__(self, plan, heads, external):
        self.plan = plan
        self.heads = heads
        self.external = external

    def _shaped(self, vals):
        """The C++ step's flat (n, size) values in their per-example shapes
        (value k is the one of the first head with order k)."""
        order = getattr(self, "order", None)
        if order is None:
            return vals
        heads = [self.heads[order.index(k)] for k in range(len(vals))]
        return [v.reshape((v.shape[0],) + tuple(h.value.shape)) for v, h in zip(vals, heads)]

    def step(self, xs, targets, sample_weight=None):
        for f in self.before_step:
            f()
        loss, parts, vals = self.plan.step(list(xs), list(targets), sample_weight)
        return loss, parts, self._shaped(vals)

    def forward(self, xs):
        for f in self.before_step:
            f()
        return self.plan.forward(list(xs))

    def backward(self, targets, grads, sample_weight=None):
        return self.plan.backward(list(targets), list(grads), sample_weight)


class Head:
    """One output with a loss, as the graph sees it: ``value`` is what the loss
    reads (the output, or the input of a softmax/sigmoid it absorbs)."""

    __slots__ = ("output", "value", "loss", "weight", "absorbed", "reads_logits")

    def __init__(self, output, value, loss, weight, absorbed, reads_logits):
        self.output = output
        self.value = value
        self.loss = loss
        self.weight = float(weight)
        self.absorbed = absorbed
        self.reads_logits = reads_logits


_ABSORBABLE = {"softmax": Act.softmax, "sigmoid": Act.sigmoid}


def loss_heads(g, losses):
    """A :class:`Head` for each output with a loss (``losses``: one
    ``(cnnx.losses.Loss, weight)`` or None per output).

    A cross-entropy on an output made by the activation it can absorb (a
    softmax over the last axis, or a sigmoid) reads that activation's input:
    the fused, stable form (the activation is never differentiated on its
    own). ``from_logits=True`` reads the output as logits; other losses read
    the output.
    """
    heads = []
    for i, spec in enumerate(losses):
        if spec is None:
            continue
        loss, weight = spec
        v = g.outputs[i]
        absorbed, reads_logits = None, loss.from_logits in (True, "auto")
        act = _ABSORBABLE.get(loss.absorbs)
        p = v.producer
        if (
            act is not None
            and loss.from_logits is not True
            and p is not None
            and p.kind == OpKind.activation
            and p.attrs["act"] == act
            and (act != Act.softmax or p.attrs["axis"] == len(v.shape) - 1)
        ):
            v, absorbed, reads_logits = p.inputs[0], loss.absorbs, True
        heads.append(Head(i, v, loss, weight, absorbed, reads_logits))
    return heads


def plan_loss(head):
    """(LossKind, param, classes) for the C++ step, or None: the loss runs in Python."""
    loss = head.loss
    kind = loss.plan_kind
    if kind is None or loss.reduction != "mean":
        return None
    classes = head.value.shape[-1] if head.value.shape else 1
    if kind in (_core.LossKind.softmax_cross_entropy, _core.LossKind.softmax_cross_entropy_soft):
        if not head.reads_logits:
            return None  # probabilities that no softmax made: the Python form
        return kind, 0.0, classes
    if loss.absorbs == "sigmoid":  # binary cross-entropy: on logits, or on probabilities
        kind = (
            _core.LossKind.sigmoid_binary_cross_entropy
            if head.reads_logits
            else _core.LossKind.binary_cross_entropy
        )
    return kind, float(loss.param), 0


def compile_training(g, grads, losses):
    """A :class:`CompiledTraining` of graph ``g`` for ``losses`` (one
    ``(Loss, weight)`` or None per output), or None when an op has no
    training form in the plan. ``grads``: the model's flat gradient buffer."""
    heads = loss_heads(g, losses)
    if not heads:
        return None
    try:
        g.outputs = [h.value for h in heads]
        passes.for_training(g)
        ids = {v.id: i for i, v in enumerate(g.inputs)}
        sizes = [v.size for v in g.inputs]
        for op in g.ops:
            ids[op.output.id] = len(sizes)
            sizes.append(op.output.size)
        if not g.ops or any(v.id not in ids or v.producer is None for v in g.outputs):
            raise Unsupported("a head that no op computes")
        plan = _core.TrainPlan(sizes, len(g.inputs), grads)
        for op in g.ops:
            plan.add(op_spec(op, ids, training=True))
        external = False
        for t, h in enumerate(heads):
            how = plan_loss(h)
            if how is None:
                external = True
                plan.add_loss(_core.LossKind.external, ids[h.value.id], t, h.weight)
            else:
                kind, param, classes = how
                plan.add_loss(kind, ids[h.value.id], t, h.weight, param, classes)
        outs, seen = [], set()
        for h in heads:  # one output array per value, even when two losses read it
            if ids[h.value.id] not in seen:
                seen.add(ids[h.value.id])
                outs.append(ids[h.value.id])
        plan.set_outputs(outs)
        index = {v: k for k, v in enumerate(outs)}
        order = [index[ids[h.value.id]] for h in heads]
    except Unsupported:
        return None
    plan_heads = CompiledTraining(plan, heads, external)
    plan_heads.order = order  # head t's value is output order[t] of the plan
    plan_heads.before_step = [op.attrs["reseed"] for op in g.ops if op.kind == OpKind.augment]
    return plan_heads
