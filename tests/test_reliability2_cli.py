"""Reliability II (issue 17): the ``cnnx`` command.

- bad arguments and unreadable files are usage errors: exit code 2, one
  ``cnnx COMMAND: error: ...`` line, no traceback (every subcommand);
- ``--lr 0`` is refused, never read as "unset";
- ``--out`` is checked before training starts (a missing directory, or a
  directory as the path, used to fail after the whole run);
- ``cnnx --version``;
- the progress bar's ``val_*`` are measured on a held-out validation split
  (not the test set), and img/s appears once.
"""

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import cnnx


def run(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run(
        [sys.executable, "-m", "cnnx", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def assert_usage_error(r, command, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cnnx {command}: error: "), r.stderr
    for w in words:
        assert w in last, (w, last)


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cnnx {cnnx.__version__}"


@pytest.mark.parametrize(
    "args,words",
    [
        (["--lr", "-1"], ["--lr", "> 0"]),
        (["--lr", "nan"], ["--lr", "finite"]),
        (["--lr", "inf"], ["--lr", "finite"]),
        (["--lr", "0"], ["--lr", "> 0"]),
        (["--lr", "abc"], ["--lr"]),
        (["--seed", "-5"], ["--seed"]),
        (["--seed", str(2**64)], ["--seed"]),
        (["--validation-split", "1"], ["--validation-split"]),
        (["--validation-split", "-0.1"], ["--validation-split"]),
        (["--limit", "0"], ["--limit"]),
    ],
)
def test_bad_train_numbers_are_usage_errors(args, words):
    assert_usage_error(run("train", "--dataset", "shapes", *args), "train", *words)


def test_lr_zero_never_means_unset(monkeypatch):
    from cnnx import cli

    args = cli.build_parser().parse_args(["train", "--lr", "0.25"])
    assert args.lr == 0.25
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(["train", "--lr", "0"])
    assert e.value.code == 2


@pytest.mark.parametrize("out", ["/no/such/dir/m.cnnx", "DIR"])
def test_bad_out_is_refused_before_training(tmp_path, out):
    out = tmp_path if out == "DIR" else out
    t = time.time()
    r = run("train", "--dataset", "shapes", "--epochs", "50", "--quiet", "--out", out)
    assert_usage_error(r, "train", "--out")
    assert "dataset:" not in r.stdout and "Total params" not in r.stdout  # nothing ran
    assert time.time() - t < 60


def test_unwritable_out_directory(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        assert_usage_error(run("train", "--out", d / "m.cnnx"), "train", "not writable")
    finally:
        d.chmod(0o700)


@pytest.fixture
def bad_files(tmp_path):
    files = {
        "junk": tmp_path / "junk.cnnx",
        "text": "/etc/passwd",
        "dir": tmp_path,
        "missing": tmp_path / "nope.cnnx",
        "empty": tmp_path / "empty.cnnx",
        "truncated": tmp_path / "trunc.cnnx",
    }
    files["junk"].write_bytes(os.urandom(300))
    files["empty"].write_bytes(b"")
    cnnx.set_seed(0)
    m = cnnx.Sequential([cnnx.Dense(3)], input_shape=(4,))
    m.save(tmp_path / "good.cnnx")
    raw = (tmp_path / "good.cnnx").read_bytes()
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    return files


@pytest.mark.parametrize("kind", ["junk", "text", "dir", "missing", "empty", "truncated"])
def test_summary_of_bad_files_is_a_usage_error(bad_files, kind):
    assert_usage_error(run("summary", bad_files[kind]), "summary")


@pytest.mark.parametrize("shape,classes", [("4000,4000,3", 10), ("32,32,3", 10**9), ("3,3,1", 10)])
def test_summary_of_impossible_networks_is_a_usage_error(shape, classes):
    t = time.time()
    r = run("summary", "--input-shape", shape, "--classes", classes)
    assert_usage_error(r, "summary", "--input-shape/--classes")
    assert time.time() - t < 60  # shapes only: no weights are drawn


def test_edges_of_bad_files_is_a_usage_error(tmp_path):
    np.save(tmp_path / "four.npy", np.zeros((2, 2, 2, 2)))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "empty.npy", np.zeros((0, 5)))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    (tmp_path / "junk.png").write_bytes(os.urandom(100))
    for f in ("four.npy", "obj.npy", "empty.npy", "junk.npy", "junk.png"):
        assert_usage_error(run("edges", tmp_path / f, "--out", tmp_path / "e.png"), "edges", f)
    assert_usage_error(run("edges", "/etc/passwd", "--out", tmp_path / "e.png"), "edges")
    assert_usage_error(run("edges", "--out", "/no/such/dir/e.png"), "edges", "--out")


def test_train_on_corrupt_data_files_is_a_usage_error(tmp_path):
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / name).write_bytes(b"\0\0\x08\x01\0\0\0\x05ab")  # promises 5, holds 2
    r = run("train", "--dataset", "mnist", "--data-dir", tmp_path, "--quiet")
    assert_usage_error(r, "train", "promises")


def test_progress_bar_shows_validation_split_and_one_rate():
    r = run("train", "--dataset", "shapes", "--limit", "200", "--epochs", "1", "--batch-size", "50")
    assert r.returncode == 0, r.stderr
    assert "20 of them held out for validation" in r.stdout.splitlines()[0]
    renders = [s for s in re.split(r"[\r\n]", r.stderr) if "Epoch 1/1" in s]
    final = renders[-1]
    assert "val_loss" in final and "val_accuracy" in final, final
    assert final.count("img/s") == 1, final
    h = run("train", "--help")
    assert "validation split held out from the training images" in " ".join(h.stdout.split())


def test_validation_split_zero_trains_on_everything():
    r = run(
        "train",
        "--dataset",
        "shapes",
        "--limit",
        "100",
        "--epochs",
        "1",
        "--validation-split",
        "0",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert "held out" not in r.stdout and r.stdout.splitlines()[0].count("100 train") == 1
