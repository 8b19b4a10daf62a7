"""benchmarks/plot_results.py: every stored result is valid, is drawn, and its
chart is on the performance page."""

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
RESULTS = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "*.json")))
PERF_PAGE = os.path.join(ROOT, "docs", "performance.md")

pytestmark = pytest.mark.skipif(
    not RESULTS or not os.path.exists(PERF_PAGE),
    reason="no benchmarks/results or docs/ beside tests/",
)


def _load(path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import plot_results
    finally:
        sys.path.pop(0)
    return plot_results.load(path)


@pytest.mark.parametrize("path", RESULTS, ids=os.path.basename)
def test_result_is_valid_and_on_the_performance_page(path):
    result = _load(path)
    assert result["rows"], path
    name = os.path.splitext(os.path.basename(path))[0]
    assert os.path.exists(os.path.join(ROOT, "docs", "img", name + ".svg")), name
    with open(PERF_PAGE) as f:
        assert f"img/{name}.svg" in f.read(), f"{name}.svg is not on docs/performance.md"


def test_a_bad_result_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    with open(RESULTS[0]) as f:
        result = json.load(f)
    key = next(iter(result["chart"]["series"]))
    result["rows"][0][key] = "fast"
    bad.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="no number"):
        _load(str(bad))


def test_the_script_draws_svgs(tmp_path):
    pytest.importorskip("matplotlib")
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "plot_results.py"),
            RESULTS[0],
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    name = os.path.splitext(os.path.basename(RESULTS[0]))[0]
    svg = (tmp_path / (name + ".svg")).read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
