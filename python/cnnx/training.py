"""The epoch loop behind ``model.fit`` (kept here for ``cnnx.training.History``
and ``cnnx.training.fit``; it lives in :mod:`cnnx.trainers.fit_loop`)."""

from .trainers.fit_loop import History, fit

__all__ = ["History", "fit"]
