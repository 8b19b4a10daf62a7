#!/usr/bin/env bash
# Build the documentation site with warnings as errors (a broken link or anchor,
# a missing cross-reference, a docstring griffe cannot parse), then check that
# every public name has an entry in the API reference. Needs the docs extra:
#   pip install ".[docs]"
# The compiled extension is not needed: the API pages come from griffe's
# static analysis of python/cnnx. The docstrings and the code blocks of the
# pages are tested by pytest (tests/test_docstrings.py, tests/test_docs_examples.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${CNNX_DOCS_SITE:-}" ]; then
  site="$CNNX_DOCS_SITE"
else
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  site="$tmp/site"
fi
NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict --site-dir "$site"
python scripts/check_docs_coverage.py "$site"
echo "docs: built with no warnings into $site"
