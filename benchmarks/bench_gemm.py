"""SGEMM: cnnx against NumPy (OpenBLAS), same run, separate processes, alternated.

    python benchmarks/bench_gemm.py            # AVX-512 (or best) vs OpenBLAS's own best kernel
    python benchmarks/bench_gemm.py --avx2     # CNNX_ISA=avx2 vs OpenBLAS forced to Haswell
    python benchmarks/bench_gemm.py --tiles    # every cnnx micro-kernel tile shape (--avx2: AVX2's)

Shapes are M x K x N (C[M,N] = A[M,K] B[K,N]). Each framework runs in its own
process (two OpenMP runtimes in one process steal each other's cores), the
processes alternate for --rounds rounds, and the best time of each is kept.
In the NumPy process only, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset
(on this machine they force a half-speed Haswell kernel), unless --avx2 asks
for exactly that kernel. The kernel OpenBLAS reports is printed.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

SHAPES = [
    (256, 256, 256),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (25088, 576, 64),
    (64, 4096, 1000),
]


CLOCK = time.perf_counter


def _time(fn, min_time=0.4, min_reps=3):
    fn()  # warm up: page-in, packing buffers, thread pool
    best = float("inf")
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_time:
        t0 = CLOCK()
        fn()
        best = min(best, CLOCK() - t0)
        reps += 1
    return best


def worker(framework, threads, variant):
    import numpy as np

    rng = np.random.default_rng(0)
    out = {"times": {}}
    if framework == "numpy":
        try:
            from threadpoolctl import threadpool_info

            blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
            out["kernel"] = (
                ", ".join(f"{i.get('internal_api')} {i.get('architecture')}" for i in blas)
                or "unknown"
            )
        except ImportError:
            out["kernel"] = "unknown (pip install threadpoolctl)"
        mm = np.matmul
    else:
        import cnnx
        from cnnx import _core

        cnnx.set_num_threads(threads)
        if variant:
            _core._set_gemm_variant(variant)
        out["kernel"] = _core.gemm_kernel()["name"]
        out["isa"] = _core.active_isa()
        out["fma_peak_1t"] = _core.measure_fma_peak(1)
        out["fma_peak"] = _core.measure_fma_peak(threads)
        mm = _core.sgemm
    for m, k, n in SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        out["times"][f"{m}x{k}x{n}"] = _time(lambda: mm(a, b))
    print(json.dumps(out))


def run_worker(framework, threads, avx2, variant=""):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    if framework == "numpy":
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        if avx2:
            env["OPENBLAS_CORETYPE"] = "Haswell"
    elif avx2:
        env["CNNX_ISA"] = "avx2"
    cmd = [sys.executable, __file__, "--worker", framework, "--threads", str(threads)]
    if variant:
        cmd += ["--variant", variant]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{framework} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def merge(best, res):
    if best is None:
        return res
    for k, t in res["times"].items():
        best["times"][k] = min(best["times"][k], t)
    for key in ("fma_peak", "fma_peak_1t"):
        if key in res:
            best[key] = max(best[key], res[key])
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--worker", choices=["cnnx", "numpy"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--avx2", action="store_true", help="CNNX_ISA=avx2 vs OpenBLAS Haswell")
    p.add_argument("--tiles", action="store_true", help="compare cnnx tile shapes")
    p.add_argument("--variant", default="")
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by process CPU time (tuning on a busy machine, --threads 1)",
    )
    args = p.parse_args()
    if args.cpu_time:
        os.environ["BENCH_CPU_TIME"] = "1"
    if args.worker:
        global CLOCK
        if os.environ.get("BENCH_CPU_TIME") == "1":
            # Tuning aid on a busy machine: CPU time of this process, which
            # does not count time spent descheduled (single-thread runs only).
            CLOCK = time.process_time
        return worker(args.worker, args.threads, args.variant)

    if args.tiles:
        from cnnx import _core

        isa = "avx2" if args.avx2 else "avx512"
        names = [n for n in _core._gemm_variants() if n.endswith("__" + isa)]
        rows = {n: None for n in names}
        for _ in range(args.rounds):
            for n in names:
                rows[n] = merge(rows[n], run_worker("cnnx", args.threads, args.avx2, n))
        print(f"{'kernel':<26}" + "".join(f"{s:>18}" for s in rows[names[0]]["times"]))
        for n, r in rows.items():
            g = [2 * math.prod(map(int, s.split("x"))) / t * 1e-9 for s, t in r["times"].items()]
            print(f"{n:<26}" + "".join(f"{x:>13.0f} GF/s" for x in g))
        return

    cn = np_ = None
    for _ in range(args.rounds):
        cn = merge(cn, run_worker("cnnx", args.threads, args.avx2))
        np_ = merge(np_, run_worker("numpy", args.threads, args.avx2))
    print(
        f"threads: {args.threads}   cnnx kernel: {cn['kernel']} ({cn['isa']})   "
        f"OpenBLAS kernel: {np_['kernel']}"
    )
    print(
        f"FMA peak ({cn['isa']}, independent chains): {cn['fma_peak_1t']:.0f} GFLOP/s on 1 "
        f"thread, {cn['fma_peak']:.0f} on {args.threads}"
    )
    print(
        f"| {'M x K x N':<16} | {'cnnx GFLOP/s':>12} | {'OpenBLAS GFLOP/s':>16} | "
        f"{'ratio':>6} | {'% of peak':>9} |"
    )
    print(f"|{'-' * 18}|{'-' * 14}:|{'-' * 18}:|{'-' * 7}:|{'-' * 10}:|")
    ratios = []
    for s in cn["times"]:
        flops = 2 * math.prod(map(int, s.split("x")))
        gc, gn = flops / cn["times"][s] * 1e-9, flops / np_["times"][s] * 1e-9
        ratios.append(gc / gn)
        print(
            f"| {s:<16} | {gc:>12.0f} | {gn:>16.0f} | {gc / gn:>5.2f}x | "
            f"{100 * gc / cn['fma_peak']:>8.0f}% |"
        )
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f"geomean ratio cnnx/OpenBLAS: {geo:.2f}x   min: {min(ratios):.2f}x")


if __name__ == "__main__":
    main()
