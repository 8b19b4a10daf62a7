"""External data of ONNX models (weights in a file beside the ``.onnx``), read by
cnnx itself and confined to the model's folder, whatever the ``onnx`` version.

An ONNX tensor may say "my bytes are at ``location`` (offset, length)". A
hostile model can point that at ``../../etc/passwd``, an absolute path, a
symlink leading out of the folder, a device such as ``/dev/zero`` or a FIFO
that blocks forever. Older ``onnx`` releases followed some of these (a
symlink in the model's folder, onnx 1.15). So :func:`inline_external_data`
resolves every location with ``realpath``, refuses anything outside the
model's folder and anything but a regular file, checks the byte range
against the file and the tensor's shape, and copies the bytes into the
tensor; ``onnx`` never opens an external file for cnnx.
"""

import os
import stat

from ._common import ONNXConversionError

__all__ = ["inline_external_data", "external_tensors"]


def _all_tensors(proto):
    """Every TensorProto of a ModelProto (subgraphs and functions included), no recursion."""
    nodes = []
    graphs = [proto.graph]
    for fn in getattr(proto, "functions", []):
        nodes.extend(fn.node)
    while graphs or nodes:
        if graphs:
            g = graphs.pop()
            yield from g.initializer
            for sp in g.sparse_initializer:
                yield sp.values
                yield sp.indices
            nodes.extend(g.node)
            continue
        node = nodes.pop()
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            sparse = list(a.sparse_tensors)
            if a.HasField("sparse_tensor"):
                sparse.append(a.sparse_tensor)
            for sp in sparse:
                yield sp.values
                yield sp.indices
            if a.HasField("g"):
                graphs.append(a.g)
            graphs.extend(a.graphs)


def external_tensors(onnx, proto):
    """The tensors of ``proto`` whose data lives in an external file."""
    ext = onnx.TensorProto.EXTERNAL
    return [t for t in _all_tensors(proto) if t.data_location == ext]


def _expected_bytes(onnx, t):
    n = 1
    for d in t.dims:
        n *= int(d)
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except Exception:  # noqa: BLE001 - unknown or string type: checked later by the converter
        return None
    return n * itemsize


def _pread(fd, n, offset):
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # no pread (Windows): the fd is ours alone
    return os.read(fd, n)


def _fail(where, t, msg):
    return ONNXConversionError(f"{where}: external data of tensor {t.name!r}: {msg}")


def inline_external_data(onnx, proto, model_dir, where="path"):
    """Copy every external tensor's bytes into ``proto``, reading only regular
    files inside ``model_dir`` (after resolving symlinks)."""
    base = os.path.realpath(model_dir)
    for t in external_tensors(onnx, proto):
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location")
        if not location:
            raise _fail(where, t, "no location given")
        real = os.path.realpath(os.path.join(base, location))
        if real == base or os.path.commonpath([base, real]) != base:
            raise _fail(
                where,
                t,
                f"location {location!r} resolves to {real!r}, outside the "
                f"model's folder {base!r} (refused)",
            )
        try:
            st = os.stat(real)
        except OSError as e:
            raise _fail(where, t, f"cannot read {location!r} ({e.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise _fail(
                where,
                t,
                f"{location!r} is not a regular file (a device, FIFO, socket "
                "or directory: refused)",
            )
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else st.st_size - offset
        except ValueError:
            raise _fail(
                where,
                t,
                f"offset/length {info.get('offset')!r}/{info.get('length')!r} are not integers",
            ) from None
        if offset < 0 or length < 0 or offset + length > st.st_size:
            raise _fail(
                where,
                t,
                f"bytes [{offset}, {offset + length}) lie outside "
                f"{location!r} ({st.st_size} bytes)",
            )
        want = _expected_bytes(onnx, t)
        if want is not None and want != length:
            raise _fail(
                where, t, f"{length} bytes in {location!r}, but its dims {list(t.dims)} need {want}"
            )
        flags = (
            os.O_RDONLY
            | getattr(os, "O_NOFOLLOW", 0)
            | getattr(os, "O_NONBLOCK", 0)
            | getattr(os, "O_CLOEXEC", 0)
            | getattr(os, "O_BINARY", 0)
        )
        try:
            fd = os.open(real, flags)
        except OSError as e:
            raise _fail(where, t, f"cannot open {location!r} ({e.strerror})") from None
        try:
            fst = os.fstat(fd)  # the file opened is the one checked (no swap in between)
            if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                raise _fail(where, t, f"{location!r} changed while it was being read (refused)")
            chunks, got = [], 0
            while got < length:
                chunk = _pread(fd, min(length - got, 1 << 26), offset + got)
                if not chunk:
                    raise _fail(where, t, f"{location!r} is shorter than it was")
                chunks.append(chunk)
                got += len(chunk)
        finally:
            os.close(fd)
        t.raw_data = b"".join(chunks)
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT
    return proto
