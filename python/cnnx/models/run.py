"""Running a model's nodes layer by layer: the manual loop (``forward`` /
``backward``) and the fallback for models no compiled plan runs.

Values live in a dict keyed by symbolic tensor; backward walks the nodes in
reverse, summing the gradients of a tensor read by several layers.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .._types import Shape
from .._validate import as_float32, same_shape
from ..layers.activations import SoftmaxInputGrad
from .node import Node, SymbolicTensor

__all__ = [
    "check_batches",
    "check_output_grads",
    "concrete_input_shapes",
    "run_forward",
    "run_backward",
]


def check_batches(
    inputs: Sequence[SymbolicTensor], x: Any, single: bool, name: str = "x"
) -> list[np.ndarray]:
    """``x`` (one array, or a list for several inputs) as float32 batches of
    the input tensors' shapes, all with the same number of samples."""
    xs = [x] if single else x
    if not single and not isinstance(x, (list, tuple)):
        raise TypeError(f"{name}: the model has {len(inputs)} inputs; pass a list")
    if len(xs) != len(inputs):
        raise ValueError(f"{name}: expected {len(inputs)} input arrays, got {len(xs)}")
    out = []
    for a, t in zip(xs, inputs):
        if not (type(a) is np.ndarray and a.dtype == np.float32 and a.flags.c_contiguous):
            a = as_float32(a, name)
        if not same_shape(a.shape[1:], t.shape):
            raise ValueError(
                f"{name}: expected a batch of shape (m, "
                f"{', '.join(map(str, t.shape))}), got {a.shape}"
            )
        out.append(a)
    if len({a.shape[0] for a in out}) > 1:
        raise ValueError(f"{name}: every input needs the same number of samples")
    return out


def run_forward(
    nodes: Sequence[Node],
    inputs: Sequence[SymbolicTensor],
    outputs: Sequence[SymbolicTensor],
    xs: Sequence[np.ndarray],
    training: bool,
) -> list[np.ndarray]:
    """The output arrays for input arrays ``xs`` (one per input tensor)."""
    vals = {id(t): a for t, a in zip(inputs, xs)}
    for node in nodes:
        ins = [vals[id(t)] for t in node.inputs]
        y = node.layer._forward(ins if node.multi_input else ins[0], training)
        for t, v in zip(node.outputs, y if len(node.outputs) > 1 else [y]):
            vals[id(t)] = v
    return [vals[id(t)] for t in outputs]


def _add(grads: dict[int, Any], t: SymbolicTensor, g: Any) -> None:
    grads[id(t)] = g if id(t) not in grads else grads[id(t)] + g


def run_backward(
    nodes: Sequence[Node],
    need_dx: Sequence[bool],
    inputs: Sequence[SymbolicTensor],
    outputs: Sequence[SymbolicTensor],
    dys: Sequence[Any],
    want_input_grads: bool,
    accumulate: bool,
) -> Optional[list[Optional[np.ndarray]]]:
    """Gradients w.r.t. the inputs (None unless ``want_input_grads``) from
    gradients ``dys`` w.r.t. the outputs (None: no gradient for that one).

    ``need_dx[i]``: node i reads another node's output, so its input
    gradient is needed. Parameter gradients are added (``accumulate``) or
    written; a node no gradient reaches gets zero parameter gradients.
    """
    grads: dict[int, Any] = {}
    for t, g in zip(outputs, dys):
        if g is not None:
            _add(grads, t, g)
    for node, nd in zip(reversed(nodes), reversed(need_dx)):
        gs = [grads.pop(id(t), None) for t in node.outputs]
        if all(g is None for g in gs):
            if not accumulate:
                node.layer.zero_grad()
            continue
        if any(g is None for g in gs):  # a node with several outputs, not all used
            m = next(g for g in gs if g is not None).shape[0]
            gs = [
                np.zeros((m,) + t.shape, np.float32) if g is None else g
                for g, t in zip(gs, node.outputs)
            ]
        dx = node.layer._backward(gs if len(gs) > 1 else gs[0], nd or want_input_grads, accumulate)
        if not (nd or want_input_grads):
            continue
        for t, d in zip(node.inputs, dx if node.multi_input else [dx]):
            if d is not None:
                _add(grads, t, d)
    if not want_input_grads:
        return None
    return [grads.get(id(t)) for t in inputs]


def check_output_grads(dy: Any, single: bool, shapes: Sequence[Shape]) -> list[Any]:
    """``dy`` (one array, or a list for several outputs) as float32 arrays of
    the last training forward's output ``shapes`` (a loss's SoftmaxInputGrad
    marker passes as it is)."""
    dys = [dy] if single else list(dy)
    if len(dys) != len(shapes):
        raise ValueError(f"dy: expected {len(shapes)} arrays, got {len(dys)}")
    checked = []
    for g, s in zip(dys, shapes):
        if not isinstance(g, SoftmaxInputGrad):
            g = as_float32(g, "dy")
            if tuple(g.shape) != s:
                raise ValueError(f"dy: expected shape {s} (the last output's), got {g.shape}")
        checked.append(g)
    return checked


def concrete_input_shapes(
    inputs: Sequence[SymbolicTensor], input_shapes: Optional[Sequence[Sequence[Optional[int]]]]
) -> list[tuple[Optional[int], ...]]:
    """The inputs' shapes with every size known: their own, or ``input_shapes``
    (one per input) for a model taking inputs of any size."""
    declared = [t.shape for t in inputs]
    shapes = declared if input_shapes is None else [tuple(s) for s in input_shapes]
    if len(shapes) != len(inputs) or any(
        len(s) != len(d) or None in s or any(p is not None and p != v for v, p in zip(s, d))
        for s, d in zip(shapes, declared)
    ):
        raise ValueError(f"input_shapes: expected concrete shapes fitting {declared}, got {shapes}")
    return shapes
