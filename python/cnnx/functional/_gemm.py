"""Matrix multiplication on the core SGEMM."""
from .. import _core
from .._validate import as_float32


def matmul(a, b):
    """``a @ b`` for 2-D float32 arrays on cnnx's own SGEMM.

    Inputs are converted to C-contiguous float32 (a copy only if needed).
    Shapes ``(M, K)`` and ``(K, N)`` give an ``(M, N)`` result.
    """
    a = as_float32(a, "a", ndim=2)
    b = as_float32(b, "b", ndim=2)
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"b: expected {a.shape[1]} rows to match a's {a.shape[1]} columns, got shape {b.shape}"
        )
    return _core.sgemm(a, b)
