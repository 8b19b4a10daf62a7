"""``model.summary()``: the course's layer table (and a "Connected to" column
for models that are not a chain)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence, cast

from .._types import Shape
from ..layers.base import format_shape

if TYPE_CHECKING:
    from .model import Model
    from .node import SymbolicTensor

__all__ = ["SummaryRow", "summary"]


class SummaryRow:
    """One row of ``model.summary()``.

    Examples:
        >>> import cnnx
        >>> rows = cnnx.teaching.lenet5().summary(print_fn=None)
        >>> rows[1].name, rows[1].output_shape, rows[1].params
        ('Conv2D', (28, 28, 8), 608)
    """

    __slots__ = (
        "name",
        "layer",
        "output_shape",
        "activation_size",
        "params",
        "formulas",
        "connected_to",
    )

    def __init__(
        self,
        name: str,
        layer: str,
        output_shape: Sequence[Optional[int]],
        activation_size: Optional[int],
        params: int,
        formulas: Iterable[str],
        connected_to: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.layer = layer
        self.output_shape = tuple(output_shape)
        self.activation_size = None if activation_size is None else int(activation_size)
        self.params = int(params)
        self.formulas = list(formulas)
        self.connected_to = list(connected_to)

    def __repr__(self) -> str:
        return (
            f"SummaryRow({self.name!r}, output_shape={self.output_shape}, "
            f"activation_size={self.activation_size}, params={self.params})"
        )


def _size(shape: Shape) -> Optional[int]:
    """Values per example, or None when a size is known only when data arrives."""
    return None if None in shape else math.prod(cast("tuple[int, ...]", shape))


def _is_chain(model: Model) -> bool:
    ins, outs = model.inputs, model.outputs
    if len(ins) != 1 or len(outs) != 1:
        return False
    prev = ins[0]
    for n in model.nodes:
        if n.multi_input or n.inputs[0] is not prev or len(n.outputs) != 1:
            return False
        prev = n.outputs[0]
    return prev is outs[0]


def _source(t: SymbolicTensor) -> str:
    return str(t.name) if t.node.layer is None else t.node.layer.name


def summary(
    model: Model,
    formulas: bool = False,
    show_all: bool = False,
    print_fn: Optional[Callable[[str], object]] = print,
) -> list[SummaryRow]:
    """Print the layer table and return its rows.

    Columns: Layer, Output shape, Activation size (values per example),
    Params. The first row is the Input; ``Flatten`` rows are left out
    unless ``show_all=True`` (a reshape changes no value, and the row
    before already shows the same size), which reproduces the course's
    table. ``formulas=True`` adds how each number arises, e.g.
    ``floor((32-5)/1)+1 = 28`` and ``(5*5*3+1)*8 = 608``; the conv
    count uses ``(f*f*n_C_prev + 1)*n_C`` (the notes' ``(f*f+1)*n_C``
    drops n_C_prev). A model that is not a chain adds a "Connected to"
    column naming each layer's inputs. ``print_fn=None`` prints nothing.
    Returns a list of :class:`SummaryRow` (``.name``, ``.output_shape``,
    ``.activation_size``, ``.params``, ``.formulas``, ``.connected_to``).
    """
    model.sync()
    if not model.built:
        raise ValueError("model: not built yet (give input_shape= or call build/fit first)")
    chain = _is_chain(model)
    rows = [
        SummaryRow(str(t.name) if not chain else "Input", "Input", t.shape, _size(t.shape), 0, [])
        for t in model.inputs
    ]
    for node in model.nodes:
        layer = node.layer
        if getattr(layer, "is_reshape", False) and not show_all and chain:
            continue
        shape = node.outputs[0].shape
        rows.append(
            SummaryRow(
                layer.name,
                type(layer).__name__,
                shape,
                _size(shape),
                layer.count_params(),
                layer.summary_formulas() if formulas else [],
                [_source(t) for t in node.inputs],
            )
        )
    if print_fn is not None:
        print_fn(_format(model, rows, formulas, connected=not chain))
    return rows


def _format(model: Model, rows: Sequence[SummaryRow], formulas: bool, connected: bool) -> str:
    total, trainable = model.store.count() if model.store is not None else (0, 0)
    head = ["Layer", "Output shape", "Activation size", "Params"]
    table = [
        [
            r.name,
            format_shape(r.output_shape),
            "None" if r.activation_size is None else f"{r.activation_size:,}",
            f"{r.params:,}",
        ]
        for r in rows
    ]
    if connected:
        head.append("Connected to")
        for t, r in zip(table, rows):
            t.append(", ".join(r.connected_to))
    if formulas:
        head.append("How")
        for t, r in zip(table, rows):
            t.append("; ".join(r.formulas))
    widths = [max(len(head[i]), *(len(t[i]) for t in table)) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in (2, 3) else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    body = [line(t) for t in table]
    rule = "-" * max(len(line(head)), *(len(b) for b in body))
    lines = [line(head), rule] + body + [rule]
    lines.append(f"Total params: {total:,}")
    lines.append(f"Trainable params: {trainable:,}")
    lines.append(f"Non-trainable params: {total - trainable:,}")
    return "\n".join(lines)
