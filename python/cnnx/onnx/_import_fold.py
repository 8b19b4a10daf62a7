"""Constant folding at import: nodes whose inputs are all constants are
evaluated with NumPy (exporters compute weights that way, e.g. a Transpose or
Reshape of an initializer, and reshape targets from ``Shape``/``Gather``/
``Concat`` arithmetic). ``Shape`` and ``Size`` of a tensor computed from the
graph's inputs use its static shape, with the batch size as the graph's
static batch size, or -1 when it is free (so a Reshape target built from it
keeps "whatever the batch is").

Every result is checked against :data:`MAX_CONST_ELEMENTS` *before* it is
allocated, so a hostile ``ConstantOfShape`` or ``Expand`` fails cleanly.
"""

import math

import numpy as np

from ._common import FOLDED_IMPORT_OPS
from ._import_ctx import MAX_CONST_ELEMENTS

__all__ = ["try_fold"]


class _Refuse(Exception):
    pass


def _size_ok(shape):
    n = 1
    for d in shape:
        if int(d) < 0:
            raise _Refuse(f"negative dimension in {list(shape)}")
        n *= int(d)
    if n > MAX_CONST_ELEMENTS:
        raise _Refuse(
            f"the result would hold {n} values, more than cnnx computes at import "
            f"({MAX_CONST_ELEMENTS})"
        )
    return tuple(int(d) for d in shape)


def _ax(a, nd):
    a = int(a)
    if not -nd <= a < nd:
        raise _Refuse(f"axis {a} is out of range for rank {nd}")
    return a % nd


def _ints(a):
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _axes(ctx, attrs, v, i):
    """Axes from the attribute (old opsets) or input ``i`` (new ones); None if absent."""
    axes = None
    if "axes" in attrs:
        axes = [int(a) for a in attrs["axes"]]
    elif len(v) > i and v[i] is not None:
        axes = _ints(v[i])
    if axes is not None and ctx.opset < 11 and min(axes, default=0) < 0:
        raise _Refuse(f"negative axes {axes} need opset 11 or newer")
    if axes is not None and len(set(axes)) != len(axes):
        raise _Refuse(f"axes {axes} repeat an axis")
    return axes


def _constant(ctx, node, a, v):
    if "value" in a:
        return ctx.to_array(a["value"], "attribute value", node)
    for key, dtype in (
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in a:
            return np.array(a[key], dtype)
    raise _Refuse(f"constant kind {sorted(a)} not supported")


def _constant_of_shape(ctx, node, a, v):
    shape = _size_ok(_ints(v[0]))
    value = np.zeros(1, np.float32)
    if "value" in a:
        value = ctx.to_array(a["value"], "attribute value", node).reshape(-1)
        if value.size != 1:
            raise _Refuse("value must hold one element")
    return np.full(shape, value[0], value.dtype)


def _shape(ctx, node, a, v, data_shape):
    full = np.array(data_shape, np.int64)
    start, end = int(a.get("start", 0)), int(a.get("end", len(full)))
    return full[start:end]


def _cast(ctx, node, a, v):
    return v[0].astype(ctx.onnx.helper.tensor_dtype_to_np_dtype(int(a["to"])))


def _gather(ctx, node, a, v):
    data, idx = v[0], np.asarray(v[1]).astype(np.int64)
    if data.ndim == 0:
        raise _Refuse("Gather of a scalar")
    axis = _ax(a.get("axis", 0), data.ndim)
    _size_ok(data.shape[:axis] + idx.shape + data.shape[axis + 1 :])
    n = data.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise _Refuse(f"indices out of range for a dimension of size {n}")
    return np.take(data, idx, axis=axis)


def _unsqueeze(ctx, node, a, v):
    axes = _axes(ctx, a, v, 1)
    if axes is None:
        raise _Refuse("axes are required")
    r = v[0]
    out_rank = r.ndim + len(axes)
    axes = sorted(_ax(x, out_rank) for x in axes)
    if len(set(axes)) != len(axes):
        raise _Refuse(f"axes {axes} repeat an axis")
    for ax in axes:
        r = np.expand_dims(r, ax)
    return r


def _squeeze(ctx, node, a, v):
    axes = _axes(ctx, a, v, 1)
    if axes is None:
        return np.squeeze(v[0])
    return np.squeeze(v[0], axis=tuple(_ax(x, v[0].ndim) for x in axes))


def _concat(ctx, node, a, v):
    arrs = [np.asarray(x) for x in v if x is not None]
    _size_ok((sum(x.size for x in arrs),))
    arrs = [np.atleast_1d(x) for x in arrs]
    return np.concatenate(arrs, axis=_ax(a.get("axis", 0), arrs[0].ndim))


def _slice(ctx, node, a, v):
    data = v[0]
    if "starts" in a:  # opset < 10
        starts, ends = a["starts"], a["ends"]
        axes = a.get("axes", range(len(starts)))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(v[1]), _ints(v[2])
        axes = _ints(v[3]) if len(v) > 3 and v[3] is not None else range(len(starts))
        steps = _ints(v[4]) if len(v) > 4 and v[4] is not None else [1] * len(starts)
    sl = [slice(None)] * data.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if int(st) == 0:
            raise _Refuse("a step of 0")
        sl[_ax(ax, data.ndim)] = slice(int(s), int(e), int(st))
    return data[tuple(sl)]


def _reshape(ctx, node, a, v):
    data, target = v[0], _ints(v[1])
    if not int(a.get("allowzero", 0)):
        target = [data.shape[i] if t == 0 and i < data.ndim else t for i, t in enumerate(target)]
    return data.reshape(target)


def _transpose(ctx, node, a, v):
    perm = a.get("perm")
    return np.transpose(v[0], None if perm is None else [int(p) for p in perm])


def _flatten(ctx, node, a, v):
    x = v[0]
    axis = _ax(a.get("axis", 1), x.ndim + 1)
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _expand(ctx, node, a, v):
    shape = _size_ok(np.broadcast_shapes(v[0].shape, tuple(_ints(v[1]))))
    return np.array(np.broadcast_to(v[0], shape))


def _range(ctx, node, a, v):
    start, limit, delta = (np.asarray(x).reshape(()) for x in v[:3])
    if delta == 0:
        raise _Refuse("a delta of 0")
    n = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    _size_ok((n,))
    return np.arange(n, dtype=np.result_type(start, limit, delta)) * delta + start


def _broadcast(v):
    _size_ok(np.broadcast_shapes(*(np.shape(x) for x in v)))


def _div(ctx, node, a, v):
    x, y = v
    _broadcast(v)
    if np.asarray(x).dtype.kind in "iu":
        if np.any(np.asarray(y) == 0):
            raise _Refuse("integer division by zero")
        q = np.floor_divide(x, y)
        return q + ((np.remainder(x, y) != 0) & ((x < 0) ^ (y < 0)))  # ONNX truncates
    return np.asarray(np.true_divide(x, y)).astype(np.result_type(x, y))


def _binary(fn):
    def run(ctx, node, a, v):
        _broadcast(v)
        return fn(*v)

    return run


def _variadic(fn):
    def run(ctx, node, a, v):
        _broadcast(v)
        out = v[0]
        for x in v[1:]:
            out = fn(out, x)
        return out

    return run


def _where(ctx, node, a, v):
    _broadcast(v)
    return np.where(v[0].astype(bool), v[1], v[2])


def _gemm(ctx, node, a, v):
    x, w = v[0], v[1]
    if int(a.get("transA", 0)):
        x = x.T
    if int(a.get("transB", 0)):
        w = w.T
    _size_ok((x.shape[0], w.shape[-1]))
    y = np.float32(a.get("alpha", 1.0)) * (x @ w)
    if len(v) > 2 and v[2] is not None:
        y = y + np.float32(a.get("beta", 1.0)) * v[2]
    return y.astype(np.result_type(x, w))


def _matmul(ctx, node, a, v):
    x, w = v
    if x.ndim < 1 or w.ndim < 1:
        raise _Refuse("MatMul of a scalar")
    _size_ok(np.broadcast_shapes(x.shape[:-2], w.shape[:-2]) + x.shape[-2:-1] + w.shape[-1:])
    return np.matmul(x, w)


_FOLD = {
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Identity": lambda ctx, node, a, v: v[0],
    "Dropout": lambda ctx, node, a, v: v[0],
    "Cast": _cast,
    "CastLike": lambda ctx, node, a, v: v[0].astype(v[1].dtype),
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": _concat,
    "Slice": _slice,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Flatten": _flatten,
    "Expand": _expand,
    "Range": _range,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _div,
    "Neg": lambda ctx, node, a, v: np.negative(v[0]),
    "Abs": lambda ctx, node, a, v: np.abs(v[0]),
    "Sqrt": lambda ctx, node, a, v: np.sqrt(v[0]),
    "Reciprocal": lambda ctx, node, a, v: np.reciprocal(v[0]),
    "Floor": lambda ctx, node, a, v: np.floor(v[0]),
    "Ceil": lambda ctx, node, a, v: np.ceil(v[0]),
    "Min": _variadic(np.minimum),
    "Max": _variadic(np.maximum),
    "Equal": _binary(np.equal),
    "Less": _binary(np.less),
    "Greater": _binary(np.greater),
    "Not": lambda ctx, node, a, v: np.logical_not(v[0]),
    "Where": _where,
    "MatMul": _matmul,
    "Gemm": _gemm,
}
assert set(_FOLD) | {"Shape", "Size"} == set(FOLDED_IMPORT_OPS)


def try_fold(ctx, node):
    """Evaluate ``node`` into ``ctx.consts`` if it is a constant expression; True if done."""
    op = node.op_type
    ins = list(node.input)
    if op in ("Shape", "Size") and ins and ins[0] in ctx.vals:  # of a computed tensor
        if op == "Size" and ctx.batch is None:
            return False  # depends on the batch size: not a constant
        batch = ctx.batch if ctx.batch is not None else -1
        shape = (batch,) + ctx.vals[ins[0]].onnx_shape
        ctx.consts[node.output[0]] = (
            _shape(ctx, node, ctx.attrs(node), None, shape)
            if op == "Shape"
            else np.array(math.prod(shape), np.int64)
        )
        return True
    if op not in FOLDED_IMPORT_OPS:
        return False
    if any(i and i not in ctx.consts for i in ins) or (op != "Constant" and not any(ins)):
        return False
    a = ctx.attrs(node)
    v = [ctx.consts[i] if i else None for i in ins]
    try:
        if op == "Shape":
            r = _shape(ctx, node, a, v, v[0].shape)
        elif op == "Size":
            r = np.array(v[0].size, np.int64)
        else:
            r = _FOLD[op](ctx, node, a, v)
    except (
        _Refuse,
        KeyError,
        IndexError,
        ValueError,
        TypeError,
        AttributeError,
        OverflowError,
        ZeroDivisionError,
    ) as e:
        raise ctx.fail(node, f"cannot evaluate this constant expression ({e})") from None
    r = np.asarray(r)
    if r.size > MAX_CONST_ELEMENTS:
        raise ctx.fail(
            node,
            f"cannot evaluate this constant expression (more than {MAX_CONST_ELEMENTS} values)",
        )
    ctx.consts[node.output[0]] = r
    if op == "Dropout" and len(node.output) > 1 and node.output[1]:
        ctx.consts[node.output[1]] = np.ones(r.shape, bool)
    return True
