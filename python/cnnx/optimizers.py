"""Keras's spelling of :mod:`cnnx.optim`: ``cnnx.optimizers.SGD(learning_rate=0.1)``
is ``cnnx.optim.SGD(lr=0.1)``, the same class."""

from .optim import *  # noqa: F403 (the same names, by design)
from .optim import __all__  # noqa: F401
