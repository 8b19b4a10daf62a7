"""cnnx: a fast, teachable convolutional-neural-network library for the CPU.

The heavy loops run in a C++ core (OpenMP threads, SIMD micro-kernels picked
at import from the CPU's features); this package handles shapes, state and
everything a user sees. Data layout is NHWC float32, conv weights are HWIO.
"""
from pkgutil import extend_path as _extend_path

# Development builds keep the compiled extension in <build>/devpkg/cnnx;
# with that directory on sys.path this finds it (installed copies have it
# beside this file).
__path__ = _extend_path(__path__, __name__)

from ._version import __version__  # noqa: E402
from . import _core  # noqa: E402
from ._system import info, set_num_threads, get_num_threads  # noqa: E402
from . import functional  # noqa: E402

__all__ = ["__version__", "info", "set_num_threads", "get_num_threads", "functional"]
