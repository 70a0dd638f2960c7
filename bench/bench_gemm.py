"""SGEMM: shenjing's kernel (shenjing._core._sgemm) against numpy.matmul, float32, one process.

Threads are whatever the process has (set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before start).
The two libraries are timed in alternating blocks, best of all runs, with a short pause at each
switch: OpenMP and OpenBLAS worker threads both spin for a while after a call, and timing one
while the other's threads still spin would measure the fight over the cores, not the kernel.

    python bench/bench_gemm.py            # square sizes and the MLP shapes, every transpose
"""
import os
import time

import numpy as np

from shenjing import _core

# (M, N, K, trans_a, trans_b) of a 784-128-10 MLP at batch 32 and 128.
F, T = False, True
MLP_SHAPES = [
    (32, 128, 784, F, F), (128, 128, 784, F, F), (32, 10, 128, F, F), (128, 10, 128, F, F),  # x @ W
    (784, 128, 32, T, F), (784, 128, 128, T, F), (128, 10, 32, T, F), (128, 10, 128, T, F),  # x^T dy
    (32, 784, 128, F, T), (128, 784, 128, F, T), (32, 128, 10, F, T), (128, 128, 10, F, T),  # dy W^T
]


def _best_isa():
    want = os.environ.get("SHENJING_ISA")
    isas = list(_core._isas())
    return want if want in isas else isas[-1]


def _time_block(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_one(M, N, K, ta=False, tb=False, repeat=None, rounds=3, isa=None, pause=0.05):
    """Best-of timings of one product; returns a dict with GFLOP/s of both and their ratio."""
    isa = isa or _best_isa()
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (K, M) if ta else (M, K)).astype(np.float32)
    b = rng.uniform(-1, 1, (N, K) if tb else (K, N)).astype(np.float32)
    opa, opb = (a.T if ta else a), (b.T if tb else b)

    def ours():
        return _core._sgemm(a, b, ta, tb, 1.0, 0.0, None, None, isa)

    def theirs():
        return np.matmul(opa, opb)

    # Same answer first (float32 tolerance), then timing.
    np.testing.assert_allclose(ours(), theirs(), rtol=1e-3, atol=1e-3 * np.sqrt(K))
    for _ in range(3):  # warm up: threads started, buffers grown
        theirs()
        ours()
    if repeat is None:  # about 0.1 s per block, at least 3 runs
        t = _time_block(ours, 3)
        repeat = int(max(3, min(2000, 0.1 / max(t, 1e-7))))
    t_ours = t_np = float("inf")
    for _ in range(rounds):
        time.sleep(pause)
        t_np = min(t_np, _time_block(theirs, repeat))
        time.sleep(pause)
        t_ours = min(t_ours, _time_block(ours, repeat))
    flops = 2.0 * M * N * K
    return {
        "M": M, "N": N, "K": K, "trans_a": ta, "trans_b": tb, "isa": isa,
        "shenjing_gflops": flops / t_ours * 1e-9, "numpy_gflops": flops / t_np * 1e-9,
        "shenjing_us": t_ours * 1e6, "numpy_us": t_np * 1e6, "ratio": t_np / t_ours,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"), "repeat": repeat,
    }


def run(sizes=(128, 256, 512, 1024, 2048), repeat=None, shapes=(), isa=None):
    """Square M = N = K for each size (no transposes), then each (M, N, K, ta, tb) in shapes.
    repeat: runs per timed block (None: about 0.1 s worth). Returns one dict per product."""
    out = [bench_one(s, s, s, repeat=repeat, isa=isa) for s in sizes]
    out += [bench_one(M, N, K, ta, tb, repeat=repeat, isa=isa) for (M, N, K, ta, tb) in shapes]
    return out


def _print(rows):
    print(f"{'M':>5} {'N':>5} {'K':>5} op  {'isa':>7} {'shenjing':>9} {'numpy':>9} "
          f"{'ratio':>6}   (GFLOP/s; ratio = numpy time / shenjing time)")
    for r in rows:
        op = ("T" if r["trans_a"] else "N") + ("T" if r["trans_b"] else "N")
        print(f"{r['M']:>5} {r['N']:>5} {r['K']:>5} {op}  {r['isa']:>7} "
              f"{r['shenjing_gflops']:9.1f} {r['numpy_gflops']:9.1f} {r['ratio']:6.2f}")


if __name__ == "__main__":
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[128, 256, 512, 1024, 2048])
    p.add_argument("--no-mlp", action="store_true", help="skip the MLP shapes")
    p.add_argument("--all-transposes", action="store_true",
                   help="MLP shapes (784-128 layer) in all four transpose combinations")
    p.add_argument("--isa", default=None, help="kernel table (default: best available)")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    shapes = [] if args.no_mlp else list(MLP_SHAPES)
    if args.all_transposes:
        shapes = [(M, N, K, ta, tb) for (M, N, K) in
                  ((32, 128, 784), (128, 128, 784), (784, 128, 32), (784, 128, 128),
                   (32, 784, 128), (128, 784, 128))
                  for ta in (False, True) for tb in (False, True)]
    rows = run(sizes=args.sizes, shapes=shapes, isa=args.isa)
    _print(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
