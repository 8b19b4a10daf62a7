"""The ```python blocks of the documentation (docs/**/*.md) run.

Each page's blocks run in order in one namespace (a later block may use the
names an earlier one made), in a temporary working directory, on small models.
A block that cannot run on its own (it needs MPI, a downloaded file, or names
the reader supplies) is marked by the line ``<!-- docs-test: skip -->`` just
before its fence, and says why in the text around it.
"""

import os
import re

import pytest

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs")
SKIP_MARK = "<!-- docs-test: skip -->"
FENCE = re.compile(r"^```python\s*$")


def python_blocks(text):
    """(first line number, code, skipped) of each ```python block of a page."""
    lines = text.split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            skipped = j >= 0 and lines[j].strip() == SKIP_MARK
            end = i + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            blocks.append((i + 2, "\n".join(lines[i + 1 : end]), skipped))
            i = end + 1
        else:
            i += 1
    return blocks


def pages():
    """The pages (relative to docs/) with at least one block to run; none when
    the tests run from a copy outside the source tree (the wheel test)."""
    found = []
    for root, _, files in os.walk(DOCS):
        for name in sorted(files):
            if name.endswith(".md"):
                path = os.path.join(root, name)
                with open(path) as f:
                    blocks = [b for b in python_blocks(f.read()) if not b[2]]
                if blocks:
                    found.append(os.path.relpath(path, DOCS))
    return sorted(found)


def test_the_extractor_sees_blocks_and_skips():
    text = (
        "x\n```python\na = 1\n```\n\n" + SKIP_MARK + "\n\n```python\nb = 2\n```\n```text\nc\n```\n"
    )
    assert python_blocks(text) == [(3, "a = 1", False), (9, "b = 2", True)]
    if os.path.isdir(DOCS):
        assert len(pages()) >= 3


@pytest.mark.parametrize(
    "page",
    pages()
    or [
        pytest.param(
            None,
            marks=pytest.mark.skip(
                reason="no docs/ beside tests/ (a copy of the tests outside the source tree)"
            ),
        )
    ],
)
def test_docs_page_examples_run(page, tmp_path, monkeypatch):
    pytest.importorskip("cnnx._core")
    monkeypatch.chdir(tmp_path)
    with open(os.path.join(DOCS, page)) as f:
        blocks = python_blocks(f.read())
    namespace = {"__name__": "__docs__"}
    for line, code, skipped in blocks:
        if skipped:
            continue
        try:
            exec(compile(code, f"docs/{page}:{line}", "exec"), namespace)
        except ImportError as e:  # an optional package (onnx, matplotlib...) is missing
            if not isinstance(e, ModuleNotFoundError) and "pip install" not in str(e):
                raise
            pytest.skip(f"docs/{page}:{line} needs an optional package: {e}")
