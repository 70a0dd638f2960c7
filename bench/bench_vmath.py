"""The primitive ops exp, log, log1p, expm1, softmax, log_softmax and logsumexp on a
(64, 16384) float32 batch, forward (and softmax's backward), through _core._run_op (which
includes building the op and allocating its output), against PyTorch on the same thread
count; one process. Each time is the best single call over --reps rounds of 10 calls: on a
shared machine a parallel call that loses a thread to another process for a time slice is
noise, not the kernel. Between frameworks the script waits out the other's spinning thread
pool, and before each op for the machine to be quiet (the load seen is printed).

    python bench/bench_vmath.py [--threads 2] [--reps 5]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

import shenjing
from shenjing import _core

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _sysload  # noqa: E402


def spec(op, **attrs):
    return json.dumps({"class_name": "Op", "config": {"name": "t", "op": op, **attrs}})


def best(fn, reps):
    time.sleep(0.05)  # the other framework's OpenMP threads stop spinning
    fn()  # warm-up: first-touch of buffers, thread pool start
    ts = []
    for _ in range(reps):
        for _ in range(10):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return min(ts) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    shenjing.set_num_threads(a.threads)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 16384)).astype(np.float32) * 3
    pos = np.abs(x) + 1e-3
    dy = rng.standard_normal(x.shape).astype(np.float32)
    tx, tp, tdy = torch.from_numpy(x), torch.from_numpy(pos), torch.from_numpy(dy)
    cases = [
        ("exp", x, None, lambda: torch.exp(tx)),
        ("log", pos, None, lambda: torch.log(tp)),
        ("log1p", pos, None, lambda: torch.log1p(tp)),
        ("expm1", x, None, lambda: torch.expm1(tx)),
        ("softmax", x, None, lambda: torch.softmax(tx, -1)),
        ("log_softmax", x, None, lambda: torch.log_softmax(tx, -1)),
        ("logsumexp", x, None, lambda: torch.logsumexp(tx, -1)),
    ]
    print(f"isa={_core.isa()} threads={a.threads} shape={x.shape}  (ms, best of {a.reps})")
    for op, inp, g, tfn in cases:
        attrs = {"axis": -1} if op == "logsumexp" else {}
        s = spec(op, **attrs)
        _, load = _sysload.wait_quiet(10)
        ours = best(lambda: _core._run_op(s, [inp], [True], 64, g, None), a.reps)
        theirs = best(tfn, a.reps)
        print(f"{op:12s} shenjing {ours:7.3f}  torch {theirs:7.3f}  ratio {ours / theirs:5.2f}"
              f"  (other load {load:.2f} cores)")
    # softmax forward + backward: _run_op with dy runs both; torch the same through autograd.
    s = spec("softmax")
    ours = best(lambda: _core._run_op(s, [x], [True], 64, dy, None), a.reps)

    def torch_fb():
        t = tx.clone().requires_grad_(True)
        torch.softmax(t, -1).backward(tdy)
    theirs = best(torch_fb, a.reps)
    print(f"{'softmax f+b':12s} shenjing {ours:7.3f}  torch {theirs:7.3f}  "
          f"ratio {ours / theirs:5.2f}")


if __name__ == "__main__":
    main()
