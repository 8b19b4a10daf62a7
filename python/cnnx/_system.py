"""Build facts, the active SIMD level and the thread budget."""

from ._version import __version__
from . import _core

# More threads than this cannot help, and OpenMP aborts the process when it
# fails to create a thread (cnnx.set_num_threads(10**6) then a large GEMM).
MAX_THREADS = 1024


def info():
    """Describe this build: version, SIMD level, threads and OpenMP.

    Returns a dict with ``version``, ``isa`` (``'avx512'``, ``'avx2'`` or
    ``'generic'``: the level the kernels use now, which the environment
    variable ``CNNX_ISA`` can lower), ``detected_isa`` (the best the CPU
    supports), ``num_threads``, ``openmp`` and ``gemm_kernel``.

    Examples:
        >>> import cnnx
        >>> sorted(k for k in cnnx.info() if k in ("version", "isa", "num_threads"))
        ['isa', 'num_threads', 'version']
    """
    return {
        "version": __version__,
        "isa": _core.active_isa(),
        "detected_isa": _core.detected_isa(),
        "num_threads": _core.get_num_threads(),
        "openmp": bool(_core.have_openmp()),
        "gemm_kernel": _core.gemm_kernel()["name"],
    }


def set_num_threads(n):
    """Set how many threads the kernels may use (at least 1).

    The default comes from ``OMP_NUM_THREADS`` or the number of cores. Small
    operations still run on one thread, since a fork/join would cost more
    than it saves.

    Examples:
        >>> import cnnx
        >>> before = cnnx.get_num_threads()
        >>> cnnx.set_num_threads(1); cnnx.get_num_threads()
        1
        >>> cnnx.set_num_threads(before)
    """
    if isinstance(n, bool) or not isinstance(n, int):
        try:
            import numpy as np

            if isinstance(n, np.integer):
                n = int(n)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(f"n: expected an int >= 1, got {type(n).__name__}") from None
    if n < 1 or n > MAX_THREADS:
        raise ValueError(f"n: expected an int in [1, {MAX_THREADS}], got {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """How many threads the kernels may use.

    Examples:
        >>> import cnnx
        >>> cnnx.get_num_threads() >= 1
        True
    """
    return _core.get_num_threads()
