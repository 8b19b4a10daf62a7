"""Sequential: a chain of layers, a thin front end to :class:`~cnnx.models.Model`.

::

    model = cnnx.Sequential([
        cnnx.Conv2D(8, 5, activation="relu"), cnnx.MaxPool2D(2),
        cnnx.Conv2D(16, 5, activation="relu"), cnnx.MaxPool2D(2),
        cnnx.Flatten(),
        cnnx.Dense(120, activation="relu"), cnnx.Dense(84, activation="relu"),
        cnnx.Dense(10, activation="softmax"),
    ], input_shape=(32, 32, 3))

It builds ``Input(input_shape)`` and calls each layer on the previous
output, so everything a graph model does (compiled plans, summary, save,
ONNX) works the same. Without ``input_shape`` the model builds on its first
batch. ``model.layers`` is a list you may edit (replace, append, insert,
delete): the model rebuilds itself before its next use, keeping the weights
of the layers that stay.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from ..graph import Graph
from ..layers.base import (
    Layer,
    check_nesting,
    edit_count,
    layer_config,
    layer_from_config,
    note_edit,
)
from .model import Model
from .node import Input

__all__ = ["Sequential", "LayerList"]


class LayerList(list):
    """``Sequential.layers``: a list whose edits mark the model for a rebuild."""

    def __init__(self, items: Iterable[Layer], owner: Sequential) -> None:
        super().__init__(items)
        self._owner = owner

    def _changed(self) -> None:
        for layer in self:
            if not isinstance(layer, Layer):
                raise TypeError(f"layers: expected Layers, got {type(layer).__name__}")
        self._owner._dirty = True
        note_edit()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_layer_list, (list(self), self._owner))


def _restore_layer_list(items: list[Layer], owner: Sequential) -> LayerList:
    return LayerList(items, owner)


def _edits(name: str) -> Callable[..., Any]:
    def method(self: LayerList, *args: Any, **kw: Any) -> Any:
        out = getattr(list, name)(self, *args, **kw)
        self._changed()
        return out

    method.__name__ = name
    return method


for _name in (
    "__setitem__",
    "__delitem__",
    "__iadd__",
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
):
    setattr(LayerList, _name, _edits(_name))


class Sequential(Model):
    """A linear stack of layers (itself a Layer, so models nest).

    Args:
        layers: list of Layers.
        input_shape: shape of one example without the batch dimension, e.g.
            ``(32, 32, 3)``, or ``(None, None, 3)`` for images of any size;
            when omitted the model builds on its first batch.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> model = cnnx.Sequential([cnnx.Conv2D(4, 3, activation="relu"), cnnx.Flatten(),
        ...                          cnnx.Dense(2, activation="softmax")], input_shape=(8, 8, 1))
        >>> model.compile(optimizer="adam", loss="cross_entropy")
        Sequential(name='Sequential')
        >>> x = np.random.rand(16, 8, 8, 1).astype(np.float32)
        >>> loss = model.fit(x, np.arange(16) % 2, epochs=1, verbose=0)
        >>> model.predict(x).shape
        (16, 2)
    """

    def __init__(
        self,
        layers: Optional[Sequence[Layer]] = None,
        input_shape: Union[None, int, Sequence[Optional[int]]] = None,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        Layer.__init__(self, name if name is not None else "Sequential", trainable)
        layers = [] if layers is None else layers
        if not isinstance(layers, (list, tuple)) or not all(isinstance(l, Layer) for l in layers):
            raise TypeError("layers: expected a list of Layers")
        check_nesting(layers)
        self._single_in = self._single_out = True
        self._layer_list = LayerList(layers, self)
        self._dirty = False
        self._synced_at = -1
        self.store = None
        self._init_trainer()
        if not trainable:
            self.trainable = False
        if input_shape is not None:
            self.build(input_shape)

    @property
    def layers(self) -> LayerList:
        """The layers, in order; edit this list freely (the model rebuilds before its next use)."""
        return self._layer_list

    @layers.setter
    def layers(self, layers: Iterable[Layer]) -> None:
        self._layer_list = LayerList(list(layers), self)
        self._layer_list._changed()

    def add(self, layer: Layer) -> Sequential:
        """Append a layer (built at once if the model is)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"layer: expected a Layer, got {type(layer).__name__}")
        check_nesting([layer], "layer")
        with self._training():  # not while another thread trains this model
            self._layer_list.append(layer)
            self.sync()
        return self

    def build(self, input_shape: Union[int, Sequence[Optional[int]]]) -> Any:
        """Build every layer for inputs of ``input_shape``; returns the output shape."""
        from .._validate import as_dim, check_size

        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        if not isinstance(input_shape, (tuple, list)) or not input_shape:
            raise TypeError(
                f"input_shape: expected a tuple such as (32, 32, 3), got {input_shape!r}"
            )
        shape = tuple(as_dim(s, "input_shape") for s in input_shape)
        check_size(shape, "input_shape")
        if self.built and shape == self.input_shape and not self._dirty and not self._stale():
            return self.output_shape
        if not self._layer_list:
            raise ValueError("layers: the model has no layers")
        check_nesting(self._layer_list)  # before building nested models recursively
        x = Input(shape)
        y = x
        for layer in self._layer_list:
            y = layer(y)
        self._dirty = False
        self._set_graph([x], [y])
        return self.output_shape

    def sync(self) -> None:
        """Rebuild after the layer list (or a nested one) was edited; the
        weights of the layers that stay are kept."""
        if not self.built or self._synced_at == edit_count():
            return
        if self._dirty or self._stale():
            self._dirty = True
            self.build(self.input_shape)
        self._synced_at = edit_count()

    def check_inputs(self, x: Any, name: str = "x") -> list[np.ndarray]:
        if not self.built:
            from .._validate import as_float32

            a = as_float32(x, name)
            if a.ndim < 2:
                raise ValueError(f"{name}: expected a batch (m, ...), got shape {a.shape}")
            self.build(a.shape[1:])
            x = a
        self.sync()
        return super().check_inputs(x, name)

    def _need_built(self) -> None:
        if not self.built:
            raise ValueError("model: not built yet (give input_shape= or call build/fit first)")

    def to_graph(self, input_shapes: Optional[Sequence[Sequence[Optional[int]]]] = None) -> Graph:
        self._need_built()
        return super().to_graph(input_shapes)

    def get_config(self) -> dict[str, Any]:
        return dict(
            Layer.get_config(self),
            layers=[layer_config(l) for l in self._layer_list],
            input_shape=list(self.input_shape) if self.built else None,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = dict(config)
        layers = [layer_from_config(c) for c in config.pop("layers", [])]
        input_shape = config.pop("input_shape", None)
        return cls(layers, input_shape=input_shape, **config)
