"""The ``cnnx`` command, run as ``python -m cnnx`` in subprocesses."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnx import cli


def run(*args, cwd=None, env_extra=None, timeout=240):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "cnnx", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("info", "summary", "train", "edges", "bench"):
        assert cmd in r.stdout
    assert "_bench-worker" not in r.stdout


def test_info_json():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert {"version", "isa", "num_threads"} <= set(info)


def test_summary_is_the_course_table():
    r = run("summary", "--formulas")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # the notes' numbers, typed in by hand
    for shape, size, params in [
        ("(28,28,8)", "6,272", "608"),
        ("(14,14,8)", "1,568", "0"),
        ("(10,10,16)", "1,600", "3,216"),
        ("(5,5,16)", "400", "0"),
        ("(120)", "120", "48,120"),
        ("(84)", "84", "10,164"),
        ("(10)", "10", "850"),
    ]:
        rows = [
            ln.split() for ln in out.splitlines() if len(ln.split()) > 3 and ln.split()[1] == shape
        ]
        assert rows and rows[0][2] == size and rows[0][3] == params, (shape, rows)
    assert "Total params: 62,958" in out
    assert "(5*5*3+1)*8 = 608" in out


def test_summary_other_input_and_bad_shape():
    r = run("summary", "--input-shape", "28,28,1")
    assert r.returncode == 0, r.stderr
    assert "(5*5*1+1)*8" not in r.stdout and "208" in r.stdout  # (5*5*1+1)*8 = 208
    r = run("summary", "--input-shape", "28,28")
    assert r.returncode == 2 and "H,W,C" in r.stderr


def test_train_shapes_saves_and_summary_reads_it(tmp_path):
    out = tmp_path / "m.cnnx"
    r = run(
        "train",
        "--dataset",
        "shapes",
        "--limit",
        "400",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("dataset: generated shapes")
    assert "Total params" in r.stdout
    assert lines[-1].startswith("final test accuracy: ")
    acc = float(lines[-1].split()[-1])
    assert 0.0 <= acc <= 1.0
    assert out.is_file()
    r2 = run("summary", str(out))
    assert r2.returncode == 0, r2.stderr
    assert "Total params" in r2.stdout and "(32,32,1)" in r2.stdout


def test_train_progress_bar_and_resnet(tmp_path):
    r = run(
        "train",
        "--dataset",
        "shapes",
        "--model",
        "resnet",
        "--limit",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "32",
    )
    assert r.returncode == 0, r.stderr
    assert "Epoch 1/1" in r.stderr  # the tqdm bar
    assert "Residual" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("final test accuracy: ")


def test_train_auto_says_what_it_picked():
    r = run("train", "--limit", "200", "--epochs", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("dataset: auto -> ")


def test_auto_order(monkeypatch):
    from cnnx import datasets

    monkeypatch.setattr(datasets, "find_mnist", lambda kind, path=None: None)
    monkeypatch.setattr(cli, "_sklearn_available", lambda: False)
    label, (x, y), _, k = cli.load_dataset("auto", limit=40)
    assert label.startswith("auto -> generated shapes") and k == 4 and x.shape == (40, 32, 32, 1)
    monkeypatch.setattr(cli, "_sklearn_available", lambda: True)
    pytest.importorskip("sklearn")
    label, (x, y), _, k = cli.load_dataset("auto", limit=40)
    assert label.startswith("auto -> scikit-learn digits") and x.shape == (40, 8, 8, 1)


def test_bad_train_arguments():
    r = run("train", "--dataset", "cifar")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run("train", "--epochs", "0")
    assert r.returncode == 2 and "positive" in r.stderr


def _edge_stats(stdout):
    return {
        ln.split()[0]: float(ln.split()[3]) for ln in stdout.splitlines() if "mean |response|" in ln
    }


def test_edges_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    img = np.zeros((20, 24), np.float32)
    img[:, 12:] = 1.0
    np.save(tmp_path / "step.npy", img)
    np.save(tmp_path / "step_t.npy", np.ascontiguousarray(img.T))
    out = tmp_path / "edges.png"
    r = run("edges", str(tmp_path / "step.npy"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s = _edge_stats(r.stdout)
    # a vertical step: the vertical detectors respond most (the horizontal
    # ones only see the zero padding at the top and bottom borders)
    assert s["vertical"] > 2 * s["horizontal"]
    assert s["sobel_x"] > 2 * s["sobel_y"] and s["scharr_x"] > 2 * s["scharr_y"]
    # transposing the image swaps the roles exactly
    r = run("edges", str(tmp_path / "step_t.npy"), "--out", str(tmp_path / "t.png"))
    t = _edge_stats(r.stdout)
    for a, b in [("vertical", "horizontal"), ("sobel_x", "sobel_y"), ("scharr_x", "scharr_y")]:
        assert t[a] == pytest.approx(s[b], rel=1e-3) and t[b] == pytest.approx(s[a], rel=1e-3)


def test_edges_sample_image(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "e.png"
    r = run("edges", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.is_file()
    try:
        import skimage  # noqa: F401

        assert "camera" in r.stdout
    except ImportError:
        assert "generated shapes" in r.stdout


def test_edges_missing_file(tmp_path):
    r = run("edges", str(tmp_path / "nope.png"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_bench_quick():
    r = run("bench", "--cases", "matmul", "--repeat", "2", "--rounds", "1", "--no-torch", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(res["matmul"]) == {"cnnx", "numpy"}
    assert all(v > 0 for v in res["matmul"].values())
    assert "x the time of cnnx" in r.stdout


def test_edges_without_optional_packages(tmp_path):
    """No matplotlib: the responses go to an .npz; no scikit-image: generated shapes."""
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['skimage'] = None; "
        "from cnnx.cli import main; sys.exit(main(['edges', '--out', sys.argv[1]]))"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "e.png")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "generated shapes" in r.stdout and "pip install" in r.stdout
    assert not (tmp_path / "e.png").exists()
    data = np.load(tmp_path / "e.npz")
    assert {"vertical", "horizontal", "sobel_x", "scharr_y"} <= set(data.files)
    assert data["vertical"].shape == (256, 256)


def test_read_image_png_and_npy(tmp_path):
    mpl_image = pytest.importorskip("matplotlib.image")
    rgb = np.zeros((6, 5, 3), np.float32)
    rgb[:, 3:, 0] = 1.0  # a red right part
    mpl_image.imsave(tmp_path / "a.png", rgb)
    g = cli.read_image(str(tmp_path / "a.png"))
    assert g.shape == (6, 5) and g.min() == 0.0 and g.max() == pytest.approx(1.0)
    np.testing.assert_allclose(g[:, 3:], 1.0, atol=1e-6)
    np.testing.assert_allclose(g[:, :3], 0.0, atol=1e-6)
    np.save(tmp_path / "b.npy", np.arange(12.0).reshape(3, 4))
    np.testing.assert_allclose(
        cli.read_image(str(tmp_path / "b.npy")), np.arange(12.0).reshape(3, 4) / 11.0, rtol=1e-6
    )
