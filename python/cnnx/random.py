"""One seed for every random choice cnnx makes.

``cnnx.set_seed(n)`` seeds weight initialisation, the shuffling in
``fit`` and the masks of ``Dropout``, so that a run can be repeated exactly::

    cnnx.set_seed(0); m1 = make_model()   # same weights ...
    cnnx.set_seed(0); m2 = make_model()   # ... as these

Internally there is one NumPy ``Generator``; :func:`get_rng` hands it out,
and :func:`next_seed` draws an integer seed from it for code (such as the C++
dropout kernel) that wants a plain number.
"""

import numpy as np

from ._validate import as_int

__all__ = ["set_seed", "get_rng", "next_seed"]

_rng = np.random.default_rng()


def set_seed(seed):
    """Seed initialisation, shuffling and dropout: repeatable runs.

    ``seed`` is an int >= 0. Returns nothing.

    Examples:
        >>> import cnnx
        >>> def first_kernel():
        ...     layer = cnnx.Dense(3); layer.build((4,)); return layer.params["kernel"].copy()
        >>> cnnx.set_seed(0); k1 = first_kernel(); cnnx.set_seed(0); k2 = first_kernel()
        >>> bool((k1 == k2).all())                                    # same seed, same weights
        True
    """
    global _rng
    seed = as_int(seed, "seed", 0)
    _rng = np.random.default_rng(seed)


def get_rng():
    """The package's NumPy ``Generator`` (re-created by :func:`set_seed`)."""
    return _rng


def next_seed():
    """A 63-bit integer drawn from the package generator."""
    return int(_rng.integers(0, 2**63 - 1))
