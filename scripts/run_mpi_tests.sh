#!/usr/bin/env bash
# The MPI tests (tests/test_distributed.py) against the installed cnnx, with
# the environment CI uses: a missing MPI fails instead of skipping, and Open
# MPI may run as root. Optional: --bench also runs the 1x2 vs 2x1 benchmark.
#   apt-get install -y openmpi-bin libopenmpi-dev && pip install mpi4py   # once
#   bash scripts/run_mpi_tests.sh [--bench]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 CNNX_REQUIRE_MPI=1
command -v mpirun >/dev/null || { echo "mpirun not found: apt-get install -y openmpi-bin libopenmpi-dev" >&2; exit 1; }
python -c "import mpi4py" 2>/dev/null || { echo "mpi4py not found: pip install mpi4py" >&2; exit 1; }
mpirun --version | head -1
(cd tests && python -m pytest -q -p no:cacheprovider test_distributed.py)
if [ "${1:-}" = "--bench" ]; then
  python benchmarks/bench_distributed.py --rounds 3
fi
