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

``model.save(path)`` writes a temporary file in the same directory, flushes
it to disk and renames it over ``path`` (``os.replace``), so an interrupted
save never destroys the previous file. ``load_model`` checks the magic, the
version, the sizes and both checksums, and raises ``ValueError`` naming the
problem for a file that is not a cnnx model, truncated, corrupt or of an
unknown version.
"""
import json
import os
import struct
import tempfile
import zlib

import numpy as np

from ._version import __version__

__all__ = ["save_model", "load_model", "FORMAT_VERSION"]

MAGIC = b"CNNXMDL\0"
FORMAT_VERSION = 2
#: versions load_model reads
READABLE_VERSIONS = (1, 2)
_DTYPES = {"<f4": np.float32, "|i1": np.int8, "<i4": np.int32}
_PREFIX = struct.Struct("<8sIQQII")  # magic, version, header_len, data_len, header_crc, data_crc
_ALIGN = 64


class _Blob:
    """Collects arrays into one data block with aligned offsets."""

    def __init__(self):
        self.parts = []
        self.size = 0

    def add(self, arr, dtype="<f4"):
        arr = np.ascontiguousarray(arr, dtype=dtype)
        pad = (-self.size) % _ALIGN
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        entry = {"offset": self.size, "shape": list(arr.shape)}
        if dtype != "<f4":
            entry["dtype"] = dtype
        data = arr.tobytes()
        self.parts.append(data)
        self.size += len(data)
        return entry


def save_model(model, path):
    """Write ``model`` to ``path`` atomically (see the module docstring)."""
    from .layers.base import layer_config, walk

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    if not model.built:
        raise ValueError("model: not built yet, nothing to save")
    path = os.fspath(path)
    blob = _Blob()
    from .quant import QuantizedModel

    quantized = isinstance(model, QuantizedModel)
    fm = model.float_model if quantized else model
    header = {
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
        header["compile"] = {"loss": model.loss, "metrics": list(model.metrics),
                             "loss_weights": model.loss_weights}
    opt = model.optimizer
    if opt is not None:
        st = opt.state_dict()
        header["optimizer"] = {"class": st["class"], "config": st["config"],
                               "iterations": st["iterations"],
                               "state": {k: blob.add(v) for k, v in st["state"].items()}}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    data = b"".join(blob.parts)
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(hbytes), len(data),
                          zlib.crc32(hbytes), zlib.crc32(data))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path: the directory {directory!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".cnnx-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(prefix)
            f.write(hbytes)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _quantization_entry(model, blob):
    """A quantized model's parameters: the values' (scale, zero point), each int8
    layer's weights, scales and biases (keyed by value / op output id)."""
    weights = []
    for vid, w in sorted(model.qweights.items()):
        weights.append({"op": vid, "w": blob.add(w.w, "|i1"), "scale": blob.add(w.scale),
                        "bias": None if w.bias is None else blob.add(w.bias),
                        "bias_acc": None if w.bias_acc is None else blob.add(w.bias_acc, "<i4"),
                        "groups": w.groups})
    return {"config": model.config,
            "values": [[vid, s, z] for vid, (s, z) in sorted(model.qparams.items())],
            "weights": weights}


def _quantized(fm, q, data):
    """The QuantizedModel of float model ``fm`` from a file's quantization entry."""
    from .graph.quantize import QWeights, prepare
    from .quant import QuantizedModel

    if not isinstance(q, dict):
        raise ValueError("path: corrupt file (malformed quantization entry)")
    g = prepare(fm.to_graph())
    values = {v.id: v for v in g.values}
    producers = {op.output.id: op for op in g.ops}
    params = {}
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
            if scale.shape != (c,) or not (np.isfinite(scale).all() and (scale > 0).all()) or (
                    bias is not None and bias.shape != (c,)) or (
                    bacc is not None and (bacc.shape != (c,) or bacc.dtype != np.int32)):
                raise ValueError
            weights[vid] = QWeights(w, scale, bias, bacc, int(e.get("groups", 1)))
        config = dict(q.get("config") or {})
    except ValueError as e:
        if str(e).startswith("path:"):
            raise
        raise ValueError("path: corrupt file (the quantization entry does not match the "
                         "architecture)") from None
    except (KeyError, TypeError, AttributeError):
        raise ValueError("path: corrupt file (malformed quantization entry)") from None
    return QuantizedModel(fm, params, weights, config)


def _array(data, entry, what):
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


def _read(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < _PREFIX.size:
        if raw[:len(MAGIC)] == MAGIC[:len(raw)] and raw:
            raise ValueError(f"path: {path!r} is truncated ({len(raw)} bytes)")
        raise ValueError(f"path: {path!r} is not a cnnx model file")
    magic, version, hlen, dlen, hcrc, dcrc = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError(f"path: {path!r} is not a cnnx model file (bad magic bytes)")
    if version not in READABLE_VERSIONS:
        raise ValueError(f"path: {path!r} has format version {version}; this cnnx "
                         f"({__version__}) reads versions "
                         f"{', '.join(map(str, READABLE_VERSIONS))}")
    end = _PREFIX.size + hlen + dlen
    if len(raw) < end:
        raise ValueError(f"path: {path!r} is truncated ({len(raw)} of {end} bytes)")
    if len(raw) > end:
        raise ValueError(f"path: {path!r} is corrupt ({len(raw) - end} unexpected trailing bytes)")
    hbytes = raw[_PREFIX.size:_PREFIX.size + hlen]
    data = raw[_PREFIX.size + hlen:end]
    if zlib.crc32(hbytes) != hcrc:
        raise ValueError(f"path: {path!r} is corrupt (header checksum mismatch)")
    if zlib.crc32(data) != dcrc:
        raise ValueError(f"path: {path!r} is corrupt (weights checksum mismatch)")
    try:
        header = json.loads(hbytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"path: {path!r} is corrupt (unreadable header: {e})") from None
    if not isinstance(header, dict) or header.get("format") != "cnnx-model":
        raise ValueError(f"path: {path!r} is corrupt (not a cnnx-model header)")
    return header, data


def load_model(path, compile=True):
    """Read a model written by ``model.save`` (architecture, weights, and the
    optimiser state, so that training continues exactly where it stopped).

    ``compile=False`` skips restoring the loss/optimiser. Raises ValueError
    for a file that is not a cnnx model, is truncated, corrupt, or has an
    unknown format version.
    """
    from .layers.base import layer_from_config, walk
    from .optim import optimizer_from_state

    header, data = _read(path)
    try:
        model = layer_from_config(header["model"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"path: corrupt file (cannot rebuild the architecture: {e})") from None
    if not getattr(model, "built", False):
        raise ValueError("path: corrupt file (the saved model has no input shape)")
    params = _array(data, header.get("params", {}), "params")
    if params.shape != model.store.params.shape:
        raise ValueError(f"path: corrupt file ({params.size} parameters saved, the "
                         f"architecture has {model.store.params.size})")
    model.store.params[...] = params
    layers = [layer for layer, _ in walk(model.layers)]
    for entry in header.get("buffers", []):
        try:
            layer = layers[int(entry["layer"])]
            dst = layer.buffers[entry["name"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValueError("path: corrupt file (buffer entry does not match the "
                             "architecture)") from None
        arr = _array(data, entry, f"buffer {entry.get('name')}")
        if arr.shape != dst.shape:
            raise ValueError(f"path: corrupt file (buffer {entry['name']} has shape {arr.shape}, "
                             f"expected {dst.shape})")
        dst[...] = arr
    if header.get("quantization") is not None:
        model = _quantized(model, header["quantization"], data)
    if compile and header.get("compile"):
        c = header["compile"]
        opt = None
        o = header.get("optimizer")
        if not isinstance(c, dict) or not isinstance(o, (dict, type(None))) or (
                o and not isinstance(o.get("state", {}), dict)):
            raise ValueError("path: corrupt file (malformed compile/optimizer settings)")
        if o and header.get("quantization") is None:
            st = {k: _array(data, v, f"optimizer state {k}") for k, v in o.get("state", {}).items()}
            try:
                opt = optimizer_from_state({"class": o.get("class"), "config": o.get("config", {}),
                                            "iterations": o.get("iterations", 0), "state": st})
            except TypeError as e:
                raise ValueError(f"path: corrupt file (optimizer config: {e})") from None
        model.compile(optimizer=opt if opt is not None else "sgd", loss=c.get("loss"),
                      metrics=c.get("metrics"), loss_weights=c.get("loss_weights"))
    return model
