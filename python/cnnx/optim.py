"""Optimisers on the fused C++ updates: SGD (momentum, Nesterov, weight
decay), Adam and AdamW, with PyTorch's update rules.

A model keeps every parameter in one flat float32 buffer and every gradient
in another (``model.store.params`` / ``model.store.grads``; each layer's
arrays are views into them). An optimiser therefore makes one C++ call per
step over the whole model: one pass over parameters, gradients and its own
state (velocity, or Adam's two moments), which it keeps flat too. Frozen
layers (``layer.trainable = False``) are skipped by updating only the
trainable ranges of the buffer.

Use with a model::

    model.compile(optimizer=cnnx.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")

or by hand: ``opt.bind(model.store)``, then ``opt.step()`` after each
backward pass.
"""
import numbers

import numpy as np

from . import _core

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "get_optimizer"]


def _number(v, name, minimum=None, maximum=None, open_min=False, open_max=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    if minimum is not None and (v < minimum or (open_min and v == minimum)):
        op = ">" if open_min else ">="
        raise ValueError(f"{name}: expected a number {op} {minimum}, got {v}")
    if maximum is not None and (v > maximum or (open_max and v == maximum)):
        op = "<" if open_max else "<="
        raise ValueError(f"{name}: expected a number {op} {maximum}, got {v}")
    return v


class Optimizer:
    """Base class: holds ``lr``, the step count and flat state buffers.

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.SGD(lr=0.1)
        >>> opt.lr
        0.1
    """

    #: names of the flat state buffers (same length as the parameter buffer)
    state_names: tuple[str, ...] = ()

    #: a step count from a file must stay far from int64 overflow in the kernels
    MAX_ITERATIONS = 2**53

    def __init__(self, lr):
        self.lr = _number(lr, "lr", 0.0, open_min=True)
        #: the rate when training first started (set by ``fit``, never overwritten,
        #: saved with the model): what the built-in schedules decay from
        self.initial_lr = None
        self.iterations = 0
        self.store = None
        self.state = {}
        self._state_loaded = False  # state came from load_state_dict, not yet bound

    # ---- binding to a model's parameters ------------------------------------
    def bind(self, store):
        """Attach to a :class:`cnnx.layers.base.ParamStore` (done by ``compile``).

        State of the same size carries over. State restored by
        :meth:`load_state_dict` (e.g. by ``load_model``) must match the
        parameters' size: a mismatch raises ValueError naming the state array
        instead of silently restarting from zeros. State left from an earlier
        binding to a model of another size starts again at zero.
        """
        loaded = self._state_loaded
        for name in self.state_names:
            old = self.state.get(name)
            if loaded and old is not None and old.shape != store.params.shape:
                raise ValueError(f"state: optimizer state {name!r} has {old.size} values, the "
                                 f"model has {store.params.size} parameters")
        self.store = store
        self._state_loaded = False
        for name in self.state_names:
            old = self.state.get(name)
            if old is None or old.shape != store.params.shape:
                buf = np.zeros(store.params.shape, np.float32)
                self.state[name] = buf

    def _check_bound(self):
        if self.store is None:
            raise ValueError("optimizer: not attached to any parameters (call "
                             "model.compile(optimizer=...) or optimizer.bind(model.store))")

    def step(self):
        """Apply one update to every trainable parameter from its gradient."""
        store = self.store
        if store is None:
            self._check_bound()
        self.iterations += 1
        p, g = store.params, store.grads
        runs = store.trainable_runs()
        if store.all_trainable:
            self._update(p, g, self.state)
        else:
            for a, b in runs:
                self._update(p[a:b], g[a:b], {k: v[a:b] for k, v in self.state.items()})

    def _update(self, p, g, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def zero_grad(self):
        """Zero all gradients of the bound parameters (one fill of the flat buffer)."""
        self._check_bound()
        self.store.grads.fill(0.0)

    # ---- saving -------------------------------------------------------------
    def get_config(self):
        """The hyper-parameters as a dict (saved with a compiled model)."""
        return {"lr": self.lr}

    def state_dict(self):
        """Hyper-parameters, step count and copies of the state buffers."""
        return {"class": type(self).__name__, "config": self.get_config(),
                "iterations": self.iterations, "initial_lr": self.initial_lr,
                "state": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, d):
        """Restore what :meth:`state_dict` returned (sizes must match when bound)."""
        it = d.get("iterations", 0)
        if isinstance(it, (bool, np.bool_)) or not isinstance(it, numbers.Integral) or \
                not 0 <= it <= self.MAX_ITERATIONS:
            raise ValueError(f"iterations: expected an int in [0, 2**53], got {it!r}")
        initial_lr = d.get("initial_lr")
        if initial_lr is not None:
            initial_lr = _number(initial_lr, "initial_lr", 0.0, open_min=True)
        state = {}
        for k, v in d.get("state", {}).items():
            if k not in self.state_names:
                raise ValueError(f"state: unknown optimizer state {k!r} for {type(self).__name__}")
            try:
                v = np.ascontiguousarray(v, np.float32).reshape(-1)
            except (TypeError, ValueError) as e:
                raise ValueError(f"state: optimizer state {k!r} is not an array of numbers "
                                 f"({e})") from None
            if self.store is not None and v.shape != self.store.params.shape:
                raise ValueError(f"state: optimizer state {k!r} has {v.size} values, the "
                                 f"model has {self.store.params.size} parameters")
            state[k] = v.copy()
        self.iterations = int(it)
        self.initial_lr = initial_lr
        self.state.update(state)
        self._state_loaded = self.store is None and bool(state)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's rule (dampening 0)::

        g = grad + weight_decay * param
        v = momentum * v + g                  (if momentum)
        g = g + momentum * v if nesterov else v
        param -= lr * g

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
        >>> # model.compile(optimizer=opt, loss="cross_entropy")
    """

    state_names = ("velocity",)

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = _number(momentum, "momentum", 0.0, 1.0, open_max=True)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0")
        self.weight_decay = _number(weight_decay, "weight_decay", 0.0)
        if self.momentum == 0.0:
            self.state_names = ()

    def _update(self, p, g, state):
        _core.sgd_update(p, g, state.get("velocity"), self.lr, self.momentum, self.nesterov,
                         self.weight_decay)

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's rule; ``weight_decay`` is an L2 term added
    to the gradient (use :class:`AdamW` for decoupled decay).

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.Adam(lr=1e-3)
        >>> # model.compile(optimizer=opt, loss="cross_entropy")
    """

    state_names = ("m", "v")
    decoupled = False

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self.beta1 = _number(beta1, "beta1", 0.0, 1.0, open_max=True)
        self.beta2 = _number(beta2, "beta2", 0.0, 1.0, open_max=True)
        self.eps = _number(eps, "eps", 0.0, open_min=True)
        self.weight_decay = _number(weight_decay, "weight_decay", 0.0)

    def _update(self, p, g, state):
        _core.adam_update(p, g, state["m"], state["v"], self.iterations, self.lr, self.beta1,
                          self.beta2, self.eps, self.weight_decay, self.decoupled)

    def get_config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter):
    ``param *= 1 - lr * weight_decay`` before the Adam step (default 0.01, as PyTorch).

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.AdamW(lr=2e-3, weight_decay=0.01)
        >>> # model.compile(optimizer=opt, loss="cross_entropy")
    """

    decoupled = True

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get_optimizer(spec):
    """An Optimizer from an instance or a name ("sgd", "adam", "adamw").

    Examples:
        >>> import cnnx
        >>> type(cnnx.optim.get_optimizer("adam")).__name__
        'Adam'
    """
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]()
    raise ValueError(f"optimizer: expected an Optimizer or one of {sorted(_BY_NAME)}, got {spec!r}")


def optimizer_from_state(d):
    """Rebuild an optimiser from :meth:`Optimizer.state_dict` output."""
    cls = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}.get(d.get("class"))
    if cls is None:
        raise ValueError(f"optimizer: unknown optimizer class {d.get('class')!r}")
    opt = cls(**d.get("config", {}))
    opt.load_state_dict(d)
    return opt
