"""Embedding training steps: Embedding(100000, 128) -> GlobalAveragePooling1D -> Dense(1,
sigmoid), binary cross-entropy, batches of 64 x 200 ids; milliseconds per train step, shenjing
fit() against a PyTorch loop on the same threads, one process, alternating.

    python bench/bench_embedding.py [--threads N] [--quick] [--json PATH]

With SGD shenjing's step touches only the table rows the batch uses (sparse gradient and
update); PyTorch is timed with a dense gradient (nn.Embedding) and with sparse=True. With Adam
both update the whole table every step (Keras's and torch's dense semantics).
ratio = shenjing time / PyTorch time (below 1: shenjing is faster).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_conv  # noqa: E402
import shenjing  # noqa: E402
from shenjing import layers  # noqa: E402

VOCAB, DIM, BATCH, LENGTH = 100000, 128, 64, 200
LR = 0.01


def shenjing_model(optimizer, table, kernel, bias):
    model = shenjing.Sequential([layers.Input((LENGTH,), dtype="int32"),
                                 layers.Embedding(VOCAB, DIM, weights=table),
                                 layers.GlobalAveragePooling1D(),
                                 layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizer, loss="binary_crossentropy")
    model.layers[-1].set_weights([kernel, bias])
    return model


def torch_step_fn(torch, optimizer, sparse, table, kernel, bias, x, y):
    """A closure running one epoch of len(x) // BATCH steps (no shuffling, as fit below)."""
    nn = torch.nn
    emb = nn.Embedding(VOCAB, DIM, sparse=sparse)
    fc = nn.Linear(DIM, 1)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(table))
        fc.weight.copy_(torch.tensor(kernel.T))
        fc.bias.copy_(torch.tensor(bias))
    params = list(emb.parameters()) + list(fc.parameters())
    opt = (torch.optim.SGD(params, lr=LR) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=1e-3, eps=1e-7))
    loss_fn = nn.BCEWithLogitsLoss()  # the fused sigmoid + cross-entropy shenjing runs too
    xt, yt = torch.tensor(x, dtype=torch.long), torch.tensor(y)

    def epoch():
        for i in range(0, len(x), BATCH):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(fc(emb(xt[i:i + BATCH]).mean(dim=1)), yt[i:i + BATCH])
            loss.backward()
            opt.step()
    return epoch


def run(threads, steps, rounds):
    torch = bench_conv._torch(threads)
    shenjing.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (steps * BATCH, LENGTH)).astype(np.int32)
    y = rng.integers(0, 2, (steps * BATCH, 1)).astype(np.float32)
    table = rng.uniform(-0.05, 0.05, (VOCAB, DIM)).astype(np.float32)
    kernel = rng.normal(0, 0.1, (DIM, 1)).astype(np.float32)
    bias = np.zeros(1, np.float32)
    out = {"threads": threads, "steps": steps, "vocab": VOCAB, "dim": DIM, "batch": BATCH,
           "length": LENGTH}
    for opt in ("sgd", "adam"):
        ours = shenjing_model(shenjing.optimizers.SGD(LR) if opt == "sgd"
                              else shenjing.optimizers.Adam(1e-3), table, kernel, bias)
        fns = {"shenjing": lambda: ours.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False,
                                            verbose=0),
               "pytorch": torch_step_fn(torch, opt, False, table, kernel, bias, x, y)}
        if opt == "sgd":
            fns["pytorch_sparse"] = torch_step_fn(torch, opt, True, table, kernel, bias, x, y)
        for fn in fns.values():
            fn()  # warm-up: allocations, optimizer state
        r = bench_conv._alternate(fns, rounds, 1)
        ms = {k: v[0] / steps * 1e3 for k, v in r.items()}
        out[opt] = {k: {"ms_per_step": ms[k], "foreign_cores": r[k][1],
                        "shenjing_ratio": ms["shenjing"] / ms[k]} for k in ms}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    steps, rounds = (10, 2) if a.quick else (40, 3)
    res = run(a.threads, steps, rounds)
    print(f"Embedding({VOCAB}, {DIM}) -> GAP -> Dense(1), batch {BATCH} x {LENGTH} ids, "
          f"{a.threads} threads, ms per train step:")
    for opt in ("sgd", "adam"):
        r = res[opt]
        line = f"  {opt:5s} shenjing {r['shenjing']['ms_per_step']:7.2f}"
        for k in r:
            if k != "shenjing":
                line += (f"  {k} {r[k]['ms_per_step']:7.2f} (shenjing x"
                         f"{r[k]['shenjing_ratio']:.2f})")
        print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
