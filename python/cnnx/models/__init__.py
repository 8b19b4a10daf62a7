"""Models: :class:`Model` (layers joined into a graph: the functional API),
:class:`Sequential` (a chain), :func:`Input` (a symbolic input tensor) and the
summary table. Training is in :mod:`cnnx.trainers`."""

from .model import Model
from .node import Input, SymbolicTensor
from .sequential import Sequential
from .summary import SummaryRow

__all__ = ["Model", "Sequential", "Input", "SymbolicTensor", "SummaryRow"]
