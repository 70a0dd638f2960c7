"""Data-parallel scaling on this machine: the MNIST MLP (784-128-10) and the Keras MNIST CNN,
one training epoch with 1 process x 2 threads against 2 processes x 1 thread under mpirun
(same global batch size, so the same training), and the time of one allreduce against the
gradient size.

    python bench/bench_distributed.py [--quick] [--json PATH]

efficiency = time(1 x 2 threads) / time(2 ranks x 1 thread): above 1, the two processes train
faster than one process with both cores.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("SHENJING_DATA", os.path.join(HERE, "..", "..", "shared", "data"))


def worker(model_name, n, batch, parallel, reps):
    import shenjing as keras
    from shenjing import layers
    if parallel:
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    (x, y), _ = keras.datasets.mnist.load_data()
    x = (x[:n] / 255).astype(np.float32)
    y = y[:n].astype(np.int64)
    if model_name == "mlp":
        x = x.reshape(n, -1)
        model = keras.Sequential([layers.Input((784,)), layers.Dense(128, activation="relu"),
                                  layers.Dense(10, activation="softmax")])
    else:
        x = x[..., None]
        model = keras.Sequential([
            layers.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:batch * 4], y[:batch * 4], batch_size=batch, epochs=1, verbose=0)  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        best = min(best, time.perf_counter() - t)
    if keras.distribution.rank() == 0:
        print(json.dumps({"seconds": best}))


def allreduce_worker(reps):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    out = {}
    for floats in (1_000, 10_000, 100_000, 1_000_000, 10_000_000):
        a = np.ones(floats, np.float32)
        comm.Allreduce(MPI.IN_PLACE, a)  # warm-up
        comm.Barrier()
        t = time.perf_counter()
        for _ in range(reps):
            comm.Allreduce(MPI.IN_PLACE, a)
        out[floats] = (time.perf_counter() - t) / reps
    if comm.Get_rank() == 0:
        print(json.dumps(out))


def _run(args, threads, ranks=None):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.path.join(HERE, "..", "python") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", *args]
    if ranks:
        cmd = [shutil.which("mpirun"), "--allow-run-as-root", "--oversubscribe", "-np",
               str(ranks), *cmd]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--worker", nargs="*")
    a = ap.parse_args()
    if a.worker is not None:
        if a.worker[0] == "allreduce":
            return allreduce_worker(int(a.worker[1]))
        name, n, batch, parallel, reps = a.worker
        return worker(name, int(n), int(batch), parallel == "1", int(reps))
    res = {}
    for name, n, batch in (("mlp", 60000, 128), ("cnn", 12000, 128)):
        if a.quick:
            n //= 4
        one = _run([name, str(n), str(batch), "0", "2"], threads=2)["seconds"]
        two = _run([name, str(n), str(batch), "1", "2"], threads=1, ranks=2)["seconds"]
        res[name] = {"samples": n, "batch": batch, "one_rank_two_threads_s": one,
                     "two_ranks_one_thread_s": two, "efficiency": one / two}
        print(f"{name}: {n} samples, batch {batch}: 1 rank x 2 threads {one:.2f} s, 2 ranks x 1 "
              f"thread {two:.2f} s (x{one / two:.2f})")
    times = _run(["allreduce", "20"], threads=1, ranks=2)
    res["allreduce_s"] = times
    for floats, t in times.items():
        print(f"allreduce of {int(floats):>10,} floats over 2 ranks: {t * 1e6:9.1f} us "
              f"({int(floats) * 4 / t / 1e9:.2f} GB/s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
