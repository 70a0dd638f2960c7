"""shenjing vs PyTorch (and Keras when importable) in one process, alternating frameworks, at one
thread count. See docs/ARCHITECTURE.md.

    python bench/run.py [--threads N] [--quick] [--json PATH]

Cases:
  * MNIST MLP 784-128(relu)-10(softmax), Adam(1e-3), sparse CE: whole shuffled training epochs over
    the 60,000 real MNIST images at batch 32 and 128 (after one warm-up epoch; median of the
    repeats, alternating which framework goes first). Accuracy on the 10,000 test images after
    the timed epochs is reported too.
  * predict throughput at batch 256 over the 10,000 test images.
  * batch-1 predict latency (median over many single calls).
  * the Keras MNIST CNN (epoch at batch 128, predict at batch 256) and one conv2d layer
    (forward and forward+backward GFLOP/s) via bench/bench_conv.py.
  * SGEMM 128..2048 vs numpy via bench/bench_gemm.py when that module exists.

ratio = pytorch_time / shenjing_time (> 1: shenjing is faster).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("SHENJING_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

import _sysload  # noqa: E402
import frameworks  # noqa: E402

WAIT_QUIET = 10.0  # set from --wait-quiet
RETRIES = 2  # extra attempts for a contended repetition (set from --retries)
CONTENDED = 0.3  # cores used by other processes that mark a repetition as contended


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_mnist():
    import shenjing as sj
    (x, y), (xt, yt) = sj.datasets.mnist.load_data()
    x = (x.reshape(len(x), 784).astype(np.float32) / 255.0).astype(np.float32)
    xt = (xt.reshape(len(xt), 784).astype(np.float32) / 255.0).astype(np.float32)
    return np.ascontiguousarray(x), y.astype(np.int64), np.ascontiguousarray(xt), \
        yt.astype(np.int64)


def timed(fn, wait=None):
    """Seconds fn took; waits (up to WAIT_QUIET s) for other processes to go quiet first."""
    wait = WAIT_QUIET if wait is None else wait
    if wait > 0:
        _sysload.wait_quiet(wait)
    t, load = _sysload.timed(fn)
    timed.loads.append(load)
    return t


timed.loads = []


def summarize(times, loads):
    """median/best over repetitions; repetitions during which other processes used more than
    CONTENDED cores are dropped from the median when at least one clean one remains."""
    clean = [t for t, l in zip(times, loads) if l < CONTENDED]
    return {"median_s": statistics.median(clean or times), "best_s": min(times),
            "median_all_s": statistics.median(times),
            "times_s": [round(t, 6) for t in times],
            "foreign_cores": [round(l, 2) for l in loads],
            "clean_repeats": len(clean)}


# --------------------------------------------------------------------------------------------
def bench_training(fws, x, y, xt, yt, batch_size, repeats, log):
    """One warm-up epoch each, then `repeats` timed epochs each, alternating the order."""
    init = frameworks.ShenjingMLP().get_weights()
    models = {name: cls(init) for name, cls in fws.items()}
    if "pytorch" in models:
        models["pytorch"].prepare(x, y)
    names = list(models)
    for name in names:  # warm-up epoch (allocations, thread pools, caches)
        log(f"  warm-up {name} batch {batch_size}: "
            f"{timed(lambda: models[name].train_epoch(x, y, batch_size)):.3f} s")
    times = {name: [] for name in names}
    loads = {name: [] for name in names}
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            for attempt in range(1 + RETRIES):  # retry repetitions other processes disturbed
                t = timed(lambda: models[name].train_epoch(x, y, batch_size))
                times[name].append(t)
                loads[name].append(timed.loads[-1])
                log(f"  rep {rep + 1} {name} batch {batch_size}: {t:.3f} s"
                    f"  (other processes: {timed.loads[-1]:.2f} cores)")
                if timed.loads[-1] < CONTENDED:
                    break
    acc = {name: models[name].accuracy(xt, yt) for name in names}
    return {name: dict(summarize(times[name], loads[name]), test_accuracy=acc[name],
                       epochs_trained=1 + repeats, samples_per_epoch=len(x))
            for name in names}, models


def bench_predict(models, xt, batch_size, repeats):
    names = list(models)
    for name in names:
        models[name].predict(xt, batch_size)
    times = {name: [] for name in names}
    loads = {name: [] for name in names}
    for rep in range(repeats):
        for name in (names if rep % 2 == 0 else names[::-1]):
            times[name].append(timed(lambda: models[name].predict(xt, batch_size),
                                     WAIT_QUIET / 5))
            loads[name].append(timed.loads[-1])
    out = {name: summarize(times[name], loads[name]) for name in names}
    for r in out.values():
        r["samples_per_s"] = len(xt) / r["median_s"]
    return out


def bench_latency(models, xt, calls, block):
    """Median wall time of single (1, 784) predict calls, interleaved in blocks."""
    names = list(models)
    inputs = {}
    for name in names:
        x1 = np.ascontiguousarray(xt[:1])
        inputs[name] = models[name].as_input1(x1) if hasattr(models[name], "as_input1") else x1
        for _ in range(min(50, calls)):  # warm-up
            models[name].predict1(inputs[name])
    samples = {name: [] for name in names}
    clock = time.perf_counter_ns
    done = 0
    loads = []
    while done < calls:
        n = min(block, calls - done)
        if WAIT_QUIET > 0:
            _sysload.wait_quiet(WAIT_QUIET / 10)
        s0 = _sysload._snapshot()
        for name in names:
            f, x1, out = models[name].predict1, inputs[name], samples[name]
            for _ in range(n):
                t = clock()
                f(x1)
                out.append(clock() - t)
        loads.append(_sysload.foreign_cores(s0, _sysload._snapshot()))
        done += n
    res = {}
    for name in names:
        s = np.array(samples[name]) / 1000.0
        res[name] = {"median_us": float(np.median(s)), "p10_us": float(np.percentile(s, 10)),
                     "p90_us": float(np.percentile(s, 90)), "calls": len(s),
                     "foreign_cores_max": round(max(loads), 2)}
    return res


def bench_gemm_section(quick, log):
    try:
        import bench_gemm
    except ImportError as e:
        return None, f"skipped: bench/bench_gemm.py not importable ({e})"
    sizes = (128, 256, 512) if quick else (128, 256, 512, 1024, 2048)
    try:
        return bench_gemm.run(sizes=sizes, repeat=2 if quick else 5), None
    except Exception as e:  # report, never crash the whole run
        return None, f"failed: {type(e).__name__}: {e}"


# --------------------------------------------------------------------------------------------
def fmt_time(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def print_table(rows, with_keras):
    head = ["case", "shenjing", "pytorch"] + (["keras"] if with_keras else []) + \
        ["ratio torch/sj"] + (["ratio keras/sj"] if with_keras else [])
    lines = []
    for r in rows:
        cells = [r["case"], fmt_time(r.get("shenjing")), fmt_time(r.get("pytorch"))]
        if with_keras:
            cells.append(fmt_time(r.get("keras")))
        for other in ["pytorch"] + (["keras"] if with_keras else []):
            a, b = r.get(other), r.get("shenjing")
            cells.append(f"{a / b:.2f}x" if a and b else "-")
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        (str(c).ljust(w) if i == 0 else str(c).rjust(w)) for i, (c, w) in
        enumerate(zip(cells, widths)))
    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for cells in lines:
        print(fmt(cells))


def print_gemm(records):
    if not records:
        return
    keys = list(dict.fromkeys(k for r in records for k in r))
    widths = [max(len(k), *(len(_cell(r.get(k))) for r in records)) for k in keys]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths)))
    for r in records:
        print("  ".join(_cell(r.get(k)).rjust(w) for k, w in zip(keys, widths)))


def _cell(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


# --------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for every framework (default: all cores)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: a tenth of an epoch, fewer repeats (< 30 s)")
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"),
                    help="where to write the JSON record (default bench/results.json)")
    ap.add_argument("--repeats", type=int, default=None, help="timed epochs per framework")
    ap.add_argument("--wait-quiet", type=float, default=None, metavar="S",
                    help="before each timed repetition wait up to S seconds for other processes "
                         "to go idle (default 10, 0.5 with --quick; 0: never wait)")
    ap.add_argument("--retries", type=int, default=None,
                    help="re-run a training repetition up to this many extra times while other "
                         "processes disturb it (default 2, 0 with --quick)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-repetition log")
    args = ap.parse_args(argv)
    global WAIT_QUIET, RETRIES
    RETRIES = args.retries if args.retries is not None else (0 if args.quick else 2)
    WAIT_QUIET = args.wait_quiet if args.wait_quiet is not None else (0.5 if args.quick else 10.0)
    log = (lambda *a: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    t_start = time.perf_counter()

    import shenjing as sj
    import torch
    sj.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    sj.utils.set_random_seed(1234)
    torch.manual_seed(1234)

    fws = {"shenjing": frameworks.ShenjingMLP, "pytorch": frameworks.TorchMLP}
    have_keras, keras_info = frameworks.keras_available()
    if have_keras:
        fws["keras"] = frameworks.KerasMLP
    else:
        log(f"keras: skipped ({keras_info})")

    x, y, xt, yt = load_mnist()
    if args.quick:
        x, y = x[:6000], y[:6000]
    repeats = args.repeats or (2 if args.quick else 3)

    results = {"cases": {}, "notes": []}
    rows = []
    last_models = None
    for batch in (32, 128):
        log(f"MLP training epoch, batch {batch}:")
        res, models = bench_training(fws, x, y, xt, yt, batch, repeats, log)
        results["cases"][f"mlp_epoch_b{batch}"] = res
        rows.append({"case": f"MLP epoch b{batch} ({len(x)} samples, median of {repeats})",
                     **{n: r["median_s"] for n, r in res.items()}})
        last_models = models

    log("predict throughput, batch 256:")
    res = bench_predict(last_models, xt, 256, 3 if args.quick else 10)
    results["cases"]["predict_b256"] = res
    rows.append({"case": f"predict b256 ({len(xt)} samples)",
                 **{n: r["median_s"] for n, r in res.items()}})

    log("batch-1 predict latency:")
    calls = 300 if args.quick else 3000
    lat_models = {n: m for n, m in last_models.items() if n != "keras"}
    res = bench_latency(lat_models, xt, calls, block=100)
    if "keras" in last_models:  # Keras predict() is ~ms per call: fewer calls
        res.update(bench_latency({"keras": last_models["keras"]}, xt, min(calls, 200), 50))
    results["cases"]["predict_latency_b1"] = res
    rows.append({"case": f"predict latency b1 (median of {calls})",
                 **{n: r["median_us"] * 1e-6 for n, r in res.items()}})

    log("Keras MNIST CNN and conv2d (bench_conv):")
    import bench_conv
    conv = bench_conv.conv_layer(threads=args.threads, rounds=2 if args.quick else 3)
    cnn = bench_conv.mnist_cnn_epoch(n_train=5400 if args.quick else 54000,
                                     threads=args.threads, rounds=1 if args.quick else 2)
    cnn_pred = bench_conv.mnist_cnn_predict(threads=args.threads)
    results["cases"].update(conv2d=conv, cnn_epoch_b128=cnn, cnn_predict_b256=cnn_pred)
    rows.append({"case": f"CNN epoch b128 ({cnn['samples']} samples)",
                 "shenjing": cnn["sj_epoch_s"], "pytorch": cnn["th_epoch_s"]})
    rows.append({"case": "CNN predict b256 (10000 samples)",
                 "shenjing": 1e4 / cnn_pred["sj_images_per_s"],
                 "pytorch": 1e4 / cnn_pred["th_images_per_s"]})
    rows.append({"case": f"conv2d fwd+bwd {conv['shape']}",
                 "shenjing": conv["sj_train_ms"] / 1e3, "pytorch": conv["th_train_ms"] / 1e3})

    log("SGEMM vs numpy:")
    gemm, note = bench_gemm_section(args.quick, log)
    results["cases"]["sgemm"] = gemm
    if note:
        results["notes"].append(f"sgemm {note}")

    print()
    print(f"shenjing vs pytorch, {args.threads} threads, {cpu_model()}"
          f"{' (QUICK: not representative)' if args.quick else ''}")
    print_table(rows, have_keras)
    print("ratio = other framework's time / shenjing's time (> 1: shenjing faster)")
    print()
    print("test accuracy after the timed epochs (same initial weights):")
    for batch in (32, 128):
        res = results["cases"][f"mlp_epoch_b{batch}"]
        print(f"  batch {batch:3d}, {next(iter(res.values()))['epochs_trained']} epochs: " +
              ", ".join(f"{n} {r['test_accuracy'] * 100:.2f}%" for n, r in res.items()))
    print()
    print(f"conv2d {conv['shape']}: forward {conv['sj_fwd_gflops']:.0f} GFLOP/s "
          f"({100 * conv['sj_fwd_of_peak']:.0f}% of the ~{conv['fma_peak_gflops']:.0f} GFLOP/s "
          f"FMA peak), pytorch {conv['th_fwd_gflops']:.0f}; forward+backward "
          f"{conv['sj_train_gflops']:.0f} vs {conv['th_train_gflops']:.0f} GFLOP/s")
    print()
    if gemm:
        print("SGEMM (bench_gemm):")
        print_gemm(gemm)
    else:
        print(f"SGEMM: {note}")
    if not have_keras:
        results["notes"].append(f"keras skipped ({keras_info})")
    results["rows"] = [{**r, **{f"ratio_{o}": (r[o] / r["shenjing"]) for o in ("pytorch", "keras")
                                if r.get(o) and r.get("shenjing")}} for r in rows]
    results["machine"] = {
        "shenjing": sj.config(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "threads": args.threads,
        "keras": keras_info if have_keras else None, "numpy": np.__version__,
        "python": platform.python_version(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "platform": platform.platform(),
    }
    contended = [f"{case}/{n}" for case, res in results["cases"].items() if isinstance(res, dict)
                 for n, r in res.items() if isinstance(r, dict) and "clean_repeats" in r
                 and r["clean_repeats"] < len(r["times_s"])]
    if contended:
        msg = (f"other processes used > {CONTENDED} cores during some repetitions of "
               f"{', '.join(contended)}; medians use the clean ones where any exist (see "
               "foreign_cores in the JSON)")
        results["notes"].append(msg)
        print(f"\nWARNING: {msg}")
    results["settings"] = {"quick": args.quick, "wait_quiet_s": WAIT_QUIET, "retries": RETRIES, "repeats": repeats,
                           "train_samples": len(x),
                           "latency_calls": calls,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "wall_s": round(time.perf_counter() - t_start, 2)}
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nJSON record: {args.json}  (total {results['settings']['wall_s']} s)")
    return results


if __name__ == "__main__":
    main()
