"""dropout and recurrent_dropout of SimpleRNN, LSTM and GRU against Keras 3.15's cells.

A training call is checked exactly (output and every gradient) against Keras's cells written
step by step in float64 torch, fed the masks the core drew: test_recurrent_dropout.core_masks
rebuilds them from the documented stream. Keras itself, when SHENJING_KERAS_PYTHON names an
interpreter with it: the same inference output for the same weights, and in training the same
distribution of outputs."""
import json

import numpy as np
import pytest

from shenjing import _core

from test_recurrent_dropout import GATES, core_masks

def keras_dropout_rnn(cell, x, W, U, b, u, ins, recs, mask=None, return_sequences=True,
                      go_backwards=False, reset_after=True):
    """Keras 3.15's cells in training (simple_rnn.py, lstm.py, gru.py: implementation 2 with
    one input mask when recurrent_dropout is 0, else implementation 1 with a mask per gate),
    run by rnn() with an optional Keras mask (a masked step keeps the state and repeats the
    previous output). Float64 torch; ins / recs are torch tensors."""
    import torch
    n, T, _ = x.shape
    h = torch.zeros(n, u, dtype=x.dtype)
    c = torch.zeros(n, u, dtype=x.dtype)
    G = GATES[cell]
    Ws, Us = W.split(u, 1), U.split(u, 1)

    def xg(xs, g):  # the input gate g reads
        return xs * (ins[g] if len(ins) > 1 else ins[0]) if ins else xs

    def hg(g):
        return h * recs[g] if recs else h

    outs, prev = [], torch.zeros(n, u, dtype=x.dtype)
    for t in (range(T - 1, -1, -1) if go_backwards else range(T)):
        xs = x[:, t]
        if cell == "SimpleRNN":
            hn = torch.tanh(xg(xs, 0) @ W + (b if b is not None else 0) + hg(0) @ U)
            cn = c
        elif cell == "LSTM":
            bs = b.split(u) if b is not None else [0] * 4
            z = [xg(xs, g) @ Ws[g] + bs[g] + hg(g) @ Us[g] for g in range(G)]
            i, f, o = torch.sigmoid(z[0]), torch.sigmoid(z[1]), torch.sigmoid(z[3])
            cn = f * c + i * torch.tanh(z[2])
            hn = o * torch.tanh(cn)
        else:
            if b is None:
                bi, br = [0] * 3, [0] * 3
            elif reset_after:
                bi, br = b[0].split(u), b[1].split(u)
            else:
                bi, br = b.split(u), [0] * 3
            xz = [xg(xs, g) @ Ws[g] + bi[g] for g in range(G)]
            z = torch.sigmoid(xz[0] + hg(0) @ Us[0] + br[0])
            r = torch.sigmoid(xz[1] + hg(1) @ Us[1] + br[1])
            if reset_after:
                hh = torch.tanh(xz[2] + r * (hg(2) @ Us[2] + br[2]))
            else:
                hh = torch.tanh(xz[2] + (r * hg(2)) @ Us[2])
            hn = z * h + (1 - z) * hh
            cn = c
        if mask is not None:
            m = mask[:, t:t + 1] > 0
            h, c = torch.where(m, hn, h), torch.where(m, cn, c)
            prev = torch.where(m, hn, prev)
        else:
            h, c, prev = hn, cn, hn
        outs.append(prev)
    return torch.stack(outs, 1) if return_sequences else outs[-1]


def _weights(rng, cell, F, u, use_bias=True, reset_after=True):
    G = GATES[cell]
    W = rng.normal(0, 0.5, (F, G * u))
    U = rng.normal(0, 0.8 / np.sqrt(u), (u, G * u))
    if not use_bias:
        return [W, U]
    two = cell == "GRU" and reset_after
    return [W, U, rng.normal(0, 0.5, (2, G * u) if two else (G * u,))]


# cell, dropout, recurrent_dropout, extra config
EXACT = [
    ("SimpleRNN", 0.3, 0.0, {}),
    ("SimpleRNN", 0.0, 0.4, {"go_backwards": True}),
    ("SimpleRNN", 0.25, 0.5, {"use_bias": False}),
    ("LSTM", 0.3, 0.0, {}),
    ("LSTM", 0.0, 0.4, {}),
    ("LSTM", 0.35, 0.45, {"go_backwards": True}),
    ("LSTM", 0.2, 0.3, {"use_bias": False, "return_sequences": False}),
    ("GRU", 0.3, 0.0, {}),
    ("GRU", 0.0, 0.4, {}),
    ("GRU", 0.35, 0.45, {"go_backwards": True}),
    ("GRU", 0.3, 0.0, {"reset_after": False}),
    ("GRU", 0.35, 0.45, {"reset_after": False}),
    ("GRU", 0.2, 0.3, {"reset_after": False, "use_bias": False, "return_sequences": False}),
]


def _exact_case(case, masked):
    torch = pytest.importorskip("torch")
    cell, rate, rec_rate, extra = case
    n, T, F, u = 5, 6, 3, 4
    seed = 12345 + 7 * len(extra) + int(100 * rate + 10 * rec_rate)
    rng = np.random.default_rng(seed)
    cfg = {"units": u, "return_sequences": True, "dropout": rate,
           "recurrent_dropout": rec_rate, "seed": seed, **extra}
    params = _weights(rng, cell, F, u, cfg.get("use_bias", True), cfg.get("reset_after", True))
    x = rng.normal(size=(n, T, F))
    mask = None
    if masked:
        mask = (rng.random((n, T)) > 0.35).astype(np.float64)
        mask[0] = 0
        mask[1, -1] = 0
    ins, recs = core_masks(cell, seed, n, F, u, rate, rec_rate)
    assert ins or recs
    xt = torch.tensor(x, requires_grad=True)
    pt = [torch.tensor(p, requires_grad=True) for p in params]
    y = keras_dropout_rnn(cell, xt, pt[0], pt[1], pt[2] if len(pt) == 3 else None, u,
                          [torch.tensor(m, dtype=torch.float64) for m in ins],
                          [torch.tensor(m, dtype=torch.float64) for m in recs],
                          None if mask is None else torch.tensor(mask),
                          cfg["return_sequences"], cfg.get("go_backwards", False),
                          cfg.get("reset_after", True))
    dy = rng.normal(size=tuple(y.shape))
    (y * torch.tensor(dy)).sum().backward()
    shapes, xs = [[T, F]], [x.astype(np.float32)]
    if masked:
        shapes.append([T])
        xs.append(mask.astype(np.float32))
    got, dxs, grads = _core._run_layer(json.dumps({"class_name": cell, "config": cfg}), shapes,
                                       xs, dy.astype(np.float32), True,
                                       [p.astype(np.float32) for p in params])
    np.testing.assert_allclose(got, y.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dxs[0], xt.grad.numpy(), rtol=1e-5, atol=1e-4)
    for g, p, name in zip(grads, pt, ("kernel", "recurrent_kernel", "bias")):
        scale = np.abs(p.grad.numpy()).max()
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-5 * scale,
                                   err_msg=name)
    # Dropout really acted: the same call at inference differs.
    plain, _, _ = _core._run_layer(json.dumps({"class_name": cell, "config": cfg}), shapes, xs,
                                   None, False, [p.astype(np.float32) for p in params])
    assert not np.allclose(plain, got)


@pytest.mark.parametrize("case", EXACT, ids=lambda c: f"{c[0]}-d{c[1]}-r{c[2]}-{len(c[3])}")
def test_training_call_matches_keras_cells_with_the_core_masks(case):
    _exact_case(case, masked=False)


@pytest.mark.parametrize("case", [EXACT[1], EXACT[5], EXACT[9], EXACT[11]],
                         ids=lambda c: f"{c[0]}-{len(c[3])}")
def test_keras_masks_with_dropout(case):
    _exact_case(case, masked=True)


# Keras 3.15 itself, when an interpreter with it is named (it is no dependency of shenjing):
# SHENJING_KERAS_PYTHON=/path/to/python with keras and torch installed.
_KERAS_SCRIPT = r"""
import json, sys
import numpy as np
import keras
data = np.load(sys.argv[1])
cfg = json.loads(str(data["cfg"]))
layer = getattr(keras.layers, cfg.pop("class_name"))(**cfg)
x = data["x"]
layer.build(x.shape)
layer.set_weights([data[f"w{i}"] for i in range(int(data["count"]))])
def run(v, training):
    out = layer(v, training=training)
    return np.asarray(out.detach().cpu() if hasattr(out, "detach") else out)
np.savez(sys.argv[2], infer=run(x, False), train=run(data["xrep"], True))
"""


def _keras_outputs(tmp_path, cfg, x, xrep, weights):
    import os
    import subprocess
    python = os.environ.get("SHENJING_KERAS_PYTHON")
    if not python:
        pytest.skip("set SHENJING_KERAS_PYTHON to an interpreter with Keras 3 to compare")
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(inp, cfg=json.dumps(cfg), x=x, xrep=xrep, count=len(weights),
             **{f"w{i}": w for i, w in enumerate(weights)})
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")}
    subprocess.run([python, "-c", _KERAS_SCRIPT, str(inp), str(out)], check=True, env=env,
                   capture_output=True)
    with np.load(out) as r:
        return r["infer"], r["train"]


@pytest.mark.parametrize("cell,extra", [
    ("SimpleRNN", {"dropout": 0.3, "recurrent_dropout": 0.4}),
    ("LSTM", {"dropout": 0.4}),
    ("LSTM", {"dropout": 0.3, "recurrent_dropout": 0.5}),
    ("GRU", {"recurrent_dropout": 0.5}),
    ("GRU", {"dropout": 0.3, "recurrent_dropout": 0.5, "reset_after": False}),
])
def test_matches_keras_at_inference_and_in_distribution_in_training(tmp_path, cell, extra):
    """The same weights in Keras 3.15: the same inference output, and in training the same
    distribution of outputs (mean and spread of each output over 4000 draws of the masks,
    one sequence repeated down the batch; per-gate masks spread the outputs differently
    from one shared mask, so the spread checks which gate reads which mask)."""
    n, T, F, u, reps = 3, 5, 3, 3, 4000
    rng = np.random.default_rng(11)
    cfg = {"units": u, "return_sequences": True, **extra}
    weights = [w.astype(np.float32) for w in _weights(rng, cell, F, u, True,
                                                       cfg.get("reset_after", True))]
    x = rng.normal(size=(n, T, F)).astype(np.float32)
    xrep = np.repeat(x, reps, axis=0)
    k_infer, k_train = _keras_outputs(tmp_path, {"class_name": cell, **cfg}, x, xrep, weights)
    spec = json.dumps({"class_name": cell, "config": {**cfg, "seed": 5}})
    infer, _, _ = _core._run_layer(spec, [[T, F]], [x], None, False, weights)
    np.testing.assert_allclose(infer, k_infer, rtol=1e-5, atol=1e-6)
    train, _, _ = _core._run_layer(spec, [[T, F]], [xrep], None, True, weights)
    a = train.reshape(n, reps, T, u)
    b = k_train.reshape(n, reps, T, u)
    mean_a, mean_b = a.mean(1), b.mean(1)
    std_a, std_b = a.std(1), b.std(1)
    se = np.sqrt((std_a ** 2 + std_b ** 2) / reps)
    assert (np.abs(mean_a - mean_b) < 5 * se + 1e-4).all(), np.abs(mean_a - mean_b).max()
    np.testing.assert_allclose(std_a, std_b, rtol=0.1, atol=2e-3)
    assert std_a.mean() > 0.01  # dropout acted
