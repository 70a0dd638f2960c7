"""SimpleRNN, LSTM and GRU: outputs, input gradients and weight gradients against PyTorch
(nn.LSTM / nn.GRU / nn.RNN through the documented weight mapping, and Keras's formulas
written step by step in torch for what nn.* does not have: go_backwards, reset_after=False,
other activations), one SGD step, finite differences, configs, errors and files."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers

from test_gradients import finite_difference_check

RTOL = 1e-5


def _torch():
    """torch for the parity tests only: the rest of this file also runs in the sanitizer
    build, without torch."""
    return pytest.importorskip("torch")


def keras_rnn(cell, x, W, U, b, units, return_sequences=False, go_backwards=False,
              reset_after=True, act="tanh", rec="sigmoid"):
    """Keras 3's cells (keras/src/layers/rnn/{simple_rnn,lstm,gru}.py), step by step, in
    float64 torch. Returns the layer's output."""
    torch = _torch()
    acts = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
            "linear": lambda v: v}
    a, r_ = acts[act], acts[rec]
    n, T, _ = x.shape
    u = units
    h = torch.zeros(n, u, dtype=x.dtype)
    c = torch.zeros(n, u, dtype=x.dtype)
    outs = []
    for t in (range(T - 1, -1, -1) if go_backwards else range(T)):
        xs = x[:, t]
        if cell == "LSTM":
            z = xs @ W + h @ U + (b if b is not None else 0)
            i, f, g, o = z.split(u, 1)
            c = r_(f) * c + r_(i) * a(g)
            h = r_(o) * a(c)
        elif cell == "GRU":
            if reset_after:
                xz = xs @ W + (b[0] if b is not None else 0)
                rz = h @ U + (b[1] if b is not None else 0)
                z = r_(xz[:, :u] + rz[:, :u])
                r = r_(xz[:, u:2 * u] + rz[:, u:2 * u])
                hh = a(xz[:, 2 * u:] + r * rz[:, 2 * u:])
            else:
                xz = xs @ W + (b if b is not None else 0)
                z = r_(xz[:, :u] + h @ U[:, :u])
                r = r_(xz[:, u:2 * u] + h @ U[:, u:2 * u])
                hh = a(xz[:, 2 * u:] + (r * h) @ U[:, 2 * u:])
            h = z * h + (1 - z) * hh
        else:
            h = a(xs @ W + h @ U + (b if b is not None else 0))
        outs.append(h)
    return torch.stack(outs, 1) if return_sequences else h


GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
CASES = [
    # cell, n, T, F, units, return_sequences, go_backwards, extra config
    ("LSTM", 5, 7, 3, 4, False, False, {}),
    ("LSTM", 3, 6, 5, 17, True, False, {}),
    ("LSTM", 4, 5, 2, 8, True, True, {}),
    ("LSTM", 2, 1, 3, 3, False, True, {}),
    ("LSTM", 3, 4, 3, 5, True, False, {"activation": "relu", "recurrent_activation": "tanh"}),
    ("LSTM", 2, 4, 3, 4, False, False, {"use_bias": False}),
    ("GRU", 5, 7, 3, 4, False, False, {}),
    ("GRU", 3, 6, 5, 17, True, True, {}),
    ("GRU", 4, 5, 2, 8, True, False, {"reset_after": False}),
    ("GRU", 2, 3, 3, 6, False, True, {"reset_after": False, "use_bias": False}),
    ("GRU", 3, 4, 3, 5, True, False, {"activation": "linear", "recurrent_activation": "relu"}),
    ("SimpleRNN", 5, 7, 3, 4, False, False, {}),
    ("SimpleRNN", 3, 6, 5, 17, True, True, {}),
    ("SimpleRNN", 2, 5, 4, 6, True, False, {"activation": "relu"}),
    ("SimpleRNN", 2, 3, 4, 6, False, False, {"activation": "sigmoid", "use_bias": False}),
    ("SimpleRNN", 40, 9, 6, 300, True, False, {}),  # rows split between threads
]


def _weights(rng, cell, F, u, cfg):
    G = GATES[cell]
    W = rng.normal(0, 0.5, (F, G * u))
    U = rng.normal(0, 0.8 / np.sqrt(u), (u, G * u))  # tame: float32 vs 64 stays close
    if not cfg.get("use_bias", True):
        return [W, U]
    two = cell == "GRU" and cfg.get("reset_after", True)
    return [W, U, rng.normal(0, 0.5, (2, G * u) if two else (G * u,))]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[4]}u-rs{c[5]:d}-gb{c[6]:d}")
def test_layer_matches_keras_formula_in_torch(case):
    torch = _torch()
    cell, n, T, F, u, rs, gb, extra = case
    rng = np.random.default_rng(n * 100 + u)
    cfg = {"units": u, "return_sequences": rs, "go_backwards": gb, **extra}
    params = _weights(rng, cell, F, u, cfg)
    x = rng.normal(size=(n, T, F)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    pt = [torch.tensor(p, requires_grad=True) for p in params]
    b = pt[2] if len(pt) == 3 else None
    y = keras_rnn(cell, xt, pt[0], pt[1], b, u, rs, gb, cfg.get("reset_after", True),
                  cfg.get("activation", "tanh"), cfg.get("recurrent_activation", "sigmoid"))
    dy = rng.normal(size=tuple(y.shape))
    (y * torch.tensor(dy)).sum().backward()
    spec = json.dumps({"class_name": cell, "config": cfg})
    got, dxs, grads = _core._run_layer(spec, [[T, F]], [x], dy.astype(np.float32), True,
                                       [p.astype(np.float32) for p in params])
    np.testing.assert_allclose(got, y.detach().numpy(), rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(dxs[0], xt.grad.numpy(), rtol=RTOL, atol=10 * RTOL)
    for g, p, name in zip(grads, pt, ("kernel", "recurrent_kernel", "bias")):
        scale = np.abs(p.grad.numpy()).max()
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=RTOL, atol=RTOL * scale,
                                   err_msg=name)


def _torch_from_keras(cell, layer, torch_layer):
    """Copies a shenjing layer's weights into torch's nn.LSTM / nn.GRU / nn.RNN (the mapping
    the docs give): torch holds the transposes; GRU gates (z, r, h) become torch's (r, z, n);
    LSTM's single bias goes to bias_ih with bias_hh zero."""
    torch = _torch()
    kernel, rec, bias = layer.get_weights()

    def order(a, axis):
        if cell != "GRU":
            return a
        z, r, h = np.split(a, 3, axis=axis)
        return np.concatenate([r, z, h], axis=axis)

    with torch.no_grad():
        torch_layer.weight_ih_l0.copy_(torch.tensor(order(kernel, 1).T))
        torch_layer.weight_hh_l0.copy_(torch.tensor(order(rec, 1).T))
        if cell == "GRU":
            torch_layer.bias_ih_l0.copy_(torch.tensor(order(bias[0], 0)))
            torch_layer.bias_hh_l0.copy_(torch.tensor(order(bias[1], 0)))
        else:
            torch_layer.bias_ih_l0.copy_(torch.tensor(bias))
            torch_layer.bias_hh_l0.zero_()


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_one_sgd_step_matches_torch_nn(cell, return_sequences):
    """Same weights -> same predictions, and one SGD step of fit -> the same weights as
    torch.nn.{LSTM,GRU,RNN} + Linear under MSE."""
    torch = _torch()
    rng = np.random.default_rng(3)
    n, T, F, u = 6, 5, 4, 7
    x = rng.normal(size=(n, T, F)).astype(np.float32)
    out_shape = (n, T, 3) if return_sequences else (n, 3)
    y = rng.normal(size=out_shape).astype(np.float32)
    shenjing.utils.set_random_seed(0)
    rnn = getattr(layers, cell)(u, return_sequences=return_sequences)
    dense = layers.Dense(3)
    model = shenjing.Sequential([layers.Input((T, F)), rnn, dense])
    model.compile(optimizer=shenjing.optimizers.SGD(0.1), loss="mse")
    rnn.bias[...] = rng.normal(0, 0.3, rnn.bias.shape)
    bias0 = rnn.bias.copy()
    tl = getattr(torch.nn, {"SimpleRNN": "RNN"}.get(cell, cell))(F, u, batch_first=True)
    _torch_from_keras(cell, rnn, tl)
    lin = torch.nn.Linear(u, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(dense.kernel.T))
        lin.bias.copy_(torch.tensor(dense.bias))
    seq, _ = tl(torch.tensor(x))
    out = lin(seq if return_sequences else seq[:, -1])
    np.testing.assert_allclose(model.predict(x, verbose=0), out.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    opt = torch.optim.SGD(list(tl.parameters()) + list(lin.parameters()), lr=0.1)
    ((out - torch.tensor(y)) ** 2).mean().backward()
    opt.step()
    model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)
    after = type(tl)(F, u, batch_first=True)
    _torch_from_keras(cell, rnn, after)
    for name in ("weight_ih_l0", "weight_hh_l0"):
        np.testing.assert_allclose(getattr(after, name).detach().numpy(),
                                   getattr(tl, name).detach().numpy(), rtol=1e-5, atol=1e-6)
    if cell == "GRU":
        np.testing.assert_allclose(after.bias_ih_l0.detach().numpy(),
                                   tl.bias_ih_l0.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(after.bias_hh_l0.detach().numpy(),
                                   tl.bias_hh_l0.detach().numpy(), rtol=1e-5, atol=1e-6)
    else:  # one Keras bias, whose gradient is each of torch's two biases' gradient
        np.testing.assert_allclose(rnn.bias, bias0 - 0.1 * tl.bias_ih_l0.grad.numpy(),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.kernel, lin.weight.detach().numpy().T, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("cell,extra", [("LSTM", {}), ("GRU", {}),
                                        ("GRU", {"reset_after": False}), ("SimpleRNN", {}),
                                        ("LSTM", {"go_backwards": True,
                                                  "return_sequences": True})])
def test_finite_differences(cell, extra):
    rng = np.random.default_rng(1)
    shenjing.utils.set_random_seed(1)
    model = shenjing.Sequential([layers.Input((4, 3)), getattr(layers, cell)(3, **extra),
                                 layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(3, 4, 3))
    y = rng.normal(size=(3, 2))
    assert finite_difference_check(model, x, y) > 0


def test_same_result_on_one_and_two_threads():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(96, 12, 8)).astype(np.float32)
    y = rng.normal(size=(96, 1)).astype(np.float32)
    results = []
    for threads in (1, 2):
        shenjing.set_num_threads(threads)
        shenjing.utils.set_random_seed(5)
        model = shenjing.Sequential([layers.Input((12, 8)), layers.LSTM(64, return_sequences=True),
                                     layers.GRU(64), layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=48, epochs=2, verbose=0)
        results.append([w.copy() for w in model.get_weights()])
    shenjing.set_num_threads(2)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_weights_config_and_file_round_trip(tmp_path):
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((5, 3)),
                                 layers.LSTM(4, return_sequences=True, name="l"),
                                 layers.GRU(6, go_backwards=True, reset_after=False,
                                            return_sequences=True),
                                 layers.SimpleRNN(2, activation="relu")])
    lstm, gru, simple = model.layers
    assert [w.shape for w in lstm.weights] == [(3, 16), (4, 16), (16,)]
    assert [w.shape for w in gru.weights] == [(4, 18), (6, 18), (18,)]
    assert [w.shape for w in simple.weights] == [(6, 2), (2, 2), (2,)]
    # unit_forget_bias: ones on the forget block only; the recurrent kernel is orthogonal.
    np.testing.assert_array_equal(lstm.bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    u = gru.recurrent_kernel
    np.testing.assert_allclose(u @ u.T, np.eye(6), atol=1e-5)
    cfg = lstm.get_config()
    assert cfg["units"] == 4 and cfg["return_sequences"] and cfg["unit_forget_bias"]
    assert cfg["recurrent_initializer"]["class_name"] == "Orthogonal"
    assert "seed" not in simple.get_config() and gru.get_config()["reset_after"] is False
    x = np.random.default_rng(0).normal(size=(7, 5, 3)).astype(np.float32)
    path = str(tmp_path / "rnn.keras")
    model.save(path)
    loaded = shenjing.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_written_config_builds():
    """A config as Keras 3.15.1 writes it (LSTM(4).get_config(), copied)."""
    cfg = {"name": "lstm", "trainable": True, "dtype": {"module": "keras", "class_name":
           "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
           "return_sequences": False, "return_state": False, "go_backwards": False,
           "stateful": False, "unroll": False, "zero_output_for_mask": False, "units": 4,
           "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
           "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                  "config": {"seed": None}, "registered_name": None},
           "recurrent_initializer": {"module": "keras.initializers", "class_name": "Orthogonal",
                                     "config": {"seed": None, "gain": 1.0},
                                     "registered_name": None},
           "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                                "config": {}, "registered_name": None},
           "unit_forget_bias": True, "kernel_regularizer": None, "recurrent_regularizer": None,
           "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
           "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0,
           "recurrent_dropout": 0.0, "seed": None}
    layer = layers.LSTM.from_config(cfg)
    model = shenjing.Sequential([layers.Input((3, 2)), layer])
    assert model.output_shape == (None, 4)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="rank 3"):
        shenjing.Sequential([layers.Input((5,)), layers.LSTM(3)])
    with pytest.raises(ValueError, match="units"):
        layers.GRU(0)
    with pytest.raises(ValueError, match="softmax"):
        layers.LSTM(3, activation="softmax")
    with pytest.raises(ValueError, match="dropout=1.0"):  # more in test_recurrent_dropout.py
        layers.LSTM(3, dropout=1.0)
    spec = json.dumps({"class_name": "LSTM", "config": {"units": 3, "initial_state": True}})
    with pytest.raises(ValueError, match="2 initial state"):
        _core._run_layer(spec, [[4, 2]], [np.zeros((1, 4, 2), np.float32)], None, False, None)
    spec = json.dumps({"class_name": "GRU", "config": {"units": 3, "activation": "gelu"}})
    with pytest.raises(ValueError, match="gelu"):
        _core._run_layer(spec, [[4, 2]], [np.zeros((1, 4, 2), np.float32)], None, False, None)
