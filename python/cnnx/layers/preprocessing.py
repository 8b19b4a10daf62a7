"""Preprocessing and augmentation layers, with Keras's names, arguments and
rules: ``Rescaling``, ``Normalization`` (with ``adapt``), ``RandomFlip``,
``RandomTranslation``, ``RandomRotation``, ``RandomZoom``, ``RandomCrop``,
``RandomContrast``.

Every per-pixel loop runs in C++ (``cnnx/augment.h``, one file per ISA, with
gathers for the resampling). The random layers act only in training: at
inference they are the identity (exported to ONNX as nothing at all), except
``RandomCrop``, which then takes the centred window of the output's aspect
ratio and resizes it (Keras's documented rule; ONNX ``Slice`` + ``Resize``).

They lower into the op graph as ops both compiled plans run, so a model with
augmentation in front still trains in one C++ call per step. Randomness is
counter-based: each training step draws one seed per layer from
``cnnx.set_seed``'s generator (or the layer's own ``seed=``), and image i of
the batch gets the transform ``hash(seed, i)`` picks, whatever the threads.
``cnnx._core.augment_transform(layer.spec, seed, i)`` shows it.

Typical use, as the Keras tutorials do::

    model = cnnx.Sequential([
        cnnx.RandomFlip("horizontal"), cnnx.RandomRotation(0.1),
        cnnx.Rescaling(1 / 255), cnnx.Conv2D(16, 3, activation="relu"), ...])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union, cast
import numbers

import numpy as np

from .. import _core
from .._types import ArrayLike, Shape
from .. import random as _random
from .._validate import as_int, same_shape
from ..graph.ir import BufferRef
from .base import Layer

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = [
    "Rescaling",
    "Normalization",
    "RandomFlip",
    "RandomTranslation",
    "RandomRotation",
    "RandomZoom",
    "RandomCrop",
    "RandomContrast",
]

_FILL = {
    "reflect": _core.FillMode.reflect,
    "wrap": _core.FillMode.wrap,
    "constant": _core.FillMode.constant,
    "nearest": _core.FillMode.nearest,
}
_INTERP = {"nearest": _core.Interpolation.nearest, "bilinear": _core.Interpolation.bilinear}
_EPSILON = 1e-7  # keras.backend.epsilon(): Normalization's smallest denominator


#: a number f (the range (-f, f)) or a (lower, upper) pair
Factor = Union[float, Sequence[float]]


def _real(v: Any, name: str, what: str = "a number") -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected {what}, got {type(v).__name__} {v!r}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


def _range(
    factor: Factor,
    name: str,
    lo: Optional[float] = None,
    hi: Optional[float] = None,
    lo_open: bool = False,
) -> tuple[float, float]:
    """Keras's factor: a number f >= 0 means (-f, f); a pair is (lower, upper)."""
    if isinstance(factor, (tuple, list, np.ndarray)):
        if len(factor) != 2:
            raise ValueError(f"{name}: expected a number or a (lower, upper) pair, got {factor!r}")
        a, b = (_real(f, name) for f in factor)
        if a > b:
            raise ValueError(f"{name}: expected lower <= upper, got {tuple(factor)}")
    else:
        f = _real(factor, name, "a number or a (lower, upper) pair")
        if f < 0:
            raise ValueError(
                f"{name}: a single number must be >= 0 (the range is (-f, f)), got "
                f"{f}; give (lower, upper) for another range"
            )
        a, b = -f, f
    for v in (a, b):
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
            where = f"{'(' if lo_open else '['}{lo}, {hi}]"
            raise ValueError(f"{name}: values must lie in {where}, got ({a}, {b})")
    return a, b


def _choice(value: str, name: str, table: dict[str, Any]) -> str:
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{name}: expected one of {sorted(table)}, got {value!r}")
    return value


def _image_shape(layer: Layer, input_shape: Shape) -> Shape:
    if len(input_shape) != 3:
        raise ValueError(
            f"input_shape: {type(layer).__name__} {layer.name!r} expects images "
            f"(n_H, n_W, n_C), got {tuple(input_shape)}"
        )
    return input_shape


def _channel_values(v: ArrayLike, name: str) -> np.ndarray:
    """A number, or one number per channel (a list / array)."""
    if isinstance(v, (list, tuple, np.ndarray)):
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
        if arr.size < 1 or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: expected finite numbers, got {v!r}")
        return arr.astype(np.float32)
    return np.array([_real(v, name)], np.float32)


class Rescaling(Layer):
    """``y = x * scale + offset`` (e.g. ``Rescaling(1 / 255)`` for pixels in
    [0, 1], ``Rescaling(1 / 127.5, offset=-1)`` for [-1, 1]). ``scale`` and
    ``offset`` are numbers or one number per channel (the last axis).
    Exported to ONNX as ``Mul`` and ``Add``."""

    def __init__(
        self,
        scale: ArrayLike,
        offset: ArrayLike = 0.0,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self._scale = _channel_values(scale, "scale")
        self._offset = _channel_values(offset, "offset")
        self._scale_cfg = scale if np.ndim(scale) == 0 else self._scale.tolist()
        self._offset_cfg = offset if np.ndim(offset) == 0 else self._offset.tolist()

    @property
    def scale(self) -> ArrayLike:
        """The scale as given (a number or one per channel)."""
        return self._scale_cfg

    @property
    def offset(self) -> ArrayLike:
        """The offset as given (a number or one per channel)."""
        return self._offset_cfg

    def _build(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 1:
            raise ValueError(f"input_shape: Rescaling {self.name!r} needs at least one axis")
        c = input_shape[-1]
        n = max(self._scale.size, self._offset.size)
        for arr, what in ((self._scale, "scale"), (self._offset, "offset")):
            if arr.size not in (1, c):
                raise ValueError(
                    f"{what}: {arr.size} values do not match the {c} channels of "
                    f"the input {tuple(input_shape)}"
                )
        channels = cast(int, c) if n > 1 else 1  # c is known when it matched n > 1 values
        self._a = np.ascontiguousarray(np.broadcast_to(self._scale, (channels,)), np.float32)
        self._b = np.ascontiguousarray(np.broadcast_to(self._offset, (channels,)), np.float32)
        self._channels = channels
        return input_shape

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.rescale(x, self._a, self._b, self._channels, 1)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        return _core.rescale_backward(dy, self._a, self._channels, 1) if need_dx else None

    def lower(self, g: Graph, x: Value) -> Value:
        return g.rescale(x, scale=self._a, offset=self._b, channels=self._channels)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), scale=self._scale_cfg, offset=self._offset_cfg)


class Normalization(Layer):
    """``y = (x - mean) / max(sqrt(variance), 1e-7)`` per index of ``axis``
    (Keras's rule). ``axis=-1``: per channel; ``None``: one mean for all.

    Give ``mean`` and ``variance``, or learn them from data with
    :meth:`adapt` (an array, or any iterable of batches: arrays or ``(x, y)``
    tuples), before or after the layer is in a model: its statistics are
    saved with the model and read live by the compiled plans. Until then the
    mean is 0 and the variance 1. Exported to ONNX as ``Sub`` and ``Div``.
    """

    def __init__(
        self,
        axis: Optional[int] = -1,
        mean: Optional[ArrayLike] = None,
        variance: Optional[ArrayLike] = None,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        if axis is not None:
            if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
                raise TypeError(f"axis: expected an int or None, got {axis!r}")
            axis = int(axis)
        self._axis = axis
        if (mean is None) != (variance is None):
            raise ValueError("mean: give both mean and variance, or neither (then call adapt)")
        self._given: Optional[tuple[np.ndarray, np.ndarray]] = None
        if mean is not None and variance is not None:  # both or neither: checked above
            m = _channel_values(mean, "mean")
            v = _channel_values(variance, "variance")
            if np.any(v < 0):
                raise ValueError(f"variance: expected values >= 0, got {variance!r}")
            self._given = (m, v)

    @property
    def axis(self) -> Optional[int]:
        """The axis whose entries get their own statistics (None: one overall)."""
        return self._axis

    @property
    def mean(self) -> Optional[np.ndarray]:
        """The per-entry means (a float32 array once built, else None)."""
        return self.buffers["mean"] if self.built else None

    @property
    def variance(self) -> Optional[np.ndarray]:
        """The per-entry variances (a float32 array once built, else None)."""
        return self.buffers["variance"] if self.built else None

    def _layout(self, input_shape: Shape) -> tuple[int, int]:
        """(channels, inner): value i of an example uses statistic (i // inner) % channels."""
        if self._axis is None:
            return 1, 1
        rank = len(input_shape) + 1  # Keras counts the batch axis
        if not -rank <= self._axis < rank or self._axis % rank == 0:
            raise ValueError(
                f"axis: {self._axis} is not an axis of the examples' shape "
                f"{tuple(input_shape)} (the batch axis 0 cannot be normalised over)"
            )
        k = self._axis % rank - 1
        if None in tuple(input_shape[k:]):
            raise ValueError(
                f"axis: {self._axis} normalises over sizes known only when data "
                f"arrives ({tuple(input_shape)}); use the channel axis -1"
            )
        return int(input_shape[k]), int(np.prod(input_shape[k + 1 :], dtype=np.int64))

    def _build(self, input_shape: Shape) -> Shape:
        channels, inner = self._layout(input_shape)
        self._channels, self._inner = channels, inner
        mean, var = np.zeros(channels, np.float32), np.ones(channels, np.float32)
        if self._given is not None:
            for arr, what in zip(self._given, ("mean", "variance")):
                if arr.size not in (1, channels):
                    raise ValueError(
                        f"{what}: {arr.size} values do not match the {channels} "
                        f"entries of axis {self._axis} of {tuple(input_shape)}"
                    )
            mean[...], var[...] = self._given
        self.add_buffer("mean", mean)
        self.add_buffer("variance", var)
        return input_shape

    def adapt(
        self, data: Any, batch_size: Optional[int] = None, steps: Optional[int] = None
    ) -> Normalization:
        """Set ``mean`` and ``variance`` from ``data``: an array ``(n, ...)``, or an
        iterable of batches (arrays or ``(x, ...)`` tuples; ``steps`` limits how
        many are read). Statistics over every axis but ``axis`` (population
        variance, merged batch by batch in float64)."""
        if (
            isinstance(data, np.ndarray)
            or hasattr(data, "__array__")
            and not hasattr(data, "__next__")
        ):
            arr = np.asarray(data)
            size = as_int(batch_size, "batch_size", 1) if batch_size is not None else 4096
            batches = (arr[i : i + size] for i in range(0, max(len(arr), 1), size))
        elif hasattr(data, "__iter__"):
            batches = iter(data)
        else:
            raise TypeError(
                f"data: expected an array or an iterable of batches, got {type(data).__name__}"
            )
        if steps is not None:
            steps = as_int(steps, "steps", 1)
        count = 0
        mean: Any = None  # the running float64 statistics
        m2: Any = None
        for k, batch in enumerate(batches):
            if steps is not None and k >= steps:
                break
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            x = np.asarray(batch)
            if x.dtype.kind not in "biuf" or x.ndim < 1:
                raise TypeError(
                    f"data: expected numeric batches (n, ...), got dtype {x.dtype} "
                    f"and shape {x.shape}"
                )
            if x.shape[0] == 0:
                continue
            if not self.built:
                self.build(x.shape[1:])
            elif not same_shape(tuple(x.shape[1:]), self.input_shape):
                raise ValueError(
                    f"data: expected batches of shape (n, {', '.join(map(str, self.input_shape))}), "
                    f"got {x.shape}"
                )
            x = x.astype(np.float64).reshape(x.shape[0], -1, self._channels, self._inner)
            x = np.moveaxis(x, 2, -1).reshape(-1, self._channels)
            if not np.all(np.isfinite(x)):
                raise ValueError("data: holds NaN or infinite values")
            n = x.shape[0]
            bm = x.mean(axis=0)
            bm2 = ((x - bm) ** 2).sum(axis=0)
            if mean is None:
                count, mean, m2 = n, bm, bm2
            else:  # Chan et al.'s merge of two partial results
                total = count + n
                delta = bm - mean
                mean = mean + delta * (n / total)
                m2 = m2 + bm2 + delta**2 * (count * n / total)
                count = total
        if mean is None:
            raise ValueError("data: no examples to adapt to")
        self.buffers["mean"] = mean.astype(np.float32)
        self.buffers["variance"] = (m2 / count).astype(np.float32)
        return self

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.normalize(
            x, self.buffers["mean"], self.buffers["variance"], _EPSILON, self._channels, self._inner
        )

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return _core.normalize_backward(
            dy, self.buffers["variance"], _EPSILON, self._channels, self._inner
        )

    def lower(self, g: Graph, x: Value) -> Value:
        return g.normalize(
            x,
            mean=BufferRef(self, "mean"),
            variance=BufferRef(self, "variance"),
            channels=self._channels,
            inner=self._inner,
            epsilon=_EPSILON,
        )

    def get_config(self) -> dict[str, Any]:
        cfg = dict(super().get_config(), axis=self._axis)
        if self._given is not None:
            cfg.update(mean=self._given[0].tolist(), variance=self._given[1].tolist())
        return cfg


class _Augmentation(Layer):
    """Base of the random layers: the C++ spec, one seed per training call."""

    _kind: Any = None

    def __init__(
        self, seed: Optional[int] = None, name: Optional[str] = None, trainable: bool = True
    ) -> None:
        super().__init__(name, trainable)
        self._seed_arg = None if seed is None else as_int(seed, "seed", 0)
        self._rng = None if seed is None else np.random.default_rng(self._seed_arg)
        self._seed_cell = np.zeros(1, np.uint64)  # the compiled training step reads it
        self._spec: Any = None
        # (training, output of a contrast, spec) of the last forward
        self._last: Optional[tuple[bool, Optional[np.ndarray], Any]] = None

    @property
    def seed(self) -> Optional[int]:
        """The layer's own seed, or None (then the global generator, ``cnnx.set_seed``)."""
        return self._seed_arg

    @property
    def spec(self) -> Any:
        """The ``cnnx._core.AugmentSpec`` the kernels run (after build)."""
        return self._spec

    def _fill_spec(self, s: Any, input_shape: Shape) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build(self, input_shape: Shape) -> Shape:
        h, w, c = _image_shape(self, input_shape)
        if h is None or w is None:  # any size: a spec per batch size (_spec_for)
            self._spec = None
            return self._output_of(h, w, c)
        self._spec = self._spec_for(h, w, c)
        return (self._spec.oh, self._spec.ow, c)

    def _output_of(self, h: Optional[int], w: Optional[int], c: Optional[int]) -> Shape:
        """The output shape for an h x w input (None: known when data arrives)."""
        return (h, w, c)

    def _spec_for(self, h: int, w: int, c: Optional[int]) -> Any:
        """The checked spec for h x w x c images, kept for a few sizes."""
        cache = self.__dict__.setdefault("_specs", {})
        s = cache.get((h, w, c))
        if s is None:
            s = _core.AugmentSpec()
            s.kind = self._kind
            s.h, s.w, s.c = h, w, c
            s.oh, s.ow = h, w
            self._fill_spec(s, (h, w, c))
            s.check()
            if len(cache) >= 64:
                cache.clear()
            cache[(h, w, c)] = s
        return s

    def _spec_of(self, x: np.ndarray) -> Any:
        return self._spec if self._spec is not None else self._spec_for(*x.shape[1:])

    def draw_seed(self) -> None:
        """A fresh seed for the next training call (the compiled step calls this)."""
        rng = self._rng if self._rng is not None else _random.get_rng()
        self._seed_cell[0] = int(rng.integers(0, 2**63 - 1))

    def _identity_at_inference(self) -> bool:
        return True

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if not training and self._identity_at_inference():
            self._last = (False, None, None)
            return x
        if training:
            self.draw_seed()
        spec = self._spec_of(x)
        y = _core.augment_forward(spec, x, int(self._seed_cell[0]), training, 0)
        self._last = (training, y if self._kind == _core.AugmentKind.contrast else None, spec)
        return y

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        training, y, spec = self._last if self._last is not None else (False, None, self._spec)
        if not training and self._identity_at_inference():
            return dy
        return _core.augment_backward(spec, dy, y, int(self._seed_cell[0]), training, 0)

    def lower(self, g: Graph, x: Value) -> Value:
        h, w, c = x.shape
        spec = self._spec if self._spec is not None else self._spec_for(h, w, c)
        return g.augment(
            x,
            spec=spec,
            shape=(spec.oh, spec.ow, c),
            seed_cell=self._seed_cell,
            reseed=self.draw_seed,
            identity_at_inference=self._identity_at_inference(),
        )

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), seed=self._seed_arg)


class _Resampling(_Augmentation):
    """Geometric layers: fill mode, interpolation and fill value (Keras's)."""

    def __init__(
        self,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: Optional[int] = None,
        fill_value: float = 0.0,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(seed, name, trainable)
        self._fill_mode = _choice(fill_mode, "fill_mode", _FILL)
        self._interpolation = _choice(interpolation, "interpolation", _INTERP)
        self._fill_value = _real(fill_value, "fill_value")

    @property
    def fill_mode(self) -> str:
        """How points outside the image are filled."""
        return self._fill_mode

    @property
    def interpolation(self) -> str:
        """``"bilinear"`` or ``"nearest"``."""
        return self._interpolation

    @property
    def fill_value(self) -> float:
        """The value of ``fill_mode="constant"``."""
        return self._fill_value

    def _fill_spec(self, s: Any, input_shape: Shape) -> None:
        s.fill = _FILL[self._fill_mode]
        s.interp = _INTERP[self._interpolation]
        s.fill_value = self._fill_value

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            fill_mode=self._fill_mode,
            interpolation=self._interpolation,
            fill_value=self._fill_value,
        )


class RandomFlip(_Augmentation):
    """Flip each training image left-right and/or up-down, each with
    probability 1/2. ``mode``: ``"horizontal"``, ``"vertical"`` or
    ``"horizontal_and_vertical"`` (Keras's default; the two flips are
    drawn independently)."""

    _kind = _core.AugmentKind.flip
    _MODES = {
        "horizontal": (True, False),
        "vertical": (False, True),
        "horizontal_and_vertical": (True, True),
    }

    def __init__(
        self,
        mode: str = "horizontal_and_vertical",
        seed: Optional[int] = None,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(seed, name, trainable)
        self._mode = _choice(mode, "mode", self._MODES)

    @property
    def mode(self) -> str:
        """Which flips: horizontal, vertical or both."""
        return self._mode

    def _fill_spec(self, s: Any, input_shape: Shape) -> None:
        s.horizontal, s.vertical = self._MODES[self._mode]

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), mode=self._mode)


class RandomTranslation(_Resampling):
    """Shift each training image by a random fraction of its size:
    ``height_factor`` / ``width_factor`` are a number f (a shift in (-f, f))
    or a ``(lower, upper)`` pair, within [-1, 1]; positive moves the image
    down / right. Points from outside the image follow ``fill_mode``."""

    _kind = _core.AugmentKind.translate

    def __init__(
        self,
        height_factor: Factor,
        width_factor: Factor,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: Optional[int] = None,
        fill_value: float = 0.0,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, name, trainable)
        self._h = _range(height_factor, "height_factor", -1.0, 1.0)
        self._w = _range(width_factor, "width_factor", -1.0, 1.0)
        self._cfg = (height_factor, width_factor)

    @property
    def height_factor(self) -> Factor:
        """The height factor as given."""
        return self._cfg[0]

    @property
    def width_factor(self) -> Factor:
        """The width factor as given."""
        return self._cfg[1]

    def _fill_spec(self, s: Any, input_shape: Shape) -> None:
        super()._fill_spec(s, input_shape)
        s.lo, s.hi = (self._h[0], self._w[0]), (self._h[1], self._w[1])

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            height_factor=_jsonable(self._cfg[0]),
            width_factor=_jsonable(self._cfg[1]),
        )


class RandomRotation(_Resampling):
    """Rotate each training image about its centre by a random angle:
    ``factor`` is a fraction of a full turn, a number f (angles in
    (-f * 2 pi, f * 2 pi)) or a ``(lower, upper)`` pair; positive turns
    counter-clockwise."""

    _kind = _core.AugmentKind.rotate

    def __init__(
        self,
        factor: Factor,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: Optional[int] = None,
        fill_value: float = 0.0,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, name, trainable)
        self._f = _range(factor, "factor")
        self._cfg = factor

    @property
    def factor(self) -> Factor:
        """The factor as given."""
        return self._cfg

    def _fill_spec(self, s: Any, input_shape: Shape) -> None:
        super()._fill_spec(s, input_shape)
        s.lo, s.hi = (self._f[0], 0.0), (self._f[1], 0.0)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), factor=_jsonable(self._cfg))


class RandomZoom(_Resampling):
    """Zoom each training image about its centre: the zoom is ``1 + u``, u
    drawn from ``height_factor`` (a number f: (-f, f), or a ``(lower, upper)``
    pair above -1); positive zooms out, negative in. ``width_factor=None``
    keeps the aspect ratio (the width zooms as the height)."""

    _kind = _core.AugmentKind.zoom

    def __init__(
        self,
        height_factor: Factor,
        width_factor: Optional[Factor] = None,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: Optional[int] = None,
        fill_value: float = 0.0,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(fill_mode, interpolation, seed, fill_value, name, trainable)
        self._h = _range(height_factor, "height_factor", -1.0, None, lo_open=True)
        self._w = (
            None
            if width_factor is None
            else _range(width_factor, "width_factor", -1.0, None, lo_open=True)
        )
        self._cfg = (height_factor, width_factor)

    @property
    def height_factor(self) -> Factor:
        """The height factor as given."""
        return self._cfg[0]

    @property
    def width_factor(self) -> Optional[Factor]:
        """The width factor as given."""
        return self._cfg[1]

    def _fill_spec(self, s: Any, input_shape: Shape) -> None:
        super()._fill_spec(s, input_shape)
        w = self._w if self._w is not None else self._h
        s.lo, s.hi = (self._h[0], w[0]), (self._h[1], w[1])
        s.same_zoom = self._w is None

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            height_factor=_jsonable(self._cfg[0]),
            width_factor=_jsonable(self._cfg[1]),
        )


class RandomCrop(_Augmentation):
    """A random ``(height, width)`` window of each training image. At
    inference (Keras's rule): the largest centred window of the output's
    aspect ratio, resized bilinearly to ``(height, width)`` (the identity
    when the sizes match). The crop must fit in the input."""

    _kind = _core.AugmentKind.crop

    def __init__(
        self,
        height: int,
        width: int,
        seed: Optional[int] = None,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(seed, name, trainable)
        self._height = as_int(height, "height", 1)
        self._width = as_int(width, "width", 1)

    @property
    def height(self) -> int:
        """The crop's height."""
        return self._height

    @property
    def width(self) -> int:
        """The crop's width."""
        return self._width

    def _fill_spec(self, s: Any, input_shape: Shape) -> None:
        h, w, _ = input_shape
        if self._height > h:
            raise ValueError(
                f"height: the crop height {self._height} is larger than the input's "
                f"{h} (input shape {tuple(input_shape)})"
            )
        if self._width > w:
            raise ValueError(
                f"width: the crop width {self._width} is larger than the input's "
                f"{w} (input shape {tuple(input_shape)})"
            )
        s.oh, s.ow = self._height, self._width

    def _output_of(self, h: Optional[int], w: Optional[int], c: Optional[int]) -> Shape:
        return (self._height, self._width, c)  # whatever the input's size

    def _identity_at_inference(self) -> bool:
        return False

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), height=self._height, width=self._width)


class RandomContrast(_Augmentation):
    """Scale each training image's contrast by a random factor in
    ``[1 - lower, 1 + upper]`` (``factor``: a number for both, or a
    ``(lower, upper)`` pair; lower in [0, 1], upper >= 0), per channel about
    the image's mean: ``(x - mean) * factor + mean``, then clipped to
    ``value_range`` (Keras's default (0, 255); give (0, 1) for images in [0, 1])."""

    _kind = _core.AugmentKind.contrast

    def __init__(
        self,
        factor: Factor,
        value_range: tuple[float, float] = (0, 255),
        seed: Optional[int] = None,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(seed, name, trainable)
        if isinstance(factor, (tuple, list, np.ndarray)):
            if len(factor) != 2:
                raise ValueError(
                    f"factor: expected a number or a (lower, upper) pair, got {factor!r}"
                )
            lower, upper = (_real(f, "factor") for f in factor)
        else:
            lower = upper = _real(factor, "factor")
        if lower < 0 or upper < 0 or lower > 1:
            raise ValueError(
                f"factor: expected lower in [0, 1] and upper >= 0 (the factor is "
                f"drawn from [1 - lower, 1 + upper]), got ({lower}, {upper})"
            )
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(f"value_range: expected (low, high), got {value_range!r}")
        lo, hi = (_real(v, "value_range") for v in value_range)
        if not lo < hi:
            raise ValueError(f"value_range: expected low < high, got {tuple(value_range)}")
        self._range = (lower, upper)
        self._value_range = (lo, hi)
        self._cfg = factor

    @property
    def factor(self) -> Factor:
        """The factor as given."""
        return self._cfg

    @property
    def value_range(self) -> tuple[float, float]:
        """(low, high): outputs are clipped to it."""
        return self._value_range

    def _fill_spec(self, s: Any, input_shape: Shape) -> None:
        s.lo = (1.0 - self._range[0], 0.0)
        s.hi = (1.0 + self._range[1], 0.0)
        s.value_lo, s.value_hi = self._value_range

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(), factor=_jsonable(self._cfg), value_range=list(self._value_range)
        )


def _jsonable(v: Optional[Factor]) -> Any:
    return [float(x) for x in v] if isinstance(v, (tuple, list, np.ndarray)) else v
