"""Corrupt, truncated and hostile model files; saving where it cannot.

- every truncation of a saved model and a bit flip in every byte (sampled
  in the data block) raise ValueError naming ``path``;
- header fields lying about sizes (2**63-byte headers) raise before any
  large allocation;
- a fuzz of the JSON header with valid checksums (architecture, shapes,
  offsets, optimizer state replaced by -1, 0, 2**40, 2**63, strings, None,
  lists, NaN...) runs in a child process: each file loads and predicts, or
  raises ValueError/TypeError/MemoryError; none crashes or raises anything else;
- saving into a missing directory or onto a directory raises OSError, leaves
  no temporary file behind and never touches the previous checkpoint.
"""

import json
import os
import random
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import cnnx
from cnnx import io as cio


def make_model():
    cnnx.set_seed(0)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, padding="same", activation="relu"),
            cnnx.BatchNormalization(),
            cnnx.Residual(
                [
                    cnnx.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                    cnnx.Conv2D(4, 3, padding="same"),
                ]
            ),
            cnnx.MaxPool2D(2),
            cnnx.AdaptiveAvgPool2D(2),
            cnnx.Dropout(0.25),
            cnnx.Flatten(),
            cnnx.Dense(6, activation="leaky_relu"),
            cnnx.Dense(3, activation="softmax"),
        ],
        input_shape=(8, 8, 2),
    )
    model.compile(optimizer=cnnx.optim.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    p = tmp_path_factory.mktemp("good") / "good.cnnx"
    make_model().save(p)
    return p.read_bytes()


def split(raw):
    magic, ver, hlen, dlen, hcrc, dcrc = cio._PREFIX.unpack_from(raw)
    h0 = cio._PREFIX.size
    return json.loads(raw[h0 : h0 + hlen]), raw[h0 + hlen :], (magic, ver)


def assemble(header, data, magic=cio.MAGIC, version=cio.FORMAT_VERSION):
    hb = json.dumps(header).encode()
    return (
        cio._PREFIX.pack(magic, version, len(hb), len(data), zlib.crc32(hb), zlib.crc32(data))
        + hb
        + data
    )


def test_every_truncation_raises(tmp_path, saved):
    p = tmp_path / "t.cnnx"
    header_end = cio._PREFIX.size + cio._PREFIX.unpack_from(saved)[2]
    # every byte of the fixed prefix, then every 7th of the header, every 97th of the data
    cuts = (
        list(range(cio._PREFIX.size + 2))
        + list(range(cio._PREFIX.size + 2, header_end, 7))
        + list(range(header_end, len(saved), 97))
    )
    for cut in cuts:
        p.write_bytes(saved[:cut])
        with pytest.raises(ValueError, match="^path"):
            cnnx.load_model(p)
    assert len(cuts) > 200


def test_every_bit_flip_raises(tmp_path, saved):
    p = tmp_path / "f.cnnx"
    rnd = random.Random(0)
    header_end = cio._PREFIX.size + cio._PREFIX.unpack_from(saved)[2]
    positions = (
        list(range(cio._PREFIX.size))
        + rnd.sample(range(cio._PREFIX.size, header_end), 250)
        + rnd.sample(range(header_end, len(saved)), 150)
    )
    for pos in positions:
        bad = bytearray(saved)
        bad[pos] ^= 1 << rnd.randrange(8)
        p.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="^path"):
            cnnx.load_model(p)


def test_lying_sizes_raise_before_allocating(tmp_path, saved):
    magic, ver, hlen, dlen, hcrc, dcrc = cio._PREFIX.unpack_from(saved)
    for h, d in ((2**63, dlen), (hlen, 2**63), (2**64 - 1, 2**64 - 1), (0, 0)):
        raw = cio._PREFIX.pack(magic, ver, h, d, hcrc, dcrc) + saved[cio._PREFIX.size :]
        p = tmp_path / "lie.cnnx"
        p.write_bytes(raw)
        with pytest.raises(ValueError, match="^path"):
            cnnx.load_model(p)


def test_valid_checksums_with_hostile_directory_entries(tmp_path, saved):
    header, data, _ = split(saved)
    n_params = header["params"]["shape"]
    cases = [
        dict(header, params={"offset": -4, "shape": n_params}),
        dict(header, params={"offset": len(data), "shape": n_params}),
        dict(header, params={"offset": 2**63, "shape": n_params}),
        dict(header, params={"offset": 0, "shape": [2**62, 2**62]}),
        dict(header, params={"offset": 0, "shape": [-1]}),
        dict(header, params={"offset": 0, "shape": "many"}),
        dict(header, params=None),
        dict(header, format="something-else"),
        dict(header, model={"class": "NoSuchLayer", "config": {}}),
        dict(header, model="Sequential"),
        dict(header, buffers=[{"layer": 99, "name": "moving_mean", "offset": 0, "shape": [4]}]),
        dict(header, buffers=[{"layer": 1, "name": "moving_mean", "offset": 0, "shape": [5]}]),
        dict(header, compile="sgd"),
        dict(header, optimizer={"class": "Adam", "config": {}, "state": None}),
        dict(header, optimizer={"class": "Adam", "config": {"lr": -1}, "state": {}}),
        dict(header, optimizer={"class": "Nope", "config": {}, "state": {}}),
    ]
    for i, h in enumerate(cases):
        p = tmp_path / f"h{i}.cnnx"
        p.write_bytes(assemble(h, data))
        with pytest.raises((ValueError, TypeError)):
            cnnx.load_model(p)


HEADER_FUZZ_CHILD = r"""
import json, sys
import numpy as np
import cnnx
for f in sys.argv[1:]:
    try:
        m = cnnx.load_model(f)
        m.predict(np.zeros((2,) + tuple(m.input_shape), np.float32))
        r = "ok"
    except BaseException as e:
        r = type(e).__name__ + ": " + str(e)[:200]
    print(json.dumps([f, r]), flush=True)
"""

WEIRD = [
    -1,
    0,
    1,
    2**40,
    2**63,
    -(2**63),
    "x",
    None,
    [],
    {},
    1.5,
    float("nan"),
    True,
    [1, 2, 3],
    [-1, 5],
    {"a": 1},
    10**30,
]


def _leaves(o, path=()):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _leaves(v, path + (i,))
    if path:
        yield path


def test_header_fuzz_never_crashes(tmp_path, saved):
    """150 mutated headers with valid checksums, loaded in a child process."""
    header, data, _ = split(saved)
    paths = list(_leaves(header))
    rnd = random.Random(1234)
    files = []
    for i in range(150):
        h = json.loads(json.dumps(header))
        for _ in range(rnd.choice([1, 1, 2])):
            where = rnd.choice(paths)
            try:
                o = h
                for k in where[:-1]:
                    o = o[k]
                o[where[-1]] = rnd.choice(WEIRD)
            except (KeyError, IndexError, TypeError):
                pass
        f = tmp_path / f"fz{i}.cnnx"
        f.write_bytes(assemble(h, data))
        files.append(str(f))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="1"
    )
    results = {}
    rest = files
    while rest:
        p = subprocess.run(
            [sys.executable, "-c", HEADER_FUZZ_CHILD] + rest,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        got = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("[")]
        results.update(dict(got))
        if len(got) < len(rest):
            results[rest[len(got)]] = f"CRASH (exit {p.returncode}): {p.stderr[-300:]}"
        rest = rest[len(got) + 1 :]
    bad = {
        f: r
        for f, r in results.items()
        if not (r == "ok" or r.split(":")[0] in ("ValueError", "TypeError", "MemoryError"))
    }
    assert not bad, bad
    assert len(results) == len(files)
    # the fuzz really exercised the loader: most files were refused
    assert sum(r.startswith("ValueError") for r in results.values()) > 75


def test_save_into_missing_directory(tmp_path):
    model = make_model()
    target = tmp_path / "no" / "such" / "dir" / "m.cnnx"
    with pytest.raises(FileNotFoundError, match="^path"):
        model.save(target)
    assert not (tmp_path / "no").exists()
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        cnnx.load_model(tmp_path / "missing.cnnx")


def test_save_onto_a_directory_leaves_no_temporary(tmp_path):
    model = make_model()
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        model.save(tmp_path / "d")
    assert sorted(os.listdir(tmp_path)) == ["d"]
    assert os.listdir(tmp_path / "d") == []
    with pytest.raises((OSError, ValueError)):
        cnnx.load_model(tmp_path / "d")


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = make_model()
    p = tmp_path / "m.cnnx"
    model.save(p)
    good = p.read_bytes()
    model.store.params[...] += 1.0

    def fail_replace(*a, **k):
        raise OSError("rename failed (simulated)")

    monkeypatch.setattr(cio.os, "replace", fail_replace)
    with pytest.raises(OSError):
        model.save(p)
    monkeypatch.undo()
    assert p.read_bytes() == good
    assert os.listdir(tmp_path) == ["m.cnnx"]
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 2)).astype(np.float32)
    assert cnnx.load_model(p).predict(x).shape == (2, 3)


def test_empty_and_foreign_files(tmp_path):
    for name, raw in (
        ("empty", b""),
        ("magic-only", cio.MAGIC),
        ("zip", b"PK\x03\x04" + b"\0" * 60),
        ("npz", b"\x93NUMPY" + b"\0" * 100),
        ("text", b"{}" * 40),
    ):
        p = tmp_path / f"{name}.cnnx"
        p.write_bytes(raw)
        with pytest.raises(ValueError, match="^path"):
            cnnx.load_model(p)
    with pytest.raises(ValueError, match="version"):
        p = tmp_path / "v.cnnx"
        raw = bytearray(assemble({"format": "cnnx-model"}, b""))
        struct.pack_into("<I", raw, 8, 999)
        p.write_bytes(bytes(raw))
        cnnx.load_model(p)
