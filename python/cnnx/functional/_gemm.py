"""Matrix multiplication on the core SGEMM."""

from __future__ import annotations

from .. import _core
from .._types import ArrayLike
from .._validate import as_float32


def matmul(a: ArrayLike, b: ArrayLike):
    """``a @ b`` for 2-D float32 arrays on cnnx's own SGEMM.

    Inputs are converted to C-contiguous float32 (a copy only if needed).
    Shapes ``(M, K)`` and ``(K, N)`` give an ``(M, N)`` result.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> a = np.ones((2, 3), np.float32); b = np.ones((3, 4), np.float32)
        >>> F.matmul(a, b)
        array([[3., 3., 3., 3.],
               [3., 3., 3., 3.]], dtype=float32)
    """
    a = as_float32(a, "a", ndim=2)
    b = as_float32(b, "b", ndim=2)
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"b: expected {a.shape[1]} rows to match a's {a.shape[1]} columns, got shape {b.shape}"
        )
    return _core.sgemm(a, b)
