"""Saving and loading models: one file with the architecture (JSON), the
weights, the optimiser state and a format version.

Layout (little-endian)::

    magic      8 bytes  b"CNNXMDL\\0"
    version    uint32   FORMAT_VERSION
    header_len uint64   bytes of the JSON header
    data_len   uint64   bytes of the data block
    header_crc uint32   CRC-32 of the header
    data_crc   uint32   CRC-32 of the data block
    header     JSON     architecture, compile settings, array directory
    data       arrays, each at a 64-byte-aligned offset (float32 unless its
               directory entry names another "dtype")

Version 2 (cnnx 0.2) adds quantized models (``cnnx.quantize``): the header's
``"quantization"`` entry holds the value parameters and, per int8 layer,
its int8 weights, scales and biases; ``"model"`` and ``"params"`` are the
float model's. Version 1 files (float models) still load.

``model.save(path)`` writes a temporary file ``.cnnx-<random>.tmp`` in the
same directory, flushes it to disk and renames it over ``path``
(``os.replace``), so an interrupted save never destroys the previous file.
The saved file gets the permissions ``open(path, "wb")`` would give it: a new
file ``0o666`` less the umask, an existing file keeps its mode. A save also
removes temporaries of that naming pattern older than a minute that no
running save holds (left by a process killed while saving).

``load_model`` checks the magic, the version, the sizes and both checksums,
and raises ``ValueError`` naming the problem for a file that is not a cnnx
model, truncated, corrupt or of an unknown version. It also refuses, before
any large allocation, a header nested deeper than :data:`MAX_HEADER_DEPTH`
and an architecture that needs more parameters than the data block holds
(the model is built with :func:`cnnx.layers.base.deferred_init`: no weight
is drawn or allocated until the counts agree).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import struct
import time
import zlib
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from ._version import __version__

if TYPE_CHECKING:
    from .models import Model
    from .quant import QuantizedModel
    from .trainers.trainer import Trainer

#: a file path: a str or an os.PathLike (pathlib.Path)
PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["save_model", "load_model", "FORMAT_VERSION"]

MAGIC = b"CNNXMDL\0"
FORMAT_VERSION = 2
#: versions load_model reads
READABLE_VERSIONS = (1, 2)
_DTYPES = {"<f4": np.float32, "|i1": np.int8, "<i4": np.int32}
_PREFIX = struct.Struct("<8sIQQII")  # magic, version, header_len, data_len, header_crc, data_crc
_ALIGN = 64
#: deepest JSON nesting a model header may have (containers nest at most
#: cnnx.layers.MAX_NESTING = 64 deep, about 3 JSON levels each)
MAX_HEADER_DEPTH = 272
_TMP_PATTERN = re.compile(r"\.cnnx-[A-Za-z0-9_]+\.tmp\Z")
_STALE_SECONDS = 60


class _Blob:
    """Collects arrays into one data block with aligned offsets."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, arr: np.ndarray, dtype: str = "<f4") -> dict[str, Any]:
        arr = np.ascontiguousarray(arr, dtype=dtype)
        pad = (-self.size) % _ALIGN
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        entry: dict[str, Any] = {"offset": self.size, "shape": list(arr.shape)}
        if dtype != "<f4":
            entry["dtype"] = dtype
        data = arr.tobytes()
        self.parts.append(data)
        self.size += len(data)
        return entry


def save_model(model: Trainer, path: PathLike) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring).

    As ``open(path, "wb")`` would, a symlink is followed (its target gets the
    new checkpoint) and an existing file keeps its mode; a device, FIFO or
    socket at ``path`` is refused (saving replaces the file). Saving while
    another thread trains the model raises RuntimeError (the weights would be
    copied half-updated); save from the training thread (ModelCheckpoint).
    """
    from ._guard import exclusive_training

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    if not model.built:
        raise ValueError("model: not built yet, nothing to save")
    path = os.fspath(path)
    with exclusive_training(model):
        prefix, hbytes, data = _serialise(model)
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        st = os.stat(target)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"path: {path!r} is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ValueError(
            f"path: {path!r} is a device, FIFO or socket, not a regular file "
            "(saving would replace it)"
        )
    _write_atomically(target, prefix, hbytes, data, st)


def _serialise(model: Any) -> tuple[bytes, bytes, bytes]:
    from .layers.base import layer_config, walk

    blob = _Blob()
    from .quant import QuantizedModel

    quantized = isinstance(model, QuantizedModel)
    fm = model.float_model if quantized else model
    header: dict[str, Any] = {
        "format": "cnnx-model",
        "version": FORMAT_VERSION,
        "cnnx_version": __version__,
        "model": layer_config(fm),
        "params": blob.add(fm.store.params),
        "buffers": [],
        "compile": None,
        "optimizer": None,
    }
    if quantized:
        header["quantization"] = _quantization_entry(model, blob)
    for i, (layer, _) in enumerate(walk(fm.layers)):
        for name, buf in layer.buffers.items():
            header["buffers"].append({"layer": i, "name": name, **blob.add(buf)})
    if model.loss is not None:
        header["compile"] = model.get_compile_config()  # None: a loss/metric of the user's own
    opt = model.optimizer
    if opt is not None and not quantized:  # a quantized model never trains
        st = opt.state_dict()
        header["optimizer"] = {
            "class": st["class"],
            "config": st["config"],
            "iterations": st["iterations"],
            "initial_lr": st.get("initial_lr"),
            "state": {k: blob.add(v) for k, v in st["state"].items()},
        }
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    data = b"".join(blob.parts)
    prefix = _PREFIX.pack(
        MAGIC, FORMAT_VERSION, len(hbytes), len(data), zlib.crc32(hbytes), zlib.crc32(data)
    )
    return prefix, hbytes, data


def _write_atomically(
    target: str, prefix: bytes, hbytes: bytes, data: bytes, st: Optional[os.stat_result]
) -> None:
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path: the directory {directory!r} does not exist")
    _remove_stale_temporaries(directory)
    try:
        fd, tmp = _create_temporary(directory)
    except PermissionError:
        raise PermissionError(
            f"path: cannot create files in {directory!r} (permission denied)"
        ) from None
    try:
        if st is not None and hasattr(os, "fchmod"):  # an existing file keeps its mode;
            os.fchmod(fd, stat.S_IMODE(st.st_mode))  # a new one got 0o666 less the umask
        with os.fdopen(fd, "wb") as f:
            f.write(prefix)
            f.write(hbytes)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, target)  # while still locked: a cleaner never takes it
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _quantization_entry(model: QuantizedModel, blob: _Blob) -> dict[str, Any]:
    """A quantized model's parameters: the values' (scale, zero point), each int8
    layer's weights, scales and biases (keyed by value / op output id)."""
    weights = []
    for vid, w in sorted(model.qweights.items()):
        weights.append(
            {
                "op": vid,
                "w": blob.add(w.w, "|i1"),
                "scale": blob.add(w.scale),
                "bias": None if w.bias is None else blob.add(w.bias),
                "bias_acc": None if w.bias_acc is None else blob.add(w.bias_acc, "<i4"),
                "groups": w.groups,
            }
        )
    return {
        "config": model.config,
        "values": [[vid, s, z] for vid, (s, z) in sorted(model.qparams.items())],
        "weights": weights,
    }


def _quantized(fm: Model, q: Any, data: bytes, where: str) -> QuantizedModel:
    """The QuantizedModel of float model ``fm`` from a file's quantization entry."""
    from .graph.quantize import QWeights, prepare
    from .quant import QuantizedModel

    if not isinstance(q, dict):
        raise ValueError(f"{where} is corrupt (malformed quantization entry)")
    g = prepare(fm._graph(None))  # any size that fits, for a model taking any size
    values = {v.id: v for v in g.values}
    producers = {op.output.id: op for op in g.ops}
    params: dict[int, tuple[float, int]] = {}
    try:
        for vid, s, z in q.get("values", []):
            vid, s, z = int(vid), float(s), int(z)
            if vid not in values or not (np.isfinite(s) and s > 0) or not 0 <= z <= 255:
                raise ValueError
            params[vid] = (s, z)
        weights = {}
        for e in q.get("weights", []):
            vid = int(e["op"])
            op = producers.get(vid)
            kernel = None if op is None else op.attrs.get("kernel")
            w = _array(data, e["w"], "int8 weights")
            if kernel is None or w.shape != kernel.array.shape or w.dtype != np.int8:
                raise ValueError
            scale = _array(data, e["scale"], "weight scales")
            c = w.shape[-1]
            bias = None if e.get("bias") is None else _array(data, e["bias"], "bias")
            bacc = None if e.get("bias_acc") is None else _array(data, e["bias_acc"], "bias")
            if (
                scale.shape != (c,)
                or not (np.isfinite(scale).all() and (scale > 0).all())
                or (bias is not None and bias.shape != (c,))
                or (bacc is not None and (bacc.shape != (c,) or bacc.dtype != np.int32))
            ):
                raise ValueError
            weights[vid] = QWeights(w, scale, bias, bacc, int(e.get("groups", 1)))
        config = dict(q.get("config") or {})
    except ValueError as e:
        if str(e).startswith("path:"):
            raise
        raise ValueError(
            f"{where} is corrupt (the quantization entry does not match the architecture)"
        ) from None
    except (KeyError, TypeError, AttributeError):
        raise ValueError(f"{where} is corrupt (malformed quantization entry)") from None
    return QuantizedModel(fm, params, weights, config)


def _lock(fd: int, blocking: bool) -> bool:
    """An exclusive advisory lock on ``fd`` (True if held; always True without fcntl)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking, stale files are judged by age alone
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def _create_temporary(directory: str) -> tuple[int, str]:
    """A new ``.cnnx-<random>.tmp`` file, created with mode 0o666 less the umask
    (as ``open`` does), locked for as long as the save runs."""
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_BINARY", 0)
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    for _ in range(100):
        tmp = os.path.join(directory, f".cnnx-{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        _lock(fd, blocking=True)
        return fd, tmp
    raise FileExistsError(f"path: cannot create a temporary file in {directory!r}")


def _remove_stale_temporaries(directory: str) -> None:
    """Delete ``.cnnx-*.tmp`` files older than a minute that no save holds.

    A process killed while saving leaves its temporary behind (the previous
    checkpoint is intact, but the space is not freed); a running save holds an
    advisory lock on its own, so only abandoned ones are removed.
    """
    try:
        names = [n for n in os.listdir(directory) if _TMP_PATTERN.match(n)]
    except OSError:
        return
    now = time.time()
    for name in names:
        full = os.path.join(directory, name)
        try:
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < _STALE_SECONDS:
                continue
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if _lock(fd, blocking=False) and os.path.samestat(os.fstat(fd), st):
                os.unlink(full)
        except OSError:
            pass
        finally:
            os.close(fd)


def _array(data: bytes, entry: Any, what: str) -> np.ndarray:
    try:
        off = int(entry["offset"])
        shape = tuple(int(s) for s in entry["shape"])
        dtype = _DTYPES[entry.get("dtype", "<f4")]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"path: corrupt file (bad directory entry for {what})") from None
    n = 1
    for s in shape:
        if s < 0:
            raise ValueError(f"path: corrupt file (negative shape for {what})")
        n *= s
    size = np.dtype(dtype).itemsize
    if off < 0 or off + size * n > len(data):
        raise ValueError(f"path: corrupt file ({what} lies outside the data block)")
    raw = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=n, offset=off)
    return raw.astype(dtype).reshape(shape)


def _read(path: PathLike) -> tuple[dict[str, Any], bytes]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < _PREFIX.size:
        if raw[: len(MAGIC)] == MAGIC[: len(raw)] and raw:
            raise ValueError(f"path: {path!r} is truncated ({len(raw)} bytes)")
        raise ValueError(f"path: {path!r} is not a cnnx model file")
    magic, version, hlen, dlen, hcrc, dcrc = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError(f"path: {path!r} is not a cnnx model file (bad magic bytes)")
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"path: {path!r} has format version {version}; this cnnx "
            f"({__version__}) reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    end = _PREFIX.size + hlen + dlen
    if len(raw) < end:
        raise ValueError(f"path: {path!r} is truncated ({len(raw)} of {end} bytes)")
    if len(raw) > end:
        raise ValueError(f"path: {path!r} is corrupt ({len(raw) - end} unexpected trailing bytes)")
    hbytes = raw[_PREFIX.size : _PREFIX.size + hlen]
    data = raw[_PREFIX.size + hlen : end]
    if zlib.crc32(hbytes) != hcrc:
        raise ValueError(f"path: {path!r} is corrupt (header checksum mismatch)")
    if zlib.crc32(data) != dcrc:
        raise ValueError(f"path: {path!r} is corrupt (weights checksum mismatch)")
    too_deep = ValueError(
        f"path: {path!r} is corrupt (its header nests deeper than "
        f"{MAX_HEADER_DEPTH} levels, cnnx.io.MAX_HEADER_DEPTH)"
    )
    try:
        header = json.loads(hbytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"path: {path!r} is corrupt (unreadable header: {e})") from None
    except RecursionError:
        raise too_deep from None
    if _depth(header) > MAX_HEADER_DEPTH:
        raise too_deep
    if not isinstance(header, dict) or header.get("format") != "cnnx-model":
        raise ValueError(f"path: {path!r} is corrupt (not a cnnx-model header)")
    return header, data


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            o = o.values()
        elif not isinstance(o, list):
            continue
        deepest = max(deepest, d)
        stack.extend((v, d + 1) for v in o if isinstance(v, (dict, list)))
    return deepest


def _metrics_from(spec: Any) -> Any:
    from . import metrics

    def one(m: Any) -> Any:
        return m if isinstance(m, str) else metrics.get(m)

    if isinstance(spec, dict):
        return {k: [one(m) for m in v] for k, v in spec.items()}
    return None if spec is None else [one(m) for m in spec]


def load_model(path: PathLike, compile: bool = True) -> Any:
    """Read a model written by ``model.save`` (architecture, weights, and the
    optimiser state, so that training continues exactly where it stopped).

    ``compile=False`` skips restoring the loss/optimiser. Raises ValueError
    for a file that is not a cnnx model, is truncated, corrupt, or has an
    unknown format version, and for one whose values could never run (an
    architecture larger than its data block, optimiser state of the wrong
    size, an impossible step count, layer settings out of range).

    Examples:
        >>> import os, tempfile
        >>> import cnnx
        >>> model = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(2)], input_shape=(3, 3, 1))
        >>> path = os.path.join(tempfile.mkdtemp(), "m.cnnx")
        >>> model.save(path)
        >>> cnnx.load_model(path).count_params()
        20
    """
    from .layers.base import deferred_init, layer_from_config, walk
    from .optim import optimizer_from_state

    header, data = _read(path)
    where = f"path: {os.fspath(path)!r}"
    n_floats = len(data) // 4
    try:
        # no weight is drawn or allocated before the architecture's size is
        # checked against the data block (a 252-byte file may declare 10**9)
        with deferred_init(
            limit=n_floats,
            what=f"{where} is corrupt",
            limit_text=f"its data block holds only {n_floats:,}",
        ):
            model: Any = layer_from_config(header["model"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where} is corrupt (cannot rebuild the architecture: {e})") from None
    except ValueError as e:
        msg = str(e)
        if msg.startswith(where):
            raise
        raise ValueError(f"{where}: cannot rebuild the architecture ({msg})") from None
    if not getattr(model, "built", False):
        raise ValueError(f"{where} is corrupt (the saved model has no input shape)")
    params = _array(data, header.get("params", {}), "params")
    if params.shape != model.store.params.shape:
        raise ValueError(
            f"{where} is corrupt ({params.size} parameters saved, the "
            f"architecture has {model.store.params.size})"
        )
    model.store.params[...] = params
    layers = [layer for layer, _ in walk(model.layers)]
    buffers = header.get("buffers", [])
    if not isinstance(buffers, list):
        raise ValueError(f"{where} is corrupt (malformed buffer list)")
    for entry in buffers:
        try:
            layer = layers[int(entry["layer"])]
            dst = layer.buffers[entry["name"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValueError(
                f"{where} is corrupt (buffer entry does not match the architecture)"
            ) from None
        arr = _array(data, entry, f"buffer {entry.get('name')}")
        if arr.shape != dst.shape:
            raise ValueError(
                f"{where} is corrupt (buffer {entry['name']} has shape "
                f"{arr.shape}, expected {dst.shape})"
            )
        if entry["name"] == "moving_var" and not np.all(arr >= 0):  # NaN too
            raise ValueError(
                f"{where} is corrupt (buffer moving_var of layer {layer.name!r} "
                "holds negative or NaN variances)"
            )
        dst[...] = arr
    if header.get("quantization") is not None:
        model = _quantized(model, header["quantization"], data, where)
    if compile and header.get("compile"):
        c = header["compile"]
        opt = None
        o = header.get("optimizer")
        if (
            not isinstance(c, dict)
            or not isinstance(o, (dict, type(None)))
            or (o and not isinstance(o.get("state", {}), dict))
        ):
            raise ValueError(f"{where} is corrupt (malformed compile/optimizer settings)")
        if o and header.get("quantization") is None:
            st = {k: _array(data, v, f"optimizer state {k}") for k, v in o.get("state", {}).items()}
            for k, v in st.items():
                if v.size != model.store.params.size:
                    raise ValueError(
                        f"{where} is corrupt (optimizer state {k!r} has {v.size} "
                        f"values, the model has {model.store.params.size} "
                        "parameters)"
                    )
            try:
                opt = optimizer_from_state(
                    {
                        "class": o.get("class"),
                        "config": o.get("config", {}),
                        "iterations": o.get("iterations", 0),
                        "initial_lr": o.get("initial_lr"),
                        "state": st,
                    }
                )
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where} is corrupt (optimizer: {e})") from None
        try:
            from . import losses

            loss: Any = c.get("loss")
            loss = (
                [d if isinstance(d, (str, type(None))) else losses.get(d) for d in loss]
                if isinstance(loss, list)
                else loss
                if isinstance(loss, str)
                else losses.get(loss)
            )
            model.compile(
                optimizer=opt if opt is not None else "sgd",
                loss=loss,
                metrics=_metrics_from(c.get("metrics")),
                loss_weights=c.get("loss_weights"),
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where} is corrupt (compile settings: {e})") from None
    return model
