"""Where shenjing's MLP time goes per batch: the C++ step alone vs fit(), vs PyTorch.

    python bench/profile_mlp.py [--threads N] [--cprofile]

Per batch size (32, 128), microseconds per batch (best of several trials of a whole epoch's
worth of batches, after waiting for other processes to go quiet):
  core.train_step, idx=None        C++ step on contiguous rows (no gather), pre-made arrays
  core.train_step, shuffled idx    the same with the gather fit() uses
  fit() epoch / steps              the whole public call (validation, shuffle, Python loop)
  torch step                       the idiomatic PyTorch loop body, for reference
and for batch 1: core.predict into a pre-made buffer vs model.predict(x1) vs torch.
"""
import argparse
import cProfile
import os
import pstats
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("SHENJING_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

import _sysload  # noqa: E402
import frameworks  # noqa: E402
from run import load_mnist  # noqa: E402


def best_of(fn, trials=5, wait=3.0):
    ts = []
    for _ in range(trials):
        _sysload.wait_quiet(wait)
        t, _ = _sysload.timed(fn)
        ts.append(t)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cprofile", action="store_true", help="also cProfile fit() and predict")
    ap.add_argument("--samples", type=int, default=20000, help="rows per timed pass")
    args = ap.parse_args()
    import shenjing as sj
    import torch
    sj.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    x, y, xt, yt = load_mnist()
    x, y = x[:args.samples], y[:args.samples]
    yf = y.astype(np.float32)
    n = len(x)
    print(f"threads {args.threads}; {n} samples per pass; us per batch (best of 5)")
    for B in (32, 128):
        sjm = frameworks.ShenjingMLP()
        tm = frameworks.TorchMLP(sjm.get_weights())
        tm.prepare(x, y)
        sjm.train_epoch(x, y, B)  # warm-up
        tm.train_epoch(x, y, B)
        core = sjm.model._core
        steps = -(-n // B)
        idx = np.random.default_rng(0).permutation(n).astype(np.int64)

        def core_loop(ix):
            ts = core.train_step
            for b in range(steps):
                s = b * B
                ts(x, yf, ix, s, min(B, n - s))

        r = {
            "core.train_step idx=None": best_of(lambda: core_loop(None)),
            "core.train_step shuffled idx": best_of(lambda: core_loop(idx)),
            "fit() (epochs=1, verbose=0)": best_of(lambda: sjm.train_epoch(x, y, B)),
            "torch loop (reference)": best_of(lambda: tm.train_epoch(x, y, B)),
        }
        # fit() internals outside the loop: input validation + permutation
        m = sjm.model
        r["  fit setup: _data()+_resolve_metrics"] = best_of(
            lambda: (m._data(x, y, B, "fit", True), m._resolve_metrics((n,))))
        r["  fit setup: np.isfinite(x).all()"] = best_of(lambda: np.isfinite(x).all())
        print(f"\nbatch {B} ({steps} steps):")
        for k, v in r.items():
            per = v / steps * 1e6
            print(f"  {k:40s} {v * 1e3:9.2f} ms/pass  {per:8.1f} us/batch")
        c, f = r["core.train_step shuffled idx"], r["fit() (epochs=1, verbose=0)"]
        print(f"  -> Python/fit overhead: {(f - c) / steps * 1e6:.1f} us/batch "
              f"({(f - c) / f * 100:.0f}% of fit); gather cost "
              f"{(c - r['core.train_step idx=None']) / steps * 1e6:.1f} us/batch; "
              f"torch/core-only ratio {r['torch loop (reference)'] / r['core.train_step idx=None']:.2f}x")
        if args.cprofile:
            pr = cProfile.Profile()
            pr.enable()
            sjm.train_epoch(x, y, B)
            pr.disable()
            pstats.Stats(pr).sort_stats("tottime").print_stats(8)

    # batch-1 predict
    sjm = frameworks.ShenjingMLP()
    tm = frameworks.TorchMLP(sjm.get_weights())
    x1 = np.ascontiguousarray(xt[:1])
    t1 = torch.from_numpy(x1)
    out = np.empty((1, 10), np.float32)
    core = sjm.model._core
    N = 5000

    def loop(f, a):
        def run():
            for _ in range(N):
                f(a)
        return run

    def core_pred(a):
        core.predict(a, out, 0, 1)

    def core_pred_alloc(a):
        core.predict(a, np.empty((1, 10), np.float32), 0, 1)

    r = {
        "core.predict (pre-made out)": best_of(loop(core_pred, x1)),
        "core.predict + np.empty out": best_of(loop(core_pred_alloc, x1)),
        "model._as_input(x1)": best_of(loop(sjm.model._as_input, x1)),
        "model.predict(x1, verbose=0)": best_of(loop(sjm.predict1, x1)),
        "torch model(x1) inference_mode": best_of(loop(tm.predict1, t1)),
    }
    print("\nbatch-1 predict, us per call (mean over 5000 calls, best of 5):")
    for k, v in r.items():
        print(f"  {k:40s} {v / N * 1e6:8.2f} us")
    if args.cprofile:
        pr = cProfile.Profile()
        pr.enable()
        loop(sjm.predict1, x1)()
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
