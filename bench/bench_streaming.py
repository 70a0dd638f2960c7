"""Streaming from disk: how much of a PyDataset's batch preparation hides behind training.

A data set on disk (a float32 memmap, bigger than what one epoch keeps around) is read by a
PyDataset whose ``__getitem__`` reads its rows, waits ``--io-ms`` (a slow disk or network; by
default what makes preparing a batch take about as long as training on it) and does some NumPy
work on them (normalisation and a random flip, as augmentation would). The
model is an MLP trained with Adam, one ``core.train_step`` per batch (GIL released).

Measured, each as the best of ``--repeat`` rounds (minimum: the machine may be shared):
- train only: the same batches already in memory (workers=0, no preparation);
- data only: calling ``__getitem__`` for every batch, no training;
- fit epochs with workers=0 (everything in turn, no overlap), workers=1, 2, 4 (threads)
  and use_multiprocessing with 2 workers.
With full overlap an epoch takes max(train, data / workers) instead of train + data.

    python bench/bench_streaming.py [--batches 40] [--io-ms MS] [--repeat 5] [--threads 1]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import shenjing as keras  # noqa: E402
from shenjing import layers  # noqa: E402

FEATURES, CLASSES, BATCH = 512, 10, 256


class DiskBatches(keras.utils.PyDataset):
    def __init__(self, path, n, io_s, **kwargs):
        super().__init__(**kwargs)
        self.path, self.n, self.io_s = path, n, io_s
        self.x = np.memmap(path, dtype=np.float32, mode="r", shape=(n * BATCH, FEATURES))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        rows = np.array(self.x[i * BATCH:(i + 1) * BATCH])  # read from disk
        time.sleep(self.io_s)  # a slow disk or network
        rows -= rows.mean(axis=1, keepdims=True)  # per-sample normalisation
        rows /= rows.std(axis=1, keepdims=True) + 1e-6
        if i % 2:
            rows = rows[:, ::-1].copy()  # augmentation: a flip
        y = (np.abs(rows[:, :CLASSES]).argmax(axis=1)).astype(np.int32)
        return rows, y


class InMemory(keras.utils.PyDataset):
    def __init__(self, batches):
        super().__init__(workers=0)
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((FEATURES,)), layers.Dense(1024, activation="relu"),
                          layers.Dense(512, activation="relu"), layers.Dense(CLASSES)])
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


def epoch_time(m, data):
    t = time.perf_counter()
    m.fit(data, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - t


def data_time(src):
    t = time.perf_counter()
    for i in range(len(src)):
        src[i]
    return time.perf_counter() - t


CONFIGS = (("workers=0 (no overlap)", dict(workers=0)), ("workers=1", dict(workers=1)),
           ("workers=2", dict(workers=2)), ("workers=4", dict(workers=4)),
           ("workers=2, use_multiprocessing", dict(workers=2, use_multiprocessing=True)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--io-ms", type=float, default=None,
                    help="sleep per batch; default: what makes a batch's preparation take "
                         "about as long as its training step")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="the core's kernel threads")
    args = ap.parse_args()
    keras.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.f32")
        rng = np.random.default_rng(0)
        x = np.memmap(path, dtype=np.float32, mode="w+", shape=(args.batches * BATCH, FEATURES))
        for i in range(args.batches):
            x[i * BATCH:(i + 1) * BATCH] = rng.normal(size=(BATCH, FEATURES))
        x.flush()
        del x
        m = model()
        batches = [DiskBatches(path, args.batches, 0.0, workers=0)[i]
                   for i in range(args.batches)]
        m.fit(InMemory(batches), epochs=1, verbose=0)  # warm-up
        train_s = min(epoch_time(m, InMemory(batches)) for _ in range(3))
        io_ms = args.io_ms
        if io_ms is None:  # preparation about as long as training
            compute_s = min(data_time(DiskBatches(path, args.batches, 0.0)) for _ in range(3))
            io_ms = max(0.0, (train_s - compute_s) / args.batches * 1e3)
        src = DiskBatches(path, args.batches, io_ms / 1e3, workers=0)
        # Rounds over every configuration, best of each: on a shared machine the load drifts,
        # and alternating keeps it from favouring one configuration.
        best = {"train": train_s, "data": data_time(src)}
        for _ in range(args.repeat):
            best["train"] = min(best["train"], epoch_time(m, InMemory(batches)))
            best["data"] = min(best["data"], data_time(src))
            for label, kw in CONFIGS:
                s = epoch_time(m, DiskBatches(path, args.batches, io_ms / 1e3, **kw))
                best[label] = min(best.get(label, s), s)
        train_s, data_s = best["train"], best["data"]
        print(f"{args.batches} batches of {BATCH}x{FEATURES}, io {io_ms:.1f} ms/batch, "
              f"{args.threads} core thread(s), best of {args.repeat} rounds")
        print(f"  train only (batches in memory)          {train_s:7.3f} s")
        print(f"  data only (__getitem__ in turn)         {data_s:7.3f} s")
        print(f"  sum of both                             {train_s + data_s:7.3f} s")
        for label, _ in CONFIGS:
            s = best[label]
            hidden = (train_s + data_s - s) / data_s * 100
            print(f"  fit epoch, {label:29s}{s:7.3f} s  ({hidden:5.1f}% of the data time "
                  f"hidden)")


if __name__ == "__main__":
    main()
