"""Fusion passes over the op graph, written once for every consumer.

Each pass rewrites a :class:`~cnnx.graph.ir.Graph` in place. The plans run

- for inference (:func:`for_inference`): dropout and reshapes become views,
  batch norm folds into the convolution or dense op before it, activations
  move into the store of the op before them, and a residual ``add`` moves
  into the store of the convolution that produces one of its operands;
- for training (:func:`for_training`): views as above, the ReLU of a
  convolution or dense op moves into its store (the training kernels fuse
  ReLU only), and a max pool right after such an op applies its ReLU mask
  to the pooled gradient (exact, and k*k times fewer values).

A fusion only happens where the producer's output has no other reader, so
no other op ever sees a changed value. Afterwards :func:`prune` drops ops
no output needs and :func:`sort` restores an order in which each op comes
after the ops it reads.
"""

from .ir import GROUPED_ACTS, Act, EltwiseKind, OpKind, PoolKind

__all__ = ["for_inference", "for_training", "prune", "sort", "resolve_views"]


def _replace_uses(g, old, new):
    for op in g.ops:
        op.inputs = [new if v is old else v for v in op.inputs]
    g.outputs = [new if v is old else v for v in g.outputs]


def _remove(g, dead):
    g.ops = [op for op in g.ops if id(op) not in dead]


def resolve_views(g, training):
    """Reshapes, and dropout and random augmentations outside training (or
    dropout at rate 0), become views: their readers read the input value itself."""
    dead = set()
    for op in list(g.ops):
        view = (
            op.kind == OpKind.reshape
            or (op.kind == OpKind.dropout and (not training or op.attrs["rate"] == 0.0))
            or (op.kind == OpKind.augment and not training and op.attrs["identity_at_inference"])
        )
        if view:
            _replace_uses(g, op.output, op.inputs[0])
            dead.add(id(op))
    _remove(g, dead)


def _single_reader(users, v, g):
    """The one op that reads v, when v is no graph output and has one reader."""
    if any(o is v for o in g.outputs):
        return None
    readers = users[v.id]
    return readers[0] if len(readers) == 1 else None


def fold_batch_norm(g):
    """batch_norm(conv2d or dense) -> the producer with ``bn`` set (inference form)."""
    users = g.consumers()
    dead = set()
    for op in list(g.ops):
        if op.kind != OpKind.batch_norm:
            continue
        src = op.inputs[0].producer
        if (
            src is None
            or src.kind not in (OpKind.conv2d, OpKind.dense)
            or src.attrs["bn"]
            or src.attrs["act"] != Act.none
            or len(src.inputs) > 1
            or _single_reader(users, src.output, g) is not op
            # the same channels: not across a reshape (a Flatten between them)
            or op.output.shape[-1] != src.output.shape[-1]
        ):
            continue
        src.attrs["bn"] = op.attrs
        _replace_uses(g, op.output, src.output)
        dead.add(id(op))
    _remove(g, dead)


def fuse_activations(g, allowed, producers):
    """activation(p) -> p with ``act`` set, for p of a kind in ``producers`` and
    an activation in ``allowed`` (softmax only over the last axis)."""
    users = g.consumers()
    dead = set()
    for op in list(g.ops):
        if op.kind != OpKind.activation or op.attrs["act"] not in allowed:
            continue
        if op.attrs["act"] in GROUPED_ACTS and op.attrs["axis"] != len(op.output.shape) - 1:
            continue
        src = op.inputs[0].producer
        if (
            src is None
            or src.kind not in producers
            or src.attrs.get("act") != Act.none
            or _single_reader(users, src.output, g) is not op
        ):
            continue
        src.attrs["act"] = op.attrs["act"]
        src.attrs["alpha"] = op.attrs["alpha"]
        src.attrs["beta"] = op.attrs.get("beta", 0.0)
        _replace_uses(g, op.output, src.output)
        dead.add(id(op))
    _remove(g, dead)


def fuse_residual_add(g):
    """add(conv2d(x), s) -> conv2d(x) + s in the convolution's store (inference)."""
    users = g.consumers()
    order = {id(op): i for i, op in enumerate(g.ops)}
    dead = set()
    for op in list(g.ops):
        if (
            op.kind != OpKind.eltwise
            or op.attrs["eltwise"] != EltwiseKind.add
            or len(op.inputs) != 2
            or op.inputs[0] is op.inputs[1]
        ):
            continue
        # the operand whose convolution runs later: the other one is ready by then
        best = None
        for j, v in enumerate(op.inputs):
            src = v.producer
            if (
                src is None
                or src.kind != OpKind.conv2d
                or len(src.inputs) != 1
                or src.attrs["act"] != Act.none
                or _single_reader(users, v, g) is not op
            ):
                continue
            if best is None or order[id(src)] > order[id(best[0])]:
                best = (src, op.inputs[1 - j])
        if best is None:
            continue
        conv, other = best
        conv.inputs.append(other)
        conv.attrs["act"] = op.attrs["act"]
        conv.attrs["alpha"] = op.attrs["alpha"]
        conv.attrs["beta"] = op.attrs.get("beta", 0.0)
        _replace_uses(g, op.output, conv.output)
        dead.add(id(op))
    _remove(g, dead)
    sort(g)


def mask_relu_in_pool(g):
    """A max pool right after a conv2d/dense with a fused ReLU applies that
    ReLU's mask to its own (pooled) gradient (training)."""
    users = g.consumers()
    for op in g.ops:
        if op.kind != OpKind.pool or op.attrs["pool_kind"] != PoolKind.max:
            continue
        src = op.inputs[0].producer
        if (
            src is not None
            and src.kind in (OpKind.conv2d, OpKind.dense)
            and src.attrs["act"] == Act.relu
            and _single_reader(users, src.output, g) is op
        ):
            src.attrs["relu_mask_applied_later"] = True
            op.attrs["mask_grad_by_output"] = True


def prune(g, keep=()):
    """Drop ops whose outputs no graph output (or value in ``keep``) needs."""
    need = {v.id for v in g.outputs} | {v.id for v in keep}
    live = []
    for op in reversed(g.ops):
        if op.output.id in need:
            live.append(op)
            need.update(v.id for v in op.inputs)
    g.ops = live[::-1]


def sort(g):
    """A stable topological order (fusions may make an op read a later value)."""
    done = {v.id for v in g.inputs}
    pending = list(g.ops)
    ordered = []
    while pending:
        rest = []
        for op in pending:
            if all(v.id in done or v.producer is None for v in op.inputs):
                ordered.append(op)
                done.add(op.output.id)
            else:
                rest.append(op)
        if len(rest) == len(pending):
            raise ValueError("graph: it has a cycle (an op reads a value that depends on itself)")
        pending = rest
    g.ops = ordered


def for_inference(g):
    resolve_views(g, training=False)
    prune(g)
    fold_batch_norm(g)
    fuse_activations(
        g,
        allowed=set(Act.__members__.values()) - {Act.none},
        producers=(OpKind.conv2d, OpKind.dense, OpKind.eltwise, OpKind.conv_transpose2d),
    )
    fuse_residual_add(g)
    prune(g)
    return g


def for_training(g, keep=()):
    resolve_views(g, training=True)
    fuse_activations(
        g,
        allowed={Act.relu},
        producers=(OpKind.conv2d, OpKind.dense, OpKind.eltwise, OpKind.conv_transpose2d),
    )
    mask_relu_in_pool(g)
    prune(g, keep)
    return g
