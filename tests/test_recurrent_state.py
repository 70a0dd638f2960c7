"""return_state and initial_state (keras.io's sequence-to-sequence pattern): the final states
and the gradients that flow into initial states, against PyTorch's nn.LSTM / nn.GRU / nn.RNN
with (h0, c0); masks with return_state; configs, files and errors."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import layers

from test_gradients import finite_difference_check
from test_recurrent import _torch_from_keras

CELLS = {"LSTM": layers.LSTM, "GRU": layers.GRU, "SimpleRNN": layers.SimpleRNN}


def _seq2seq(cell, u=5, Te=6, Td=4, F=3, out=2):
    enc_in = shenjing.Input((Te, F))
    dec_in = shenjing.Input((Td, F))
    _, *states = CELLS[cell](u, return_state=True, name="encoder")(enc_in)
    seq, *_ = CELLS[cell](u, return_sequences=True, return_state=True,
                          name="decoder")(dec_in, initial_state=states)
    return shenjing.Model([enc_in, dec_in], layers.Dense(out, name="head")(seq))


def _to_torch(torch, cell, layer):
    """A torch nn.LSTM / nn.GRU / nn.RNN holding ``layer``'s weights (the documented map)."""
    net = getattr(torch.nn, {"SimpleRNN": "RNN"}.get(cell, cell))(
        layer.kernel.shape[0], layer.units, batch_first=True)
    _torch_from_keras(cell, layer, net)
    return net


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_encoder_decoder_matches_torch_and_one_sgd_step(cell):
    torch = pytest.importorskip("torch")
    shenjing.utils.set_random_seed(0)
    model = _seq2seq(cell)
    model.compile(optimizer=shenjing.optimizers.SGD(0.2), loss="mse")
    enc, dec, head = (model.get_layer(n) for n in ("encoder", "decoder", "head"))
    rng = np.random.default_rng(1)
    for layer in (enc, dec):
        layer.bias[...] = rng.normal(0, 0.3, layer.bias.shape)
    te, td = _to_torch(torch, cell, enc), _to_torch(torch, cell, dec)
    lin = torch.nn.Linear(5, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(head.kernel.T))
        lin.bias.copy_(torch.tensor(head.bias))
    xe = rng.normal(size=(4, 6, 3)).astype(np.float32)
    xd = rng.normal(size=(4, 4, 3)).astype(np.float32)
    y = rng.normal(size=(4, 4, 2)).astype(np.float32)
    _, state = te(torch.tensor(xe))
    seq, _ = td(torch.tensor(xd), state)
    out = lin(seq)
    np.testing.assert_allclose(model.predict([xe, xd], verbose=0), out.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    ((out - torch.tensor(y)) ** 2).mean().backward()
    model.fit([xe, xd], y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    # The encoder learns only through the decoder's initial state.
    w = te.weight_hh_l0
    got = _to_torch(torch, cell, enc).weight_hh_l0.detach().numpy()
    np.testing.assert_allclose(got, (w - 0.2 * w.grad).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_finite_differences_through_states(cell, go_backwards):
    rng = np.random.default_rng(2)
    shenjing.utils.set_random_seed(2)
    a = shenjing.Input((4, 3))
    _, *states = CELLS[cell](3, return_state=True, go_backwards=go_backwards)(a)
    seq = CELLS[cell](3, return_sequences=True)(layers.Dense(3)(a), initial_state=states)
    model = shenjing.Model(a, layers.Dense(2)(layers.Flatten()(seq)))
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(3, 4, 3))
    assert finite_difference_check(model, x, rng.normal(size=(3, 2))) > 0


def test_final_states_with_a_mask_are_the_carried_states():
    shenjing.utils.set_random_seed(3)
    inp = shenjing.Input((6,), dtype="int32")
    e = layers.Embedding(20, 4, mask_zero=True)(inp)
    seq, h, c = layers.LSTM(5, return_sequences=True, return_state=True)(e)
    model = shenjing.Model(inp, [seq, h, c])
    x = np.array([[3, 4, 0, 0, 0, 0], [5, 6, 7, 8, 9, 1]])
    seq_v, h_v, c_v = model.predict(x, verbose=0)
    np.testing.assert_array_equal(h_v[0], seq_v[0, 1])  # the last real step's h
    np.testing.assert_array_equal(h_v[1], seq_v[1, -1])
    short = shenjing.Model(*(lambda i: (i, layers.LSTM(5, return_state=True)(
        layers.Embedding(20, 4)(i))))(shenjing.Input((2,), dtype="int32")))
    short.set_weights(model.get_weights())
    _, h2, c2 = short.predict(x[:1, :2], verbose=0)
    np.testing.assert_allclose(c_v[0], c2[0], rtol=1e-6)


def test_summary_config_and_files(tmp_path, capsys):
    shenjing.utils.set_random_seed(4)
    model = _seq2seq("LSTM")
    model.summary()
    text = capsys.readouterr().out
    assert "encoder[0][1]" in text and "[(None, 5)" in text
    cfg = json.loads(model.to_json())["config"]["layers"]
    dec = next(c for c in cfg if c["name"] == "decoder")
    refs = dec["inbound_nodes"][0]["kwargs"]["initial_state"]
    assert [r["config"]["keras_history"] for r in refs] == [["encoder", 0, 1], ["encoder", 0, 2]]
    assert dec["config"]["return_state"] is True and "initial_state" not in dec["config"]
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(2, 6, 3)).astype(np.float32),
         rng.normal(size=(2, 4, 3)).astype(np.float32)]
    path = str(tmp_path / "s2s.keras")
    model.save(path)
    loaded = shenjing.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_calls():
    a = shenjing.Input((4, 3))
    with pytest.raises(ValueError, match="list of 2"):
        layers.LSTM(3)(a, initial_state=[shenjing.Input((3,))])
    with pytest.raises(ValueError, match="shape"):
        layers.GRU(3)(a, initial_state=[shenjing.Input((4,))])
    e = layers.Embedding(9, 3, mask_zero=True)(shenjing.Input((4,), dtype="int32"))
    with pytest.raises(ValueError, match="mask together with initial_state"):
        layers.GRU(3)(e, initial_state=[shenjing.Input((3,))])
    with pytest.raises(ValueError, match="return_state"):
        layers.Bidirectional(layers.LSTM(2, return_state=True))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_stateful_batches_continue_the_sequence(cell):
    """stateful=True: each batch starts from the previous batch's final states, so feeding a
    sequence in two halves equals feeding it whole; reset_states() starts again from 0."""
    shenjing.utils.set_random_seed(6)
    whole = shenjing.Sequential([layers.Input((8, 3)), CELLS[cell](4, return_sequences=True)])
    halves = shenjing.Sequential([layers.Input((4, 3)),
                                  CELLS[cell](4, return_sequences=True, stateful=True)])
    halves.set_weights(whole.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 8, 3)).astype(np.float32)
    ref = whole.predict(x, verbose=0)
    got = np.concatenate([halves.predict(x[:, :4], verbose=0),
                          halves.predict(x[:, 4:], verbose=0)], axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
    halves.layers[0].reset_states()
    np.testing.assert_allclose(halves.predict(x[:, :4], verbose=0), ref[:, :4], rtol=1e-6,
                               atol=1e-7)
    with pytest.raises(ValueError, match="batch size"):
        halves.predict(x[:1, :4], verbose=0)


class _FromZeroStates:
    """A stateful model's core with its states reset before every gradient call (each call
    would otherwise start from the previous one's final states)."""

    def __init__(self, model):
        self._model, self._core = model, model._core

    def compute_gradients(self, x, y):
        for layer in self._model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()
        return self._core.compute_gradients(x, y)

    def __getattr__(self, name):
        return getattr(self._core, name)


def test_stateful_gradients():
    shenjing.utils.set_random_seed(7)
    model = shenjing.Sequential([layers.Input((3, 2)), layers.LSTM(3, stateful=True),
                                 layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 1))
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)  # carried states: a second batch
    model._core = _FromZeroStates(model)
    assert finite_difference_check(model, x, y) > 0


def test_a_failed_call_changes_nothing_and_calls_must_agree():
    a = shenjing.Input((4, 3))
    lstm = layers.LSTM(5)
    with pytest.raises(ValueError):
        lstm(a, initial_state=[shenjing.Input((4,)), shenjing.Input((4,))])
    assert lstm(a).shape == (None, 5)  # still usable
    rnn = layers.SimpleRNN(4)
    rnn(a, initial_state=[shenjing.Input((4,))])
    masked = layers.Masking()(shenjing.Input((4, 3)))
    with pytest.raises(ValueError, match="initial_state before"):
        rnn(masked)
    with pytest.raises(TypeError, match="symbolic"):
        layers.LSTM(2, return_state=True)(a, mask=np.ones((1, 4)))
    with pytest.raises((TypeError, ValueError), match="initial_state"):
        layers.Bidirectional(layers.LSTM(2))(a, initial_state=[shenjing.Input((2,))] * 4)
