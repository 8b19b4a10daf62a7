"""Flatten: ``(m, n_H, n_W, n_C) -> (m, n_H*n_W*n_C)``, a free reshape (no copy).

NHWC flattens channel-fastest, as Keras does; a model imported from an NCHW
framework must permute its first dense layer's rows accordingly.
"""
import math

from .base import Layer

__all__ = ["Flatten"]


class Flatten(Layer):
    """Flatten everything but the batch dimension (a view: no data moves).

    ``Sequential.summary()`` leaves it out of the table by default (it changes
    no value and the previous row already shows the same activation size), as
    the course's table does; ``summary(show_all=True)`` lists it.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.Flatten().forward(np.zeros((2, 5, 5, 16), np.float32)).shape
        (2, 400)
    """

    is_reshape = True

    def _build(self, input_shape):
        if None in input_shape:
            raise ValueError(f"input_shape: Flatten needs a fixed size, got {input_shape} (for "
                             "inputs of any size use GlobalAvgPool2D before the Dense layers)")
        return (int(math.prod(input_shape)),)

    def _forward(self, x, training):
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy, need_dx, accumulate):
        if not need_dx:
            return None
        return dy.reshape((dy.shape[0],) + self.input_shape)

    def lower(self, g, x):
        return g.reshape(x, self.output_shape)
