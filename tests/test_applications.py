"""The three applications of the course run end to end with --quick:
classification, detection and style transfer. Each must print its headline
metric as its last line, write its PNG into --out-dir, and finish within
CNNX_EXAMPLE_SECONDS (default 60): the smaller of its wall and CPU time, so
that a loaded machine does not fail it.

The checks on the numbers are loose (a quick run trains for seconds) but
can fail: a classifier at chance level, a detector that finds nothing, or a
style transfer that does not lower its loss is a failure.
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


def run(name, out_dir, *extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    t0, c0 = time.perf_counter(), _child_cpu()
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--out-dir", str(out_dir), *extra],
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
    return lines[-1], r.stdout


def pngs(out_dir):
    return sorted(p.name for p in Path(out_dir).glob("*.png"))


@pytest.mark.skipif(not have("matplotlib"), reason="the pictures need matplotlib")
def test_classify_quick(tmp_path):
    # generated shapes: always available, and 4 classes make chance 0.25
    last, out = run("classify.py", tmp_path, "--dataset", "shapes")
    accs = re.findall(r"(lenet5|resnet) on shapes: test accuracy ([0-9.]+) \((\d+) s\)", last)
    assert [a[0] for a in accs] == ["lenet5", "resnet"], last
    for name, acc, _ in accs:
        assert 0.5 < float(acc) <= 1.0, f"{name}: {acc} (chance is 0.25)\n{out}"
    assert pngs(tmp_path) == ["lenet5_shapes.png", "resnet_shapes.png"]


@pytest.mark.skipif(not have("matplotlib"), reason="the pictures need matplotlib")
def test_detect_quick(tmp_path):
    last, out = run("detect.py", tmp_path)
    m = re.fullmatch(r"mAP@0\.5 on (\d+) held-out scenes: ([0-9.]+) \(.*\)", last)
    assert m, last
    assert 0.2 < float(m.group(2)) <= 1.0, out
    assert pngs(tmp_path) == ["detections.png"]


@pytest.mark.skipif(
    not (have("matplotlib") and have("skimage") and have("sklearn")),
    reason="needs matplotlib, scikit-image and scikit-learn's sample photos",
)
def test_style_transfer_quick(tmp_path):
    last, out = run("style_transfer.py", tmp_path)
    m = re.fullmatch(
        r"style transfer loss: ([0-9.]+) -> ([0-9.]+) \(([0-9.]+)% lower; style "
        r"([0-9.]+) -> ([0-9.]+)\) in \d+ steps, [0-9.]+ s",
        last,
    )
    assert m, last
    first, final = float(m.group(1)), float(m.group(2))
    assert final < 0.8 * first, out
    assert float(m.group(5)) < 0.5 * float(m.group(4)), out  # the style term itself falls
    assert pngs(tmp_path) == ["style_transfer_chelsea_flower.png"]
