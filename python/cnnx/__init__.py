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

import os as _os  # noqa: E402

# libgomp reads its settings once, when the extension below loads it. Left
# entirely unset, its waiting threads were measured here to stall each
# parallel region by ~15 ms (a 256^3 GEMM on 2 threads: 16 ms instead of
# 0.23 ms); any explicit setting avoids that. 300000 spins (about a
# millisecond) is libgomp's documented default, so nothing else changes.
# A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT always wins.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "300000"

from ._version import __version__  # noqa: E402
from . import _core  # noqa: E402,F401 (the compiled module, as cnnx._core)
from ._system import info, set_num_threads, get_num_threads  # noqa: E402
from . import functional  # noqa: E402

__all__ = ["__version__", "info", "set_num_threads", "get_num_threads", "functional"]

# Models and training (layers, Sequential, optimisers, save/load, seeding).
# tqdm is imported only when fit shows a progress bar.
from .random import set_seed  # noqa: E402

# Every layer is a top-level name too (cnnx.Conv2D is cnnx.layers.Conv2D):
# cnnx.layers.__all__ is the one list of them.
from . import layers  # noqa: E402
from .layers import *  # noqa: E402,F403
from .layers import MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D  # noqa: E402,F401
from .models import Input, Model, Sequential  # noqa: E402
from . import optim, optimizers, callbacks  # noqa: E402,F401 (cnnx.optimizers: Keras's name)
from .io import load_model  # noqa: E402
from .quant import quantize, QuantizedModel  # noqa: E402

__all__ += ["set_seed"]
__all__ += layers.__all__
__all__ += [
    "Input",
    "Model",
    "Sequential",
    "optim",
    "callbacks",
    "load_model",
    "quantize",
    "QuantizedModel",
]

# Submodules loaded on first use, so that `import cnnx` stays light:
# cnnx.data, cnnx.datasets, cnnx.filters, cnnx.teaching, cnnx.viz (matplotlib), cnnx.onnx
# (onnx/onnxruntime), cnnx.distributed (mpi4py), cnnx.detection, cnnx.style.
_LAZY_SUBMODULES = (
    "data",
    "datasets",
    "filters",
    "teaching",
    "viz",
    "onnx",
    "distributed",
    "detection",
    "style",
    "training",
    "cli",
)


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'cnnx' has no attribute {name!r}")
