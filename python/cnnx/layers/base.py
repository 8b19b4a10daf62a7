"""The Layer base class, weight initialisers and the flat parameter store.

A layer works on batches in NHWC float32 (``(m, n_H, n_W, n_C)``, or
``(m, n)`` after ``Flatten``). Shapes given to and returned by
:meth:`Layer.build` leave out the batch dimension ``m``.

Every layer has

- ``build(input_shape) -> output_shape``: creates the parameters;
- ``forward(x, training=False) -> y``;
- ``backward(dy) -> dx``: the gradient to the input, and the parameter
  gradients *added* to ``layer.grads`` (call ``zero_grad()`` between steps
  when driving the loop by hand; ``Sequential.fit`` does this for you);
- ``params`` / ``grads``: dicts ``name -> ndarray`` with the same keys
  (``"kernel"``, ``"bias"``, ``"gamma"``, ...);
- ``trainable``: set it to False to freeze the layer (its parameters are
  then neither given gradients nor updated, while gradients still flow
  *through* it to the input: what style transfer needs).

The public ``forward``/``backward`` check their input; models call the
unchecked ``_forward(x, training)`` / ``_backward(dy, need_dx, accumulate)``
once shapes were validated at build time (one kernel call per layer).

Inside a model all parameters live in one contiguous float32 buffer and all
gradients in another (:class:`ParamStore`); each layer's arrays are views
into them, so an optimiser updates every weight with one fused call and a
data-parallel trainer all-reduces one gradient buffer.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from .. import _core
from .. import random as _random
from .._types import ArrayLike, Shape
from .._validate import check_size

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = [
    "Layer",
    "ParamStore",
    "initialize",
    "INITIALIZERS",
    "get_layer_class",
    "layer_config",
    "layer_from_config",
    "walk",
    "deferred_init",
    "MAX_NESTING",
    "check_nesting",
]

_LAYER_CLASSES: dict[str, type] = {}
_TRAINABLE_VERSION = 0  # bumped whenever any layer's trainable flag changes
_EDITS = 0  # bumped by every edit a compiled plan may depend on (see Layer.__setattr__)


def edit_count() -> int:
    """A counter that changes whenever a built layer or a model's layer list is edited.

    Compiled plans remember the count they were built at and are rebuilt
    when it moved, so a plan never serves a model as it was before an edit.
    """
    return _EDITS


def note_edit() -> None:
    """Record an edit that compiled plans must see (see :func:`edit_count`)."""
    global _EDITS
    _EDITS += 1


class ParamDict(dict):
    """``layer.params`` / ``grads`` / ``buffers``: names to float32 arrays.

    Assigning ``layer.params["kernel"] = new`` copies ``new`` INTO the
    existing array (same shape required): inside a model every parameter is
    a view into one flat buffer that the optimiser and the compiled plans
    read, so rebinding the name to another array would leave them using
    the old values. New names come only from the layer itself.
    """

    def __init__(self, owner: Layer, what: str) -> None:
        super().__init__()
        self._owner = owner
        self._what = what

    def __setitem__(self, name: str, value: ArrayLike) -> None:
        if name not in self:
            raise KeyError(
                f"{self._what}: {type(self._owner).__name__} {self._owner.name!r} has "
                f"no entry {name!r} (it has {sorted(self)})"
            )
        dst = dict.__getitem__(self, name)
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != dst.shape:
            raise ValueError(
                f"{self._what}: {self._owner.name}.{name} has shape {dst.shape}, "
                f"got {arr.shape} (a new shape needs a new layer)"
            )
        dst[...] = arr

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"{self._what}: entries of a layer cannot be removed")

    def update(self, *args: Any, **kw: Any) -> None:
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def pop(self, *args: Any) -> Any:
        raise TypeError(f"{self._what}: entries of a layer cannot be removed")

    popitem = clear = setdefault = pop

    def _bind(self, name: str, arr: np.ndarray) -> None:
        """Point ``name`` at ``arr`` (the layer itself and ParamStore only)."""
        dict.__setitem__(self, name, arr)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_param_dict, (self._owner, self._what, dict(self)))


def _restore_param_dict(owner: Layer, what: str, items: dict[str, np.ndarray]) -> ParamDict:
    d = ParamDict(owner, what)
    dict.update(d, items)
    return d


#: how deep containers (Sequential, Residual) may nest inside each other; deeper
#: structures are refused with a ValueError (they would exhaust Python's stack)
MAX_NESTING = 64

_local = threading.local()  # this thread's deferred-initialisation settings


@contextlib.contextmanager
def deferred_init(
    limit: Optional[int] = None, what: str = "model", limit_text: Optional[str] = None
) -> Iterator[None]:
    """Build layers without drawing or allocating their weights.

    Inside the block :func:`initialize` returns zero-byte placeholders (no
    random draws), and a :class:`ParamStore` refuses to allocate more than
    ``limit`` floats (parameters plus buffers) with a ValueError naming
    ``what`` and both counts (``limit_text`` says where the limit comes from,
    e.g. "its data block holds only 63"). ``load_model`` builds a file's architecture this
    way with ``limit`` = the floats its data block holds, so a tiny file that
    declares a huge model fails at once instead of allocating gigabytes.
    The stored values must be copied in afterwards (they start at zero).
    """
    saved = getattr(_local, "deferred", None)
    if limit_text is None and limit is not None:
        limit_text = f"the limit here is {limit:,}"
    _local.deferred = (limit, what, limit_text)
    try:
        yield
    finally:
        _local.deferred = saved


def _deferred() -> Optional[tuple[Optional[int], str, Optional[str]]]:
    return getattr(_local, "deferred", None)


def _placeholder(shape: Sequence[int], value: float = 0.0) -> np.ndarray:
    """A read-only zero-byte array of ``shape`` (every element ``value``)."""
    return np.broadcast_to(np.float32(value), shape)


def check_nesting(layers: Iterable[Layer], argname: str = "layers") -> None:
    """Refuse containers nested deeper than :data:`MAX_NESTING` (no recursion here)."""
    stack = [(layer, 1) for layer in layers]
    while stack:
        layer, depth = stack.pop()
        subs = layer.sublayers()
        if subs:
            if depth >= MAX_NESTING:
                raise ValueError(
                    f"{argname}: containers (Sequential, Residual) nested more than "
                    f"{MAX_NESTING} deep are not supported (cnnx.layers.MAX_NESTING)"
                )
            stack.extend((sub, depth + 1) for sub in subs)


class _NestingGuard:
    """Counts recursive config conversions in this thread (see MAX_NESTING)."""

    def __init__(self, argname: str) -> None:
        self.argname = argname

    def __enter__(self) -> None:
        depth = getattr(_local, "config_depth", 0) + 1
        if depth > MAX_NESTING + 1:
            raise ValueError(
                f"{self.argname}: containers (Sequential, Residual) nested more "
                f"than {MAX_NESTING} deep are not supported "
                "(cnnx.layers.MAX_NESTING)"
            )
        _local.config_depth = depth

    def __exit__(self, *exc: object) -> None:
        _local.config_depth -= 1


INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "zeros", "ones")


def get_layer_class(name: str) -> type[Layer]:
    """The Layer subclass registered under ``name`` (for loading models).

    Private base classes (``_Pool2D``...) are not layers one can run: refused.
    """
    if not isinstance(name, str) or name.startswith("_") or name not in _LAYER_CLASSES:
        raise ValueError(f"layer: unknown layer class {_short(name)}")
    return _LAYER_CLASSES[name]


def layer_config(layer: Layer) -> dict[str, Any]:
    """``{"class": "Conv2D", "config": {...}}``: enough to rebuild the layer."""
    with _NestingGuard("layers"):
        return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(entry: dict[str, Any]) -> Layer:
    """Rebuild a layer from :func:`layer_config`'s output."""
    if not isinstance(entry, dict) or "class" not in entry or "config" not in entry:
        raise ValueError(f"layer: malformed layer entry {_short(entry)}")
    if not isinstance(entry["config"], dict):
        raise ValueError(f"layer: malformed config for {_short(entry['class'])}")
    cls = get_layer_class(entry["class"])
    with _NestingGuard("layers"):
        try:
            return cls.from_config(entry["config"])
        except TypeError as e:
            raise ValueError(
                f"layer: cannot rebuild {entry['class']} from its config ({e})"
            ) from None


def _short(value: object, limit: int = 200) -> str:
    """``repr`` cut to ``limit`` characters (error messages about file contents)."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<a deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def initialize(
    kind: str,
    shape: Sequence[int],
    fan_in: int,
    fan_out: int,
    rng: Optional[np.random.Generator] = None,
) -> np.ndarray:
    """A float32 array of ``shape`` drawn by a named initialiser.

    - ``he_normal``: N(0, 2/fan_in) (He et al. 2015, for ReLU layers);
    - ``he_uniform``: U(-sqrt(6/fan_in), +sqrt(6/fan_in));
    - ``glorot_normal``: N(0, 2/(fan_in + fan_out));
    - ``glorot_uniform``: U(-l, l), l = sqrt(6/(fan_in + fan_out)) (Glorot & Bengio 2010);
    - ``zeros``, ``ones``.

    ``rng`` defaults to the package generator, so ``cnnx.set_seed`` makes the
    draw repeatable.

    Examples:
        >>> from cnnx.layers import initialize
        >>> initialize("he_normal", (3, 3, 16, 32), fan_in=3 * 3 * 16, fan_out=3 * 3 * 32).shape
        (3, 3, 16, 32)
    """
    check_size(shape, "shape")
    if (
        kind in ("zeros", "ones", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform")
        and _deferred() is not None
    ):
        return _placeholder(shape, 1.0 if kind == "ones" else 0.0)  # overwritten by the caller
    rng = _random.get_rng() if rng is None else rng
    fan_in = max(int(fan_in), 1)
    fan_out = max(int(fan_out), 1)
    if kind == "zeros":
        return np.zeros(shape, np.float32)
    if kind == "ones":
        return np.ones(shape, np.float32)
    if kind == "he_normal":
        return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)
    if kind == "he_uniform":
        lim = math.sqrt(6.0 / fan_in)
        return rng.uniform(-lim, lim, shape).astype(np.float32)
    if kind == "glorot_normal":
        return (rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)
    if kind == "glorot_uniform":
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, shape).astype(np.float32)
    raise ValueError(f"kernel_initializer: expected one of {INITIALIZERS} or 'auto', got {kind!r}")


def format_shape(shape: Sequence[Optional[int]]) -> str:
    """``(28, 28, 8)`` -> ``"(28,28,8)"``, ``(120,)`` -> ``"(120)"`` (the seed's style);
    a size known only when data arrives shows as None."""
    return "(" + ",".join("None" if s is None else str(int(s)) for s in shape) + ")"


class Layer:
    """Base class of every layer (see the module docstring for the contract).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> class Double(cnnx.Layer):
        ...     def _forward(self, x, training):
        ...         return 2 * x
        ...     def _backward(self, dy, need_dx, accumulate):
        ...         return 2 * dy
        >>> Double().forward(np.ones((1, 2), np.float32))
        array([[2., 2.]], dtype=float32)
    """

    #: subclasses with parameters list ``(name, ...)`` here, in storage order
    has_params = False

    #: public attributes that fix a built layer's parameter or output shapes:
    #: changing one after build raises (build a new layer instead)
    _fixed_after_build: tuple[str, ...] = ()
    #: public attributes whose changes no compiled plan depends on
    _untracked = frozenset({"name"})
    # a tuple for one input or output, a list of them for a Model with several
    input_shape: Any
    output_shape: Any
    _last_out_shape: Any  # of the last training forward: what backward's dy must match

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _LAYER_CLASSES[cls.__name__] = cls

    def __init__(self, name: Optional[str] = None, trainable: bool = True) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        self.name = name if name is not None else type(self).__name__
        self._trainable = bool(trainable)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._params = ParamDict(self, "params")
        self._grads = ParamDict(self, "grads")
        # state saved with the model but not trained (BatchNorm statistics)
        self._buffers = ParamDict(self, "buffers")

    def __setattr__(self, name: str, value: Any) -> None:
        # An edit of a built layer is seen by the next predict / fit: compiled
        # plans are rebuilt (edit_count), or the edit is refused right away
        # when it would change the layer's shapes.
        if name[0] != "_" and self.__dict__.get("built", False):
            if name in type(self)._fixed_after_build:
                raise AttributeError(
                    f"{name}: {type(self).__name__} {self.name!r} is built, and its {name} fixes "
                    "its parameter or output shapes; build a new layer to change it"
                )
            if name in ("params", "grads", "buffers"):
                raise AttributeError(
                    f"{name}: assign entries (layer.{name}['kernel'] = array, "
                    "copied in place), not the whole dict"
                )
            if name not in type(self)._untracked:
                note_edit()
        object.__setattr__(self, name, value)

    @property
    def params(self) -> ParamDict:
        """Parameters: name -> float32 array (assigning an entry copies in place)."""
        return self._params

    @property
    def grads(self) -> ParamDict:
        """Parameter gradients, same names as :attr:`params`."""
        return self._grads

    @property
    def buffers(self) -> ParamDict:
        """Saved, untrained state (BatchNormalization's running statistics)."""
        return self._buffers

    # ---- trainable / frozen -------------------------------------------------
    @property
    def trainable(self) -> bool:
        """False freezes the layer: no parameter gradients, no updates."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        global _TRAINABLE_VERSION
        self._trainable = bool(value)
        _TRAINABLE_VERSION += 1  # parameter stores recompute their trainable ranges
        note_edit()  # compiled training steps drop or add gradient slots
        for sub in self.sublayers():
            sub.trainable = value

    # ---- structure ----------------------------------------------------------
    def sublayers(self) -> list[Layer]:
        """Direct child layers (containers such as Residual override this)."""
        return []

    def add_param(self, name: str, value: ArrayLike) -> np.ndarray:
        """Register a parameter (float32 array) and its zeroed gradient.

        On a rebuild (a built layer given a new input size) an existing
        parameter of the same shape is kept, never re-initialised; one whose
        shape would change is refused. Under :func:`deferred_init` a
        placeholder from :func:`initialize` is kept as it is (the ParamStore
        allocates the real array).
        """
        if (
            _deferred() is not None
            and isinstance(value, np.ndarray)
            and value.dtype == np.float32
            and not value.flags.writeable
            and name not in self._params
        ):
            self._params._bind(name, value)
            self._grads._bind(name, _placeholder(value.shape))
            return value
        value = np.ascontiguousarray(value, dtype=np.float32)
        old = self._params.get(name)
        if old is not None:
            if old.shape != value.shape:
                raise ValueError(
                    f"input_shape: {type(self).__name__} {self.name!r} would change "
                    f"its {name} from {old.shape} to {value.shape}; build a new layer"
                )
            return old
        self._params._bind(name, value)
        self._grads._bind(name, np.zeros_like(value))
        return value

    def add_buffer(self, name: str, value: ArrayLike) -> np.ndarray:
        """Register saved, untrained state (kept on a rebuild of the same shape;
        a :func:`deferred_init` placeholder is kept as it is)."""
        if (
            _deferred() is not None
            and isinstance(value, np.ndarray)
            and value.dtype == np.float32
            and not value.flags.writeable
            and name not in self._buffers
        ):
            self._buffers._bind(name, value)
            return value
        value = np.ascontiguousarray(value, dtype=np.float32)
        old = self._buffers.get(name)
        if old is not None and old.shape == value.shape:
            return old
        self._buffers._bind(name, value)
        return value

    def count_params(self) -> int:
        """Number of scalars in this layer's parameters (children included)."""
        n = sum(int(p.size) for p in self.params.values())
        return n + sum(s.count_params() for s in self.sublayers())

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter (children included), in storage order."""
        return [layer.params[name].copy() for layer, _ in walk([self]) for name in layer.params]

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        """Set every parameter from a list like :meth:`get_weights` returns."""
        targets = [(layer, name) for layer, _ in walk([self]) for name in layer.params]
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(f"weights: expected {len(targets)} arrays, got {len(weights)}")
        for (layer, name), w in zip(targets, weights):
            w = np.asarray(w, np.float32)
            if w.shape != layer.params[name].shape:
                raise ValueError(
                    f"weights: {layer.name}.{name} expects shape "
                    f"{layer.params[name].shape}, got {w.shape}"
                )
            layer.params[name] = w

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero (children included)."""
        for g in self.grads.values():
            g.fill(0.0)
        for s in self.sublayers():
            s.zero_grad()

    # ---- the computation ----------------------------------------------------
    def build(self, input_shape: Any) -> Any:
        """Create parameters for inputs of ``input_shape`` (no batch dim); return the output shape.

        Building again for the same shape does nothing; for another shape the
        layer keeps its parameters (a convolution's weights do not depend on
        the image size) or refuses, naming the parameter.
        """
        input_shape = tuple(None if s is None else int(s) for s in input_shape)
        if self.built and input_shape == self.input_shape:
            return self.output_shape
        self.input_shape = input_shape
        out = tuple(self._build(input_shape))
        n = 1
        for d in out:
            n *= 1 if d is None else d
        if n >= 2**62:  # no batch of it could ever be allocated or indexed
            raise ValueError(
                f"input_shape: layer {self.name!r} would output {out} "
                f"({n} values per example), too many to index"
            )
        self.output_shape = out
        self.built = True
        return self.output_shape

    def _build(self, input_shape: Shape) -> Sequence[Optional[int]]:
        return input_shape

    def _check_input(self, x: ArrayLike) -> np.ndarray:
        from .._validate import as_float32

        x = as_float32(x, "x")
        if x.ndim < 1:
            raise ValueError(f"x: expected a batch (m, ...), got shape {x.shape}")
        from .._validate import same_shape

        if not self.built:
            self.build(x.shape[1:])
        elif not same_shape(tuple(x.shape[1:]), self.input_shape):
            raise ValueError(
                f"x: expected a batch of shape (m, {', '.join(map(str, self.input_shape))}) "
                f"for layer {self.name}, got {x.shape}"
            )
        return x

    def forward(self, x: ArrayLike, training: bool = False) -> np.ndarray:
        """Compute the layer on a batch ``x``; ``training`` selects batch statistics / dropout."""
        x = self._check_input(x)
        y = self._forward(x, bool(training))
        if training:
            self._has_forward = True
            self._last_out_shape = tuple(y.shape)
        return y

    def backward(self, dy: ArrayLike) -> np.ndarray:
        """Gradient to the input for the last ``forward``; parameter gradients are accumulated."""
        from .._validate import as_float32

        if not self.built or getattr(self, "_has_forward", False) is False:
            raise ValueError(
                f"dy: layer {self.name} has no forward pass to differentiate "
                "(call forward(x, training=True) first)"
            )
        dy = as_float32(dy, "dy")
        expected = self._last_out_shape
        if tuple(dy.shape) != expected:
            raise ValueError(f"dy: expected shape {expected} (the last output's), got {dy.shape}")
        return self._backward(dy, True, True)

    def __call__(self, x: Any, training: bool = False) -> Any:
        """On arrays: :meth:`forward`. On symbolic tensors (``cnnx.Input``):
        adds this layer to the graph being described and returns its output
        tensor (the functional API)."""
        from ..models.node import call_symbolic, is_symbolic

        if is_symbolic(x):
            return call_symbolic(self, x)
        return self.forward(x, training)

    def softmax_logits(self) -> Optional[np.ndarray]:
        """If this layer's output is a softmax: the softmax's input from the last
        training forward (the logits a fused softmax-cross-entropy needs when
        the model runs layer by layer). None otherwise."""
        return None

    def lower(self, g: Graph, x: Any) -> Any:
        """Describe this layer as ops of the typed graph ``g`` (cnnx.graph).

        ``x`` is the input Value (a list for layers with several inputs);
        returns the output Value. A layer without its own lowering becomes a
        node that runs its Python ``forward``/``backward``: it works
        everywhere, but a model holding one runs layer by layer instead of
        as one compiled C++ call.
        """
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        return g.python(self, xs, self.output_shape)

    def _forward(self, x: Any, training: bool) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _backward(
        self, dy: Any, need_dx: bool, accumulate: bool
    ) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_grad(self, name: str, g: np.ndarray, accumulate: bool) -> None:
        """Store a freshly computed parameter gradient: add it, or overwrite."""
        dst = self.grads[name]
        if accumulate:
            np.add(dst, g.reshape(dst.shape), out=dst)
        else:
            np.copyto(dst, g.reshape(dst.shape))

    # ---- description --------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-friendly values (to save the model)."""
        return {"name": self.name, "trainable": self._trainable}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """A layer made from the dict ``get_config`` returned (used when a model is loaded)."""
        return cls(**config)

    def summary_formulas(self) -> list[str]:
        """Strings explaining the output size and parameter count (summary(formulas=True))."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def walk(layers: Iterable[Layer], parent_trainable: bool = True) -> Iterator[tuple[Layer, bool]]:
    """Yield ``(layer, effectively_trainable)`` for layers and their children, depth first."""
    for layer in layers:
        t = parent_trainable and layer.trainable
        yield layer, t
        yield from walk(layer.sublayers(), t)


class ActivatedLinearMixin:
    """The backward shared by Conv2D and Dense: through the activation, then
    the linear part (``_backward_linear``). A fused ReLU is undone from the
    saved output; any other activation runs its own backward."""

    # what Conv2D and Dense define
    _fused: bool
    _post: Any
    _z: Optional[np.ndarray]
    _y: Optional[np.ndarray]
    name: str
    activation: Optional[str]
    grads: ParamDict

    def _backward_linear(
        self, dz: np.ndarray, need_dx: bool, accumulate: bool
    ) -> Optional[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _backward(self, dy: Any, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if self._fused:
            dy = _core.relu_backward(dy, self._y)
        elif self._post is not None:
            dy = self._post.backward(dy, self._z, self._y)
        elif not isinstance(dy, np.ndarray):  # a SoftmaxInputGrad meant for another layer
            raise TypeError(f"dy: {self.name} has no softmax to take it through")
        return self._backward_linear(dy, need_dx, accumulate)

    def softmax_logits(self) -> Optional[np.ndarray]:
        return self._z if self.activation == "softmax" else None

    def _store_grads(self, accumulate: bool, **grads: np.ndarray) -> None:
        """Write each gradient into its slot of the flat buffer, or add to it
        when gradients accumulate over several backward passes."""
        for name, value in grads.items():
            slot = self.grads[name]
            if accumulate:
                np.add(slot, value, out=slot)
            else:
                np.copyto(slot, value)


class ParamStore:
    """All parameters of a model in one flat float32 buffer, gradients in another.

    Each layer's ``params[name]`` / ``grads[name]`` become views into
    ``self.params`` / ``self.grads``; segments start on 16-float (64-byte)
    boundaries so the SIMD kernels see aligned data. ``slots`` lists
    ``(layer, name, start, size, shape)`` in storage order.
    """

    ALIGN = 16

    def __init__(self, layers: Iterable[Layer]) -> None:
        self.layers = list(layers)
        slots = []
        offset = 0
        for layer, _ in walk(self.layers):
            for name, p in layer.params.items():
                start = -(-offset // self.ALIGN) * self.ALIGN
                slots.append((layer, name, start, int(p.size), p.shape))
                offset = start + int(p.size)
        total = -(-offset // self.ALIGN) * self.ALIGN
        deferred = _deferred()
        if deferred is not None:
            limit, what, limit_text = deferred
            n_buffers = sum(
                int(b.size) for layer, _ in walk(self.layers) for b in layer.buffers.values()
            )
            needed = sum(s[3] for s in slots) + n_buffers
            if limit is not None and needed > limit:
                raise ValueError(
                    f"{what}: the architecture needs {needed:,} parameter and "
                    f"buffer values, but {limit_text}"
                )
            for layer, _ in walk(self.layers):  # placeholders -> real, writable arrays
                for k, b in list(layer.buffers.items()):
                    if not b.flags.writeable:
                        layer.buffers._bind(k, np.array(b, np.float32))
        self.size = total
        self.params = _aligned_empty(total)
        self.grads = _aligned_empty(total)
        self.params.fill(0.0)
        self.grads.fill(0.0)
        for layer, name, start, size, shape in slots:
            pv = self.params[start : start + size].reshape(shape)
            gv = self.grads[start : start + size].reshape(shape)
            pv[...] = layer.params[name]
            gv[...] = layer.grads[name]
            layer.params._bind(name, pv)
            layer.grads._bind(name, gv)
        self.slots = slots
        self._runs_key: Optional[int] = None
        self._runs: list[tuple[int, int]] = []
        for layer, _ in walk(self.layers):
            if hasattr(layer, "_params_rebound"):
                layer._params_rebound()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A copy or an unpickled model gets independent arrays for the flat
        # buffers and for each layer's parameters: make the layers' arrays
        # views into the flat buffers again, or an optimiser step would
        # update the buffers while the layers kept their old values.
        self.__dict__.update(state)
        params, grads = _aligned_empty(self.size), _aligned_empty(self.size)
        params[...] = self.params
        grads[...] = self.grads
        self.params, self.grads = params, grads
        for layer, name, start, size, shape in self.slots:
            layer.params._bind(name, params[start : start + size].reshape(shape))
            layer.grads._bind(name, grads[start : start + size].reshape(shape))
        for layer, _ in walk(self.layers):
            if hasattr(layer, "_params_rebound"):
                layer._params_rebound()

    def trainable_runs(self) -> list[tuple[int, int]]:
        """Contiguous ``(start, end)`` ranges holding trainable parameters.

        One range (the whole buffer) when nothing is frozen, so an optimiser
        makes a single fused call.
        """
        if self._runs_key == _TRAINABLE_VERSION:
            return self._runs
        flags = tuple(t for layer, t in walk(self.layers) if layer.params)
        trainable = {id(layer) for layer, t in walk(self.layers) if t}
        runs: list[list[int]] = []
        for layer, _name, start, size, _shape in self.slots:
            if id(layer) not in trainable:
                continue
            end = start + size
            # only alignment padding (< ALIGN floats) between two segments:
            # no other parameter can sit there, so merge the ranges
            if runs and start - runs[-1][1] < self.ALIGN:
                runs[-1][1] = end
            else:
                runs.append([start, end])
        if len(runs) == 1 and all(flags):
            runs = [[0, self.size]]
        self._runs = [(r[0], r[1]) for r in runs]
        self._runs_key = _TRAINABLE_VERSION
        self.all_trainable = self._runs == [(0, self.size)]
        return self._runs

    def carry(self, old: ParamStore, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Arrays laid out like this store's parameters, from ``arrays`` laid out
        like ``old``'s: each parameter both stores hold keeps its values, the
        others start at zero (an optimiser's state after the model changed)."""
        where = {(id(layer), name): start for layer, name, start, _, _ in old.slots}
        out = {}
        for key, src in arrays.items():
            dst = np.zeros(self.params.shape, np.float32)
            for layer, name, start, size, _ in self.slots:
                s = where.get((id(layer), name))
                if s is not None and s + size <= src.size:
                    dst[start : start + size] = src[s : s + size]
            out[key] = dst
        return out

    def count(self) -> tuple[int, int]:
        """(total, trainable) parameter counts."""
        total = sum(s[3] for s in self.slots)
        trainable_ids = {id(layer) for layer, t in walk(self.layers) if t}
        train = sum(s[3] for s in self.slots if id(s[0]) in trainable_ids)
        return total, train


def _aligned_empty(n: int) -> np.ndarray:
    """A 64-byte-aligned float32 array of n elements."""
    n = max(int(n), 1)
    raw = np.empty(n + 16, np.float32)
    off = (-(raw.ctypes.data // 4)) % 16
    return raw[off : off + n]
