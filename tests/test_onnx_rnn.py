"""ONNX export of SimpleRNN, LSTM and GRU (_onnx_rnn.py): onnxruntime runs the exported graph
and must give what ``predict`` gives (within 1e-5) for every cell, return_sequences,
go_backwards, use_bias, GRU reset_after and cell activation, in stacked and shared-layer
models and at several opsets."""
import itertools

import numpy as np
import pytest

import shenjing
from shenjing import layers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from test_onnx import _assert_same, _model, _session  # noqa: E402 (after the skips)

TOL = 1e-5
T, F = 6, 3


def _randomize(model, seed=0):
    """Random weights: kernels scaled by their fan-in, biases of 0.3 so that every gate and
    the activations are driven away from zero (a gate-order or bias mix-up then shows)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 1 / np.sqrt(w.shape[0]) if w.ndim > 1 else 0.3,
                                      w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    return model


def _inputs(model, n=4, seed=1, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=(n, *model.input_shape[1:]))) \
        .astype(np.float32)


def _op_types(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


# (cell, extra config): every cell activation the layers allow appears in each position.
CELLS = [
    ("SimpleRNN", {}),
    ("SimpleRNN", {"activation": "relu"}),
    ("SimpleRNN", {"activation": "sigmoid"}),
    ("SimpleRNN", {"activation": "linear"}),
    ("LSTM", {}),
    ("LSTM", {"activation": "relu", "recurrent_activation": "tanh"}),
    ("LSTM", {"activation": "linear", "recurrent_activation": "relu"}),
    ("LSTM", {"activation": "sigmoid", "recurrent_activation": "linear"}),
    ("GRU", {}),
    ("GRU", {"reset_after": False}),
    ("GRU", {"activation": "relu", "recurrent_activation": "tanh"}),
    ("GRU", {"activation": "linear", "recurrent_activation": "sigmoid", "reset_after": False}),
    ("GRU", {"activation": "sigmoid", "recurrent_activation": "linear"}),
    ("GRU", {"activation": "tanh", "recurrent_activation": "relu", "reset_after": False}),
]
FLAGS = list(itertools.product([False, True], repeat=3))  # sequences, backwards, use_bias


def _id(case):
    cell, cfg = case
    return "-".join([cell, *(f"{k}={v}" for k, v in cfg.items())])


@pytest.mark.parametrize("flags", FLAGS,
                         ids=[f"seq{int(a)}-back{int(b)}-bias{int(c)}" for a, b, c in FLAGS])
@pytest.mark.parametrize("case", CELLS, ids=[_id(c) for c in CELLS])
def test_cell(tmp_path, case, flags):
    cell, cfg = case
    return_sequences, go_backwards, use_bias = flags
    layer = getattr(layers, cell)(4, return_sequences=return_sequences,
                                  go_backwards=go_backwards, use_bias=use_bias, **cfg)
    model = _randomize(_model((T, F), layer))
    path = tmp_path / "rnn.onnx"
    # A linear gate lets the state grow without bound (|h| ~ 400 after 6 steps at scale 1),
    # where float32 rounding alone moves both runs ~1e-4 from the float64 result.
    scale = 0.5 if cfg.get("recurrent_activation") == "linear" else 1.0
    _assert_same(model, path, _inputs(model, scale=scale))
    # One ONNX recurrent node, not an unrolled loop.
    assert _op_types(path).count({"SimpleRNN": "RNN"}.get(cell, cell)) == 1


def test_go_backwards_sequence_is_in_processing_order(tmp_path):
    # Keras returns step s's output at index s, step s having read input T-1-s: the first
    # output depends on the last input only. The exported graph must agree.
    model = _randomize(_model((T, F), layers.SimpleRNN(3, return_sequences=True,
                                                        go_backwards=True)))
    x = _inputs(model)
    y = _session(model, tmp_path / "m.onnx").run(["output"], {"input": x})[0]
    x2 = x.copy()
    x2[:, :-1] += 1.0
    y2 = _session(model, tmp_path / "m.onnx").run(["output"], {"input": x2})[0]
    np.testing.assert_array_equal(y[:, 0], y2[:, 0])
    assert np.abs(y[:, 1:] - y2[:, 1:]).min() > 0


def test_stacked_lstm_gru_dense(tmp_path):
    model = _randomize(_model((T, F), layers.LSTM(8, return_sequences=True),
                              layers.GRU(5, go_backwards=True),
                              layers.Dense(3, activation="softmax")))
    _assert_same(model, tmp_path / "stack.onnx", _inputs(model, n=7))


def test_stack_of_every_cell_with_long_sequence(tmp_path):
    model = _randomize(_model((40, F), layers.SimpleRNN(6, return_sequences=True),
                              layers.GRU(7, return_sequences=True, reset_after=False,
                                         go_backwards=True),
                              layers.LSTM(9, return_sequences=True),
                              layers.Dense(2)))
    _assert_same(model, tmp_path / "deep.onnx", _inputs(model, n=3))


def test_shared_gru_in_functional_model(tmp_path):
    a, b = layers.Input((T, F), name="a"), layers.Input((T, F), name="b")
    gru = layers.GRU(5)
    out = layers.Dense(2, name="out")(layers.Concatenate()([gru(a), gru(b)]))
    model = _randomize(shenjing.Model([a, b], out))
    path = tmp_path / "shared.onnx"
    session = _session(model, path)
    xa, xb = np.random.default_rng(2).normal(size=(2, 5, T, F)).astype(np.float32)
    got = session.run(["out"], {"a": xa, "b": xb})[0]
    np.testing.assert_allclose(got, model.predict([xa, xb], verbose=0), rtol=TOL, atol=TOL)
    graph = onnx.load(str(path)).graph
    assert _op_types(path).count("GRU") == 2
    assert sum(i.name.endswith("/W") for i in graph.initializer) == 1  # weights stored once


@pytest.mark.parametrize("opset", [13, 14, 18, 21])
def test_other_opsets(tmp_path, opset):
    model = _randomize(_model((T, F), layers.LSTM(4, return_sequences=True, go_backwards=True),
                              layers.GRU(3), layers.Dense(2)))
    path = tmp_path / "m.onnx"
    _assert_same(model, path, _inputs(model), opset=opset)
    assert onnx.load(str(path)).opset_import[0].version == opset


def test_symbolic_batch_and_batch_sizes(tmp_path):
    model = _randomize(_model((T, F), layers.LSTM(5, return_sequences=True)))
    path = tmp_path / "m.onnx"
    session = _session(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for n in (1, 9, 40):  # 40 > 32 also takes predict's batched path
        x = _inputs(model, n=n, seed=n)
        np.testing.assert_allclose(session.run(None, {"input": x})[0],
                                   model.predict(x, verbose=0), rtol=TOL, atol=TOL)


def test_trained_model(tmp_path):
    shenjing.utils.set_random_seed(0)
    model = _model((T, F), layers.GRU(6, return_sequences=True), layers.LSTM(4),
                   layers.Dense(1))
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, T, F)).astype(np.float32)
    model.fit(x, x.sum(axis=(1, 2))[:, None], batch_size=16, epochs=2, verbose=0)
    _assert_same(model, tmp_path / "trained.onnx", x[:10])


def test_dropout_is_inference_neutral(tmp_path):
    """dropout / recurrent_dropout / seed train only: the graph is the one predict runs,
    also after training with them."""
    shenjing.utils.set_random_seed(0)
    model = _model((T, F), layers.GRU(6, return_sequences=True, dropout=0.3, seed=2),
                   layers.LSTM(4, return_sequences=True, dropout=0.2, recurrent_dropout=0.4),
                   layers.SimpleRNN(3, recurrent_dropout=0.5), layers.Dense(1))
    _assert_same(_randomize(model), tmp_path / "fresh.onnx", _inputs(model))
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, T, F)).astype(np.float32)
    model.fit(x, x.sum(axis=(1, 2))[:, None], batch_size=16, epochs=1, verbose=0)
    _assert_same(model, tmp_path / "trained.onnx", x[:8])


# -- refusals: a ValueError naming the layer, and no file written --------------------------------
def _refused(tmp_path, model, match):
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=match):
        model.export_onnx(str(path))
    assert not path.exists()


def test_masked_layer_is_refused(tmp_path):
    model = shenjing.Sequential([layers.Input((T,), dtype="int32"),
                                 layers.Embedding(9, F, mask_zero=True),
                                 layers.LSTM(3, name="masked_lstm")])
    _refused(tmp_path, model, "masked_lstm.*mask")


@pytest.mark.parametrize("field, value", [("stateful", True), ("return_state", True),
                                          ("zero_output_for_mask", True),
                                          ("time_major", True)])
def test_unexportable_config_is_refused(tmp_path, monkeypatch, field, value):
    model = _model((T, F), layers.GRU(3, name="odd_gru"))
    layer = model.layers[0]
    config = layer.get_config()
    monkeypatch.setattr(layer, "get_config", lambda: {**config, field: value})
    _refused(tmp_path, model, f"odd_gru.*{field}")


def test_unexportable_activation_is_refused(tmp_path, monkeypatch):
    model = _model((T, F), layers.SimpleRNN(3, name="odd_rnn"))
    monkeypatch.setattr(model.layers[0], "activation", "gelu")
    _refused(tmp_path, model, "odd_rnn.*gelu")


def test_weights_not_fitting_config_are_refused(tmp_path, monkeypatch):
    model = _model((T, F), layers.GRU(3, name="odd_gru"))
    monkeypatch.setattr(model.layers[0], "reset_after", False)  # bias is still (2, 9)
    _refused(tmp_path, model, "odd_gru.*weights")
