"""dropout and recurrent_dropout of SimpleRNN, LSTM and GRU (Keras 3.15's DropoutRNNCell),
without torch: inference untouched, finite differences in training mode (the stream reset
before each evaluation, so that every evaluation draws the same masks), thread independence,
seeds, resumed streams after save/load, Bidirectional's shared stream, Keras masks, configs
and errors. core_masks rebuilds the masks a training call draws from the documented stream
(cpp/src/layers/dropout_mask.hpp and recurrent_dropout.hpp: splitmix64 from the config's
seed, 24 bits per value, input masks gate by gate, then recurrent masks); the exact checks
against Keras's cells are in test_recurrent_dropout_parity.py."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers
from shenjing.saving import load_model

from test_gradients import finite_difference_check

GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
M64 = (1 << 64) - 1


def _splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def _fill(state, rate, count):
    """fill_dropout_mask: (new state, count float32 mask values)."""
    rate = np.float32(rate)
    scale = np.float32(1) / (np.float32(1) - rate)
    threshold = int(rate * np.float32(16777216.0))
    out = []
    while len(out) < count:
        state, r = _splitmix64(state)
        for k in range(2):
            if len(out) < count:
                out.append(scale if ((r >> (32 * k)) & 0xFFFFFF) >= threshold else 0.0)
    return state, np.array(out, np.float32)


def core_masks(cell, seed, n, F, u, dropout, recurrent_dropout):
    """The masks one training call draws: ([k_in masks (n, F)], [k_rec masks (n, u)]), as
    Keras's cells use them (one per gate when recurrent_dropout is on)."""
    G = GATES[cell]
    k_in = (G if recurrent_dropout else 1) if dropout else 0
    k_rec = G if recurrent_dropout else 0
    state, ins, recs = seed, [], []
    if k_in:
        state, v = _fill(state, dropout, k_in * n * F)
        ins = list(v.reshape(k_in, n, F))
    if k_rec:
        state, v = _fill(state, recurrent_dropout, k_rec * n * u)
        recs = list(v.reshape(k_rec, n, u))
    return ins, recs


def _model(cell, T=5, F=3, u=4, **kw):
    return shenjing.Sequential([layers.Input((T, F)), getattr(layers, cell)(u, **kw),
                                layers.Dense(1)])


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_inference_is_unaffected(cell):
    """predict with dropout equals predict of the same weights without: masks only train."""
    shenjing.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(7, 5, 3)).astype(np.float32)
    dropped = _model(cell, dropout=0.4, recurrent_dropout=0.3)
    plain = _model(cell)
    plain.set_weights(dropped.get_weights())
    np.testing.assert_array_equal(dropped.predict(x, verbose=0), plain.predict(x, verbose=0))
    dropped.compile(optimizer="sgd", loss="mse")
    plain.compile(optimizer="sgd", loss="mse")
    y = np.zeros((7, 1), np.float32)
    assert dropped.evaluate(x, y, verbose=0) == plain.evaluate(x, y, verbose=0)
    # Training calls do drop: the gradients differ from the plain layer's.
    assert dropped._core.compute_gradients(x, y) != plain._core.compute_gradients(x, y)


class _ReplayCore:
    """The model's core with its random streams reset before every gradient call, so that
    finite differences compare evaluations under the same masks."""

    def __init__(self, core):
        self._core = core
        self._states = {i: core.random_state(i) for i in range(core.num_layers)
                        if core.random_state(i) is not None}
        assert self._states

    def compute_gradients(self, x, y):
        for i, s in self._states.items():
            self._core.set_random_state(i, s)
        return self._core.compute_gradients(x, y)

    def __getattr__(self, name):
        return getattr(self._core, name)


@pytest.mark.parametrize("cell,extra", [
    ("SimpleRNN", {"dropout": 0.3, "recurrent_dropout": 0.3}),
    ("LSTM", {"dropout": 0.3}),
    ("LSTM", {"dropout": 0.3, "recurrent_dropout": 0.3, "go_backwards": True,
              "return_sequences": True}),
    ("GRU", {"dropout": 0.3, "recurrent_dropout": 0.3}),
    ("GRU", {"dropout": 0.3, "recurrent_dropout": 0.3, "reset_after": False}),
])
def test_finite_differences_in_training_mode(cell, extra):
    rng = np.random.default_rng(1)
    shenjing.utils.set_random_seed(1)
    model = shenjing.Sequential([layers.Input((4, 3)), getattr(layers, cell)(3, seed=9, **extra),
                                 layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(3, 4, 3))
    y = rng.normal(size=(3, 2))
    model._core = _ReplayCore(model._core)
    assert finite_difference_check(model, x, y) > 0


def _fit_weights(threads, cell, **kw):
    # 128 rows of 96 units and 128 * 9 * 64 inputs: the step kernels and the masking of the
    # inputs both split between threads.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, 9, 64)).astype(np.float32)
    y = rng.normal(size=(128, 1)).astype(np.float32)
    before = shenjing.get_num_threads()
    shenjing.set_num_threads(threads)
    try:
        shenjing.utils.set_random_seed(5)
        model = shenjing.Sequential([layers.Input((9, 64)),
                                     getattr(layers, cell)(96, return_sequences=True, **kw),
                                     layers.Bidirectional(layers.GRU(40, **kw)),
                                     layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=128, epochs=2, verbose=0)
        return [w.copy() for w in model.get_weights()]
    finally:
        shenjing.set_num_threads(before)


@pytest.mark.parametrize("cell", ["LSTM", "SimpleRNN"])
def test_same_result_on_one_and_two_threads(cell):
    kw = {"dropout": 0.2, "recurrent_dropout": 0.25, "seed": 4}
    for a, b in zip(_fit_weights(1, cell, **kw), _fit_weights(2, cell, **kw)):
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_training_and_different_seeds_differ():
    x = np.random.default_rng(3).normal(size=(16, 5, 3)).astype(np.float32)
    y = np.ones((16, 1), np.float32)

    def run(seed):
        shenjing.utils.set_random_seed(0)  # the same initial weights
        model = _model("LSTM", dropout=0.3, recurrent_dropout=0.3, seed=seed)
        model.compile(optimizer="sgd", loss="mse")
        return model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("make", [
    lambda: layers.GRU(5, dropout=0.3, recurrent_dropout=0.2),
    lambda: layers.SimpleRNN(5, dropout=0.3, recurrent_dropout=0.2),
    lambda: layers.Bidirectional(layers.LSTM(4, dropout=0.3, recurrent_dropout=0.2)),
])
def test_resumed_training_equals_uninterrupted(tmp_path, make):
    """fit, save, fit more == load, fit more: bit for bit (the masks' stream is saved)."""
    shenjing.utils.set_random_seed(5)
    model = shenjing.Sequential([layers.Input((6, 3)), make(), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6, 3)).astype(np.float32)
    y = rng.normal(size=(40, 1)).astype(np.float32)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "ckpt.keras"
    model.save(path)
    shenjing.utils.set_random_seed(123)  # the resumed run must not depend on the global seed
    resumed = load_model(path)
    h1 = model.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0).history
    h2 = resumed.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0).history
    assert h1 == h2
    for a, b in zip(model.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), resumed.predict(x, verbose=0))


def test_bidirectional_draws_different_masks_in_each_direction():
    """The two directions share one stream: a layer copied into both (the same seed) still
    gets different masks, and one random state per core layer is saved."""
    n, T, F, u = 6, 4, 3, 2
    inner = {"class_name": "SimpleRNN",
             "config": {"units": u, "dropout": 0.5, "seed": 3, "return_sequences": True,
                        "activation": "linear"}}
    back = json.loads(json.dumps(inner))
    back["config"]["go_backwards"] = True
    # Weights that make the output the dropped input at each step: W = I (padded), U = 0.
    W = np.eye(F, u, dtype=np.float32)
    params = [W, np.zeros((u, u), np.float32), np.zeros(u, np.float32)] * 2
    spec = json.dumps({"class_name": "Bidirectional",
                       "config": {"merge_mode": "concat", "layer": inner, "backward_layer": back}})
    x = np.ones((n, T, F), np.float32)
    y, _, _ = _core._run_layer(spec, [[T, F]], [x], None, True, params)
    fwd, bwd = y[..., :u], y[..., u:]
    state, first = _fill(3, 0.5, n * F)  # the forward layer's input mask, then the backward's
    _, second = _fill(state, 0.5, n * F)
    for got, m in ((fwd, first), (bwd, second)):  # one mask per sequence, at every step
        np.testing.assert_array_equal(got, np.repeat(m.reshape(n, 1, F)[..., :u], T, 1))
    assert not np.array_equal(fwd, bwd)


def test_configs():
    layer = layers.LSTM(3, dropout=0.2, recurrent_dropout=0.1, seed=7)
    cfg = layer.get_config()
    assert (cfg["dropout"], cfg["recurrent_dropout"], cfg["seed"]) == (0.2, 0.1, 7)
    assert layers.GRU(2, dropout=1.7 - 1.5).dropout == pytest.approx(0.2)
    assert layers.GRU(2, dropout=-0.5).dropout == 0.0  # Keras clips into [0, 1]
    simple = layers.SimpleRNN(2, dropout=0.5, seed=3)
    assert "seed" not in simple.get_config()  # as Keras 3.15's config
    core = simple._core_config()
    assert core["seed"] == 3 and core["dropout"] == 0.5
    # No seed: one is drawn once per layer, and none without dropout.
    drawn = layers.GRU(2, recurrent_dropout=0.5)
    assert drawn._core_config()["seed"] == drawn._core_config()["seed"]
    assert layers.GRU(2)._core_config().get("seed") is None
    # Any integer seed reaches the core as one it takes (Keras takes negative ones too).
    x = np.zeros((2, 4, 3), np.float32)
    for seed in (-5, 2**63 + 3):
        for kw in ({}, {"dropout": 0.5}):
            model = _model("LSTM", T=4, seed=seed, **kw)
            assert model.predict(x, verbose=0).shape == (2, 1)


@pytest.mark.parametrize("kw,match", [
    ({"dropout": 1.0}, "dropout=1.0"),
    ({"recurrent_dropout": 3}, "recurrent_dropout=1.0"),
    ({"dropout": "0.5"}, "dropout must be a float"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"seed": True}, "seed must be an integer"),
    ({"dropout": 0.5, "implementation": 1}, "implementation=1"),
])
def test_python_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        layers.LSTM(3, **kw)


@pytest.mark.parametrize("field,value,match", [
    ("dropout", 1.0, "'dropout' must be a number in \\[0, 1\\)"),
    ("recurrent_dropout", 0.9999999999, "'recurrent_dropout' must be a number in \\[0, 1\\)"),
    ("dropout", -0.1, "'dropout' must be a number in \\[0"),
    ("dropout", "x", "'dropout' must be a number"),
    ("seed", 0.5, "'seed' must be null or an integer of at most 64 bits"),
    ("seed", "1", "'seed' must be null or an integer of at most 64 bits"),
    ("seed", 2.0 ** 64, "'seed' must be null or an integer of at most 64 bits"),
    ("seed", -2.0 ** 64, "'seed' must be null or an integer of at most 64 bits"),
])
def test_core_config_errors(field, value, match):
    spec = json.dumps({"class_name": "GRU", "name": "g",
                       "config": {"units": 2, "name": "g", field: value}})
    with pytest.raises(ValueError, match=match):
        _core._run_layer(spec, [[3, 2]], [np.zeros((1, 3, 2), np.float32)], None, True, None)


def test_dropout_trains():
    """A small task still learns with both dropouts on (loss falls by half)."""
    shenjing.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8, 2)).astype(np.float32)
    y = x[:, :, 0].sum(1, keepdims=True) * 0.3
    model = shenjing.Sequential([layers.Input((8, 2)),
                                 layers.LSTM(16, dropout=0.1, recurrent_dropout=0.1),
                                 layers.Dense(1)])
    model.compile(optimizer=shenjing.optimizers.Adam(0.01), loss="mse")
    loss = model.fit(x, y, batch_size=32, epochs=15, verbose=0).history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert model.evaluate(x, y, verbose=0) < 0.5 * loss[0]


@pytest.mark.parametrize("make", [
    lambda: layers.LSTM(5, dropout=0.3, recurrent_dropout=0.3, seed=1),
    lambda: layers.GRU(5, dropout=0.3, recurrent_dropout=0.3, reset_after=False, seed=2),
    lambda: layers.SimpleRNN(5, dropout=0.3, recurrent_dropout=0.3, go_backwards=True, seed=3),
])
def test_keras_masks_still_skip_padding_in_training(make):
    """A mask's padded steps change nothing, in training too: the masks are per sequence
    ((batch, features) and (batch, units)), so the same seed draws the same ones whatever
    the padding, and training on short or padded batches gives the same weights."""
    def model(T):
        return shenjing.Sequential([layers.Input((T,), dtype="int32"),
                                    layers.Embedding(20, 6, mask_zero=True), make(),
                                    layers.Dense(1, activation="sigmoid")])

    shenjing.utils.set_random_seed(0)
    short, long_ = model(6), model(11)
    long_.set_weights(short.get_weights())
    x = np.array([[3, 4, 5, 0, 0, 0], [7, 1, 0, 0, 0, 0], [2, 9, 9, 9, 9, 1]])
    padded = np.pad(x, ((0, 0), (0, 5)))
    y = np.array([1, 0, 1])
    for m, data in ((short, x), (long_, padded)):
        m.compile(optimizer="sgd", loss="binary_crossentropy")
        m.fit(data, y, batch_size=3, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(short.get_weights(), long_.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_finite_differences_with_dropout_through_initial_states(cell):
    """The gradient reaching an initial state passes the decoder's recurrent mask."""
    rng = np.random.default_rng(4)
    shenjing.utils.set_random_seed(4)
    a = shenjing.Input((4, 3))
    layer = getattr(layers, cell)
    _, *states = layer(3, return_state=True, seed=3, dropout=0.3, recurrent_dropout=0.3)(a)
    seq = layer(3, return_sequences=True, seed=5, recurrent_dropout=0.4)(
        layers.Dense(3)(a), initial_state=states)
    model = shenjing.Model(a, layers.Dense(2)(layers.Flatten()(seq)))
    model.compile(optimizer="sgd", loss="mse")
    model._core = _ReplayCore(model._core)
    assert finite_difference_check(model, rng.normal(size=(3, 4, 3)),
                                   rng.normal(size=(3, 2))) > 0
