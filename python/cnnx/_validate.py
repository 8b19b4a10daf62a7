"""Argument checking shared by the public API.

Every public entry checks its inputs here before any kernel runs, and raises
ValueError or TypeError naming the argument, what was expected and what was
given (DESIGN.md, "Errors and bad input").
"""

import numbers

import numpy as np


def as_float32(x, name, ndim=None):
    """Return ``x`` as a C-contiguous float32 array (copying only if needed)."""
    if x is None:
        raise TypeError(f"{name}: expected an array, got None")
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name}: expected an array of numbers, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"{name}: cannot be converted to an array ({e})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: expected a real array, got dtype {arr.dtype}")
    try:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    except ValueError as e:  # e.g. a broadcast view too big to copy: name the argument
        raise ValueError(
            f"{name}: cannot be copied to a float32 array of shape {arr.shape} ({e})"
        ) from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr


def as_int(v, name, minimum=None):
    """An int (NumPy integers accepted, bools and floats rejected)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral,)):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    return v


def as_pair(v, name, minimum=None):
    """An int or a pair of ints -> (h, w)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or a pair (h, w), got {v!r}")
        return (as_int(v[0], name, minimum), as_int(v[1], name, minimum))
    v = as_int(v, name, minimum)
    return (v, v)


def as_dim(v, name):
    """A dimension: an int >= 1, or None (any size, known only when data arrives)."""
    return None if v is None else as_int(v, name, 1)


def same_shape(shape, pattern):
    """``shape`` (concrete) fits ``pattern`` (None matches any size)."""
    return len(shape) == len(pattern) and all(p is None or s == p for s, p in zip(shape, pattern))


def check_size(shape, name):
    """Refuse shapes whose element count overflows 63-bit indexing (None dims count as 1)."""
    total = 1
    for s in shape:
        total *= 1 if s is None else int(s)
    if total >= 2**62:
        raise ValueError(f"{name}: shape {tuple(shape)} has {total} elements, too many to index")
    return total
