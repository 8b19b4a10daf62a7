#!/usr/bin/env python3
"""Report code written twice: runs of N or more lines that stand in two places.

Two lines match when they are equal after the whitespace is squeezed, or, with
--shape, when they are equal after every name and number is replaced by a
placeholder (so an AVX-512 body and its AVX2 twin, which differ only in the
intrinsics' names and the vector widths, match). Blank lines, comment lines
and lines of punctuation alone (braces) are skipped: they would make unrelated
code look alike.

    python scripts/duplicates.py cpp/src --min-lines 30 --shape

prints one row per pair and exits 1 when there is any (CI runs it so), else 0.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

SUFFIXES = {".c", ".cc", ".cpp", ".h", ".hpp", ".py"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_NUMBER = re.compile(r"\b\d+(\.\d*)?([eE][-+]?\d+)?[fFuUlL]*\b")
_COMMENT = re.compile(r"^\s*(//|#(?!\s*(include|define|if|endif|else|pragma))|/?\*)")


def significant_lines(path: Path, shape: bool) -> list[tuple[int, str]]:
    """(line number, normalised text) of the lines that count."""
    out = []
    for no, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        text = " ".join(raw.split())
        if not text or _COMMENT.match(text) or not re.search(r"\w", text):
            continue
        if shape:
            text = _NAME.sub("a", _NUMBER.sub("0", text))
        out.append((no, text))
    return out


def find_pairs(
    root: Path, min_lines: int, shape: bool
) -> list[tuple[str, int, int, str, int, int]]:
    files = sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    lines = {p: significant_lines(p, shape) for p in files}
    windows: dict[tuple[str, ...], list[tuple[Path, int]]] = defaultdict(list)
    for p, ls in lines.items():
        texts = [t for _, t in ls]
        for i in range(len(texts) - min_lines + 1):
            windows[tuple(texts[i : i + min_lines])].append((p, i))
    # Grow each matching window pair into the longest run, reported once.
    seen: set[tuple[Path, int, Path, int]] = set()
    pairs = []
    for places in windows.values():
        if len(places) < 2:
            continue
        for a in range(len(places)):
            for b in range(a + 1, len(places)):
                (pa, ia), (pb, ib) = places[a], places[b]
                if pa == pb and abs(ia - ib) < min_lines:
                    continue  # a run that overlaps itself (a repeated line)
                if (pa, ia - 1, pb, ib - 1) in seen or (pa, ia, pb, ib) in seen:
                    seen.add((pa, ia, pb, ib))
                    continue
                seen.add((pa, ia, pb, ib))
                la, lb = lines[pa], lines[pb]
                n = min_lines
                while ia + n < len(la) and ib + n < len(lb) and la[ia + n][1] == lb[ib + n][1]:
                    n += 1
                pairs.append(
                    (
                        str(pa.relative_to(root)),
                        la[ia][0],
                        la[ia + n - 1][0],
                        str(pb.relative_to(root)),
                        lb[ib][0],
                        lb[ib + n - 1][0],
                    )
                )
    return pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--min-lines", type=int, default=30)
    ap.add_argument("--shape", action="store_true", help="names and numbers do not count")
    args = ap.parse_args(argv)
    if args.min_lines < 2:
        ap.error("--min-lines must be at least 2")
    pairs = find_pairs(args.root, args.min_lines, args.shape)
    kind = "same-shape" if args.shape else "identical"
    for a, a0, a1, b, b0, b1 in pairs:
        print(f"{a}:{a0}-{a1} ~ {b}:{b0}-{b1}")
    print(f"{len(pairs)} pair(s) of {kind} runs of {args.min_lines}+ lines under {args.root}")
    return 1 if pairs else 0


if __name__ == "__main__":
    sys.exit(main())
