"""Bar charts of the benchmark results for the documentation.

Reads every ``benchmarks/results/*.json`` (one measured table each: ``title``,
``date``, ``machine``, ``threads``, ``rows`` and a ``chart`` entry naming the
columns to draw) and writes ``docs/img/<name>.svg``:

- ``chart.kind == "ratio"``: horizontal bars of speed-up ratios (reference time
  / cnnx time) with a line at 1.0, where the two frameworks are equal;
- ``chart.kind == "bars"``: grouped horizontal bars of the raw figures
  (GFLOP/s, img/s), one colour per framework.

    python benchmarks/plot_results.py            # all results
    python benchmarks/plot_results.py conv_2threads.json --out-dir /tmp/img

The SVGs are deterministic for given inputs (fixed hash salt and no date in the
metadata), so re-running the script on unchanged results changes no file.
"""

import argparse
import glob
import json
import os
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
OUT_DIR = os.path.join(HERE, os.pardir, "docs", "img")
COLOURS = ["#3f51b5", "#ff9800", "#9e9e9e", "#4caf50"]
REQUIRED = ("title", "date", "machine", "threads", "rows", "chart")


def load(path):
    with open(path) as f:
        result = json.load(f)
    missing = [k for k in REQUIRED if k not in result]
    if missing:
        raise ValueError(f"{path}: missing fields {missing}")
    series = result["chart"].get("series")
    if not series or result["chart"].get("kind") not in ("ratio", "bars"):
        raise ValueError(f"{path}: chart needs a kind ('ratio' or 'bars') and series")
    for row in result["rows"]:
        for key in series:
            if not isinstance(row.get(key), (int, float)):
                raise ValueError(f"{path}: row {row.get('case')!r} has no number for {key!r}")
    return result


def plot(result, out_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    series = result["chart"]["series"]
    cases = [str(r["case"]) for r in rows]
    n_series = len(series)
    height = 0.8 / n_series
    fig_h = 1.3 + 0.32 * len(cases) * max(1, n_series * 0.7)
    fig, ax = plt.subplots(figsize=(8, fig_h))
    positions = range(len(cases))
    for k, (key, label) in enumerate(series.items()):
        values = [float(r[key]) for r in rows]
        ys = [p - 0.4 + height * (k + 0.5) for p in positions]
        bars = ax.barh(
            ys, values, height=height * 0.92, label=label, color=COLOURS[k % len(COLOURS)]
        )
        fmt = "{:.2f}x" if result["chart"]["kind"] == "ratio" else "{:,.0f}"
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], padding=2, fontsize=7)
    if result["chart"]["kind"] == "ratio":
        ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(list(positions))
    ax.set_yticklabels(cases, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(result["chart"].get("xlabel", ""), fontsize=9)
    ax.margins(x=0.12)
    threads = result["threads"]
    subtitle = (
        f"{result['date']}, {result['machine']}, {threads} thread{'s' if threads != 1 else ''}"
    )
    ax.set_title(
        "\n".join(textwrap.wrap(result["title"], 90) + textwrap.wrap(subtitle, 90)), fontsize=9
    )
    if n_series > 1:
        ax.legend(fontsize=8, loc="best")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(out_path, format="svg", metadata={"Date": None})
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", help="JSON files (default: benchmarks/results/*.json)")
    ap.add_argument("--out-dir", default=OUT_DIR)
    a = ap.parse_args(argv)
    paths = a.results or sorted(glob.glob(os.path.join(RESULTS, "*.json")))
    if not paths:
        raise SystemExit(f"no results found in {RESULTS}")
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "cnnx"  # stable element ids: reproducible files
    os.makedirs(a.out_dir, exist_ok=True)
    for path in paths:
        if not os.path.exists(path) and os.path.exists(os.path.join(RESULTS, path)):
            path = os.path.join(RESULTS, path)
        name = os.path.splitext(os.path.basename(path))[0]
        out = os.path.join(a.out_dir, name + ".svg")
        plot(load(path), out)
        print(out)


if __name__ == "__main__":
    main()
