"""Recurrent layers against PyTorch's CPU nn.LSTM / nn.GRU, one process, alternating, same
threads and the same weights (through the documented mapping):

- LSTM(128) and GRU(128) on MNIST rows as time steps (batch 64, 28 steps, 28 features)
  -> Dense(10) softmax, Adam, sparse categorical cross-entropy: seconds per training epoch
  and predict throughput (batch 256).
- Embedding(20000, 128) -> LSTM(64) -> Dense(1) sigmoid on 200-step id sequences (batch 64,
  Adam, binary cross-entropy): the same two figures.

    python bench/bench_rnn.py [--threads N] [--quick] [--json PATH]

ratio = pytorch_time / shenjing_time (above 1: shenjing is faster; issue 11 aims at 3 for
training and 2 for inference at 2 threads).
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
import shenjing  # noqa: E402
from shenjing import layers  # noqa: E402

UNITS, BATCH, LR = 128, 64, 1e-3


def torch_gate_order(cell, a, axis):
    """Keras gate blocks -> PyTorch's: LSTM (i, f, c, o) is torch's (i, f, g, o); GRU
    (z, r, h) is torch's (r, z, n)."""
    if cell == "lstm":
        return a
    z, r, h = np.split(a, 3, axis=axis)
    return np.concatenate([r, z, h], axis=axis)


def torch_model(torch, cell, weights):
    """nn.LSTM/GRU + Linear holding `weights` (the shenjing model's get_weights())."""
    nn = torch.nn
    rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn_cls(28, UNITS, batch_first=True)
            self.fc = nn.Linear(UNITS, 10)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])

    net = Net()
    kernel, rec, bias, dense_w, dense_b = weights
    with torch.no_grad():
        net.rnn.weight_ih_l0.copy_(torch.tensor(torch_gate_order(cell, kernel, 1).T))
        net.rnn.weight_hh_l0.copy_(torch.tensor(torch_gate_order(cell, rec, 1).T))
        if cell == "lstm":  # torch adds two biases; Keras has one
            net.rnn.bias_ih_l0.copy_(torch.tensor(bias))
            net.rnn.bias_hh_l0.zero_()
        else:
            net.rnn.bias_ih_l0.copy_(torch.tensor(torch_gate_order(cell, bias[0], 0)))
            net.rnn.bias_hh_l0.copy_(torch.tensor(torch_gate_order(cell, bias[1], 0)))
        net.fc.weight.copy_(torch.tensor(dense_w.T))
        net.fc.bias.copy_(torch.tensor(dense_b))
    return net


def shenjing_model(cell):
    rnn = layers.LSTM(UNITS) if cell == "lstm" else layers.GRU(UNITS)
    model = shenjing.Sequential([layers.Input((28, 28)), rnn,
                                 layers.Dense(10, activation="softmax")])
    model.compile(optimizer=shenjing.optimizers.Adam(LR),
                  loss="sparse_categorical_crossentropy")
    return model


def embedding_lstm(torch, threads, n, rounds):
    """Embedding(20000, 128) -> LSTM(64) -> Dense(1, sigmoid), 200-step id sequences."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20000, (n, 200)).astype(np.int32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    sj = shenjing.Sequential([layers.Input((200,), dtype="int32"), layers.Embedding(20000, 128),
                              layers.LSTM(64), layers.Dense(1, activation="sigmoid")])
    sj.compile(optimizer=shenjing.optimizers.Adam(LR), loss="binary_crossentropy")
    table, kernel, rec, bias, dense_w, dense_b = sj.get_weights()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20000, 128)
            self.rnn = nn.LSTM(128, 64, batch_first=True)
            self.fc = nn.Linear(64, 1)

        def forward(self, ids):
            out, _ = self.rnn(self.emb(ids))
            return self.fc(out[:, -1])

    th = Net()
    with torch.no_grad():
        th.emb.weight.copy_(torch.tensor(table))
        th.rnn.weight_ih_l0.copy_(torch.tensor(kernel.T))
        th.rnn.weight_hh_l0.copy_(torch.tensor(rec.T))
        th.rnn.bias_ih_l0.copy_(torch.tensor(bias))
        th.rnn.bias_hh_l0.zero_()
        th.fc.weight.copy_(torch.tensor(dense_w.T))
        th.fc.bias.copy_(torch.tensor(dense_b))
    opt = torch.optim.Adam(th.parameters(), lr=LR)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    xt, yt = torch.tensor(x.astype(np.int64)), torch.tensor(y)

    def torch_epoch():
        th.train()
        perm = torch.randperm(n)
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss_fn(th(xt[idx])[:, 0], yt[idx]).backward()
            opt.step()

    def torch_predict():
        th.eval()
        with torch.no_grad():
            for i in range(0, n, 256):
                torch.sigmoid(th(xt[i:i + 256]))

    fit = {"shenjing": lambda: sj.fit(x, y, batch_size=BATCH, epochs=1, verbose=0),
           "pytorch": torch_epoch}
    pred = {"shenjing": lambda: sj.predict(x, batch_size=256, verbose=0),
            "pytorch": torch_predict}
    for fn in list(fit.values()) + list(pred.values()):
        fn()
    r = bench_conv._alternate(fit, rounds, 1)
    p = bench_conv._alternate(pred, rounds, 2)
    return {"fit_epoch_s": {k: v[0] for k, v in r.items()},
            "fit_ratio": r["pytorch"][0] / r["shenjing"][0],
            "predict_samples_per_s": {k: n / v[0] for k, v in p.items()},
            "predict_ratio": p["pytorch"][0] / p["shenjing"][0],
            "foreign_cores": max(v[1] for v in list(r.values()) + list(p.values()))}


def run(threads, n, rounds):
    torch = bench_conv._torch(threads)
    shenjing.set_num_threads(threads)
    (x, y), _ = shenjing.datasets.mnist.load_data()
    x = (x[:n] / 255).astype(np.float32)
    y = y[:n].astype(np.int64)
    xt, yt = torch.tensor(x), torch.tensor(y)
    out = {"threads": threads, "samples": n, "batch": BATCH, "units": UNITS}
    for cell in ("lstm", "gru"):
        sj = shenjing_model(cell)
        th = torch_model(torch, cell, sj.get_weights())
        opt = torch.optim.Adam(th.parameters(), lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()

        def torch_epoch():
            th.train()
            perm = torch.randperm(n)
            for i in range(0, n, BATCH):
                idx = perm[i:i + BATCH]
                opt.zero_grad()
                loss_fn(th(xt[idx]), yt[idx]).backward()
                opt.step()

        def torch_predict():
            th.eval()
            with torch.no_grad():
                for i in range(0, n, 256):
                    th(xt[i:i + 256])

        fit = {"shenjing": lambda: sj.fit(x, y, batch_size=BATCH, epochs=1, verbose=0),
               "pytorch": torch_epoch}
        pred = {"shenjing": lambda: sj.predict(x, batch_size=256, verbose=0),
                "pytorch": torch_predict}
        for fn in list(fit.values()) + list(pred.values()):
            fn()  # warm-up
        r = bench_conv._alternate(fit, rounds, 1)
        p = bench_conv._alternate(pred, rounds, 2)
        out[cell] = {
            "fit_epoch_s": {k: v[0] for k, v in r.items()},
            "fit_ratio": r["pytorch"][0] / r["shenjing"][0],
            "predict_samples_per_s": {k: n / v[0] for k, v in p.items()},
            "predict_ratio": p["pytorch"][0] / p["shenjing"][0],
            "foreign_cores": max(v[1] for v in list(r.values()) + list(p.values())),
        }
    out["embedding_lstm"] = embedding_lstm(torch, threads, max(n // 4, 640), rounds)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    n, rounds = (6400, 2) if a.quick else (60000, 2)
    res = run(a.threads, n, rounds)
    for cell in ("lstm", "gru", "embedding_lstm"):
        r = res[cell]
        f, p = r["fit_epoch_s"], r["predict_samples_per_s"]
        name = "Embedding(20000,128)+LSTM(64), 200 steps," if cell == "embedding_lstm" else \
            f"{cell.upper()}({UNITS})"
        print(f"{name} {a.threads} threads: fit epoch shenjing "
              f"{f['shenjing']:.2f}s pytorch {f['pytorch']:.2f}s (x{r['fit_ratio']:.2f}); "
              f"predict {p['shenjing']:.0f} vs {p['pytorch']:.0f} samples/s "
              f"(x{r['predict_ratio']:.2f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
