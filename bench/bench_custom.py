"""Traced custom layers: the MNIST MLP (784-128 relu-10, Adam, sparse CE) built from a custom
``Linear`` layer (``ops.matmul(x, w) + b``, ``ops.relu``: traced into primitive ops) against
the same MLP of ``Dense`` layers and against PyTorch, one process, alternating.

    python bench/bench_custom.py [--threads N] [--quick] [--json PATH]

ratio = time / dense_time (issue 10's aim: custom within 1.3x of Dense).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("SHENJING_DATA", os.path.join(HERE, "..", "..", "shared", "data"))

import bench_conv  # noqa: E402
import frameworks  # noqa: E402
import shenjing  # noqa: E402
from shenjing import layers, ops  # noqa: E402


class Linear(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units))
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, x):
        return ops.matmul(x, self.w) + self.b


def custom_mlp(weights):
    inp = shenjing.Input((784,))
    h = ops.relu(Linear(frameworks.HIDDEN)(inp))
    out = ops.softmax(Linear(frameworks.CLASSES)(h))
    model = shenjing.Model(inp, out)
    model.compile(optimizer=shenjing.optimizers.Adam(frameworks.LR),
                  loss="sparse_categorical_crossentropy")
    model.set_weights(weights)
    return model


def run(threads, n, rounds, batches):
    shenjing.set_num_threads(threads)
    (x, y), _ = shenjing.datasets.mnist.load_data()
    x = (x[:n].reshape(n, -1) / 255).astype(np.float32)
    y = y[:n].astype(np.int64)
    dense = frameworks.ShenjingMLP()
    custom = custom_mlp(dense.get_weights())
    torch_mlp = frameworks.TorchMLP(dense.get_weights())
    bench_conv._torch(threads)
    torch_mlp.prepare(x, y)
    out = {"threads": threads, "samples": n}
    for bs in batches:
        fns = {"dense": lambda: dense.train_epoch(x, y, bs),
               "custom": lambda: custom.fit(x, y, batch_size=bs, epochs=1, verbose=0),
               "pytorch": lambda: torch_mlp.train_epoch(x, y, bs)}
        for fn in fns.values():
            fn()  # warm-up
        r = bench_conv._alternate(fns, rounds, 1)
        out[f"b{bs}"] = {k: {"epoch_s": v[0], "ratio_to_dense": v[0] / r["dense"][0],
                             "foreign_cores": v[1]} for k, v in r.items()}
    # Inference, batch 256.
    fns = {"dense": lambda: dense.predict(x, 256),
           "custom": lambda: custom.predict(x, batch_size=256, verbose=0),
           "pytorch": lambda: torch_mlp.predict(x, 256)}
    r = bench_conv._alternate(fns, rounds, 3)
    out["predict_b256"] = {k: {"s": v[0], "ratio_to_dense": v[0] / r["dense"][0]}
                           for k, v in r.items()}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    n, rounds = (12000, 3) if a.quick else (60000, 3)
    res = run(a.threads, n, rounds, (32, 128))
    for key in ("b32", "b128"):
        r = res[key]
        print(f"fit {key}: dense {r['dense']['epoch_s']:.3f}s  custom {r['custom']['epoch_s']:.3f}s"
              f" (x{r['custom']['ratio_to_dense']:.2f})  pytorch {r['pytorch']['epoch_s']:.3f}s"
              f" (x{r['pytorch']['ratio_to_dense']:.2f})")
    p = res["predict_b256"]
    print(f"predict b256: dense {p['dense']['s'] * 1e3:.1f}ms  custom x{p['custom']['ratio_to_dense']:.2f}"
          f"  pytorch x{p['pytorch']['ratio_to_dense']:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
