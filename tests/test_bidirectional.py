"""Bidirectional: the merge of a forward layer and a go_backwards copy (its sequence flipped
back), for every merge mode and cell; gradients by finite differences and against PyTorch's
bidirectional nn.LSTM; masks, configs (Keras 3.15.1's included), files and errors."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import layers

from test_gradients import finite_difference_check

CELLS = {"LSTM": layers.LSTM, "GRU": layers.GRU, "SimpleRNN": layers.SimpleRNN}


def _alone(cell, rs, go_backwards, weights, T=5, F=3):
    m = shenjing.Sequential([layers.Input((T, F)),
                             CELLS[cell](4, return_sequences=rs, go_backwards=go_backwards)])
    m.set_weights(weights)
    return m


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("rs", [False, True])
def test_merge_of_forward_and_flipped_backward(cell, mode, rs):
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((5, 3)),
                                 layers.Bidirectional(CELLS[cell](4, return_sequences=rs),
                                                      merge_mode=mode)])
    bidi = model.layers[0]
    x = np.random.default_rng(1).normal(size=(3, 5, 3)).astype(np.float32)
    yf = _alone(cell, rs, False, bidi.forward_layer.get_weights()).predict(x, verbose=0)
    yb = _alone(cell, rs, True, bidi.backward_layer.get_weights()).predict(x, verbose=0)
    if rs:
        yb = yb[:, ::-1]
    want = {"concat": np.concatenate([yf, yb], -1), "sum": yf + yb, "mul": yf * yb,
            "ave": (yf + yb) / 2}[mode]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-6, atol=1e-7)
    assert model.output_shape == (None,) + ((5,) if rs else ()) + (8 if mode == "concat" else 4,)


@pytest.mark.parametrize("cell,mode", [("LSTM", "concat"), ("GRU", "mul"),
                                       ("SimpleRNN", "ave")])
def test_finite_differences(cell, mode):
    rng = np.random.default_rng(2)
    shenjing.utils.set_random_seed(2)
    model = shenjing.Sequential([
        layers.Input((4, 3)), layers.Dense(3),
        layers.Bidirectional(CELLS[cell](3, return_sequences=True), merge_mode=mode),
        layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    assert finite_difference_check(model, rng.normal(size=(3, 4, 3)),
                                   rng.normal(size=(3, 2))) > 0


def test_matches_torch_bidirectional_lstm_and_one_sgd_step():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    n, T, F, u = 4, 6, 3, 5
    shenjing.utils.set_random_seed(3)
    model = shenjing.Sequential([layers.Input((T, F)),
                                 layers.Bidirectional(layers.LSTM(u, return_sequences=True))])
    model.compile(optimizer=shenjing.optimizers.SGD(0.1), loss="mse")
    bidi = model.layers[0]
    net = torch.nn.LSTM(F, u, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for inner, sfx in ((bidi.forward_layer, ""), (bidi.backward_layer, "_reverse")):
            kernel, rec, bias = inner.get_weights()
            getattr(net, "weight_ih_l0" + sfx).copy_(torch.tensor(kernel.T))
            getattr(net, "weight_hh_l0" + sfx).copy_(torch.tensor(rec.T))
            getattr(net, "bias_ih_l0" + sfx).copy_(torch.tensor(bias))
            getattr(net, "bias_hh_l0" + sfx).zero_()
    x = rng.normal(size=(n, T, F)).astype(np.float32)
    y = rng.normal(size=(n, T, 2 * u)).astype(np.float32)
    out, _ = net(torch.tensor(x))
    np.testing.assert_allclose(model.predict(x, verbose=0), out.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    ((out - torch.tensor(y)) ** 2).mean().backward()
    model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)
    for inner, sfx in ((bidi.forward_layer, ""), (bidi.backward_layer, "_reverse")):
        w0 = getattr(net, "weight_ih_l0" + sfx)
        np.testing.assert_allclose(inner.kernel, (w0 - 0.1 * w0.grad).detach().numpy().T,
                                   rtol=1e-5, atol=1e-6)
        r0 = getattr(net, "weight_hh_l0" + sfx)
        np.testing.assert_allclose(inner.recurrent_kernel,
                                   (r0 - 0.1 * r0.grad).detach().numpy().T, rtol=1e-5,
                                   atol=1e-6)


def test_masked_text_classifier_does_not_depend_on_padding():
    def build(T):
        return shenjing.Sequential([layers.Input((T,), dtype="int32"),
                                    layers.Embedding(30, 6, mask_zero=True),
                                    layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
                                    layers.Bidirectional(layers.GRU(3)),
                                    layers.Dense(1, activation="sigmoid")])
    shenjing.utils.set_random_seed(4)
    short, long_ = build(5), build(9)
    long_.set_weights(short.get_weights())
    x = np.array([[5, 6, 7, 0, 0], [1, 0, 0, 0, 0], [3, 4, 5, 6, 7]])
    padded = np.pad(x, ((0, 0), (0, 4)))
    np.testing.assert_allclose(long_.predict(padded, verbose=0), short.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)
    # return_sequences: masked steps are zeros (Keras forces zero_output_for_mask).
    seq = shenjing.Model(short.inputs, short.layers[1].output).predict(x, verbose=0)
    assert not seq[0, 3:].any() and not seq[1, 1:].any() and np.all(seq[2] != 0)


def test_weights_config_files_and_keras_config(tmp_path):
    shenjing.utils.set_random_seed(5)
    model = shenjing.Sequential([layers.Input((5, 3)),
                                 layers.Bidirectional(layers.GRU(4, return_sequences=True),
                                                      merge_mode="sum")])
    bidi = model.layers[0]
    assert bidi.forward_layer.name.startswith("forward_gru")
    assert bidi.backward_layer.go_backwards and bidi.backward_layer.name.startswith("backward_")
    assert [w.shape for w in bidi.weights] == [(3, 12), (4, 12), (2, 12)] * 2
    assert bidi.forward_layer.kernel is bidi.weights[0]  # views of the core's buffers
    cfg = bidi.get_config()
    assert cfg["merge_mode"] == "sum" and cfg["layer"]["class_name"] == "GRU"
    assert cfg["backward_layer"]["config"]["go_backwards"] is True
    assert cfg["layer"]["config"]["zero_output_for_mask"] is True
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    path = str(tmp_path / "bidi.keras")
    model.save(path)
    loaded = shenjing.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # Bidirectional(GRU(4, return_sequences=True), merge_mode="sum").get_config() as Keras
    # 3.15.1 writes it (trimmed of nothing but the repeated initializer dicts).
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
              "registered_name": None}

    def gru(name, back):
        return {"module": "keras.layers", "class_name": "GRU", "registered_name": None,
                "build_config": {"input_shape": [None, 5, 3]},
                "config": {"name": name, "trainable": True, "dtype": policy,
                           "return_sequences": True, "return_state": False,
                           "go_backwards": back, "stateful": False, "unroll": False,
                           "zero_output_for_mask": True, "units": 4, "activation": "tanh",
                           "recurrent_activation": "sigmoid", "use_bias": True,
                           "kernel_regularizer": None, "recurrent_regularizer": None,
                           "bias_regularizer": None, "activity_regularizer": None,
                           "kernel_constraint": None, "recurrent_constraint": None,
                           "bias_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0,
                           "reset_after": True, "seed": None}}
    keras_cfg = {"name": "bidirectional", "trainable": True, "dtype": policy,
                 "merge_mode": "sum", "layer": gru("forward_gru", False),
                 "backward_layer": gru("backward_gru", True)}
    rebuilt = layers.Bidirectional.from_config(json.loads(json.dumps(keras_cfg)))
    m2 = shenjing.Sequential([layers.Input((5, 3)), rebuilt])
    m2.set_weights(model.get_weights())
    np.testing.assert_array_equal(m2.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="Invalid merge mode"):
        layers.Bidirectional(layers.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="merge_mode=None"):
        layers.Bidirectional(layers.LSTM(2), merge_mode=None)
    with pytest.raises(ValueError, match="SimpleRNN, LSTM or GRU"):
        layers.Bidirectional(layers.Dense(2))
    with pytest.raises(ValueError, match="keras.layers.Layer"):
        layers.Bidirectional("lstm")
    with pytest.raises(ValueError, match="go_backwards"):
        layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(2))
    with pytest.raises(ValueError, match="return_sequences"):
        layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(
            2, go_backwards=True, return_sequences=True))
