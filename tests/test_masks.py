"""Keras masks: Embedding(mask_zero=True) and Masking make them (as ops), recurrent layers and
GlobalAveragePooling1D honour them, Dense and the like pass them on; checked against Keras's
rnn() written step by step in torch, padding independence, configs, files and errors."""
import json
import warnings

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers, ops

from test_gradients import finite_difference_check



def keras_masked_rnn(cell, x, W, U, b, mask, u, return_sequences, go_backwards, zero_output):
    """keras/src/backend/*/rnn.py with a mask: a masked step keeps the states and repeats the
    previous output (zeros before the first), or outputs zeros with zero_output_for_mask."""
    torch = pytest.importorskip("torch")
    n, T, _ = x.shape
    h = torch.zeros(n, u, dtype=x.dtype)
    c = torch.zeros(n, u, dtype=x.dtype)
    prev = torch.zeros(n, u, dtype=x.dtype)
    outs = []
    for t in (range(T - 1, -1, -1) if go_backwards else range(T)):
        xs, m = x[:, t], mask[:, t:t + 1] > 0
        if cell == "LSTM":
            i, f, g, o = (xs @ W + h @ U + b).split(u, 1)
            cn = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            hn = torch.sigmoid(o) * torch.tanh(cn)
            c = torch.where(m, cn, c)
        elif cell == "GRU":
            xz, rz = xs @ W + b[0], h @ U + b[1]
            z = torch.sigmoid(xz[:, :u] + rz[:, :u])
            r = torch.sigmoid(xz[:, u:2 * u] + rz[:, u:2 * u])
            hn = z * h + (1 - z) * torch.tanh(xz[:, 2 * u:] + r * rz[:, 2 * u:])
        else:
            hn = torch.tanh(xs @ W + h @ U + b)
        h = torch.where(m, hn, h)
        prev = torch.where(m, hn, prev)
        outs.append(torch.where(m, prev, torch.zeros_like(prev)) if zero_output else prev)
    return torch.stack(outs, 1) if return_sequences else outs[-1]


@pytest.mark.parametrize("cell,G", [("LSTM", 4), ("GRU", 3), ("SimpleRNN", 1)])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output", [False, True])
def test_masked_steps_match_keras_rnn(cell, G, return_sequences, go_backwards, zero_output):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(G * 10 + return_sequences * 2 + go_backwards)
    n, T, F, u = 5, 7, 3, 4
    x = rng.normal(size=(n, T, F))
    mask = (rng.random((n, T)) > 0.4).astype(np.float64)
    mask[0] = 0  # every step masked
    mask[1, -1] = 0
    mask[2] = 1
    W = rng.normal(0, 0.5, (F, G * u))
    U = rng.normal(0, 0.5, (u, G * u))
    b = rng.normal(0, 0.5, (2, G * u) if cell == "GRU" else (G * u,))
    xt = torch.tensor(x, requires_grad=True)
    pt = [torch.tensor(p, requires_grad=True) for p in (W, U, b)]
    y = keras_masked_rnn(cell, xt, *pt, torch.tensor(mask), u, return_sequences, go_backwards,
                         zero_output)
    dy = rng.normal(size=tuple(y.shape))
    (y * torch.tensor(dy)).sum().backward()
    cfg = {"units": u, "return_sequences": return_sequences, "go_backwards": go_backwards,
           "zero_output_for_mask": zero_output}
    got, dxs, grads = _core._run_layer(
        json.dumps({"class_name": cell, "config": cfg}), [[T, F], [T]],
        [x.astype(np.float32), mask.astype(np.float32)], dy.astype(np.float32), True,
        [p.astype(np.float32) for p in (W, U, b)])
    np.testing.assert_allclose(got, y.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dxs[0], xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    assert not dxs[1].any()  # a mask has no gradient
    for g, p in zip(grads, pt):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-5)


def _text_model(T, cell):
    return shenjing.Sequential([layers.Input((T,), dtype="int32"),
                                layers.Embedding(20, 6, mask_zero=True),
                                cell, layers.Dense(1, activation="sigmoid")])


@pytest.mark.parametrize("make", [lambda: layers.LSTM(5), lambda: layers.GRU(5),
                                  lambda: layers.SimpleRNN(5, go_backwards=True),
                                  lambda: layers.GRU(5, reset_after=False)])
def test_result_does_not_depend_on_padding(make):
    shenjing.utils.set_random_seed(0)
    short, long_ = _text_model(6, make()), _text_model(11, make())
    long_.set_weights(short.get_weights())
    x = np.array([[3, 4, 5, 0, 0, 0], [7, 1, 0, 0, 0, 0], [2, 9, 9, 9, 9, 1]])
    padded = np.pad(x, ((0, 0), (0, 5)))
    np.testing.assert_allclose(long_.predict(padded, verbose=0), short.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)
    # Training on padded batches gives the same weights whatever the padding.
    y = np.array([1, 0, 1])
    for m, data in ((short, x), (long_, padded)):
        m.compile(optimizer="sgd", loss="binary_crossentropy")
        m.fit(data, y, batch_size=3, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(short.get_weights(), long_.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_masking_layer_matches_the_shorter_sequence():
    shenjing.utils.set_random_seed(1)
    masked = shenjing.Sequential([layers.Input((5, 2)), layers.Masking(0.0), layers.GRU(3)])
    short = shenjing.Sequential([layers.Input((2, 2)), layers.GRU(3)])
    short.set_weights(masked.get_weights())
    x = np.random.default_rng(0).normal(size=(3, 5, 2)).astype(np.float32)
    x[:, 2:] = 0.0
    np.testing.assert_allclose(masked.predict(x, verbose=0), short.predict(x[:, :2], verbose=0),
                               rtol=1e-6, atol=1e-7)
    out = shenjing.Model(masked.inputs, masked.layers[0].output).predict(x, verbose=0)
    np.testing.assert_array_equal(out, x)  # the masked steps are zero already
    x[0, 3, 1] = 2.0  # one feature differs: the step is real, the others zeroed
    keep = shenjing.Sequential([layers.Input((5, 2)), layers.Masking(2.0)])
    got = keep.predict(x, verbose=0)
    assert np.all(got[:, 2:][x[:, 2:] == 0.0] == 0.0) and got[0, 3, 1] == 2.0


def test_global_average_pooling_over_unmasked_steps():
    inp = shenjing.Input((4,), dtype="int32")
    e = layers.Embedding(5, 3, mask_zero=True)
    out = layers.GlobalAveragePooling1D()(e(inp))
    model = shenjing.Model(inp, out)
    ids = np.array([[1, 2, 0, 0], [3, 3, 3, 4]])
    table = e.embeddings
    want = np.stack([table[[1, 2]].mean(0), table[[3, 3, 3, 4]].mean(0)])
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    assert finite_difference_check(model, ids, rng.normal(size=(2, 3))) > 0


def test_summary_config_and_files_follow_keras(tmp_path, capsys):
    inp = shenjing.Input((6,), dtype="int32")
    e = layers.Embedding(10, 4, mask_zero=True)(inp)
    lstm = layers.LSTM(3, return_sequences=True)
    h = lstm(e)
    dense = layers.Dense(2)
    d = dense(h)
    assert d._keras_mask is h._keras_mask is e._keras_mask  # passed on unchanged
    p = layers.GlobalAveragePooling1D()(d)
    assert p._keras_mask is None
    model = shenjing.Model(inp, p)
    op = e._keras_mask._node.layer.name
    assert op.startswith("not_equal")
    model.summary()
    text = capsys.readouterr().out
    assert "(NotEqual)" in text and text.count(op) >= 3  # its row and two "Connected to"
    # Keras 3.15.1 writes the mask as the call's kwargs (checked against its to_json()).
    cfg = json.loads(model.to_json())["config"]["layers"]
    by_name = {c["name"]: c for c in cfg}
    mask_ref = by_name[lstm.name]["inbound_nodes"][0]["kwargs"]["mask"]
    assert mask_ref["config"]["keras_history"] == [op, 0, 0]
    assert by_name[dense.name]["inbound_nodes"][0]["kwargs"] == {}
    x = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 0, 0, 0, 0]])
    path = str(tmp_path / "masked.keras")
    model.save(path)
    loaded = shenjing.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    core = _core.load_model_file(path)[0]  # the native loader runs the masks too
    out = np.zeros((2, 2), np.float32)
    core.predict(x.astype(np.float32), out, 0, 2)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-6)


def test_sequential_file_round_trip(tmp_path):
    shenjing.utils.set_random_seed(3)
    model = _text_model(5, layers.GRU(4))
    x = np.array([[1, 2, 0, 0, 0], [3, 0, 0, 0, 0]])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, np.array([1, 0]), epochs=1, verbose=0)
    path = str(tmp_path / "seq.keras")
    model.save(path)
    loaded = shenjing.models.load_model(path)
    assert [la.name for la in loaded.layers] == [la.name for la in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_masked_output_loss_is_refused_and_merges_refuse_masks():
    model = shenjing.Sequential([layers.Input((4,), dtype="int32"),
                                 layers.Embedding(9, 3, mask_zero=True),
                                 layers.LSTM(2, return_sequences=True)])
    with pytest.raises(ValueError, match="carries a mask"):
        model.compile(optimizer="adam", loss="mse")
    assert model.optimizer is None  # the failed compile changed nothing
    inp = shenjing.Input((4,), dtype="int32")
    a = layers.Embedding(9, 3, mask_zero=True)(inp)
    with pytest.raises(ValueError, match="carries a mask"):
        layers.Add()([a, a])


def test_layers_without_mask_support_drop_it_with_keras_warning():
    inp = shenjing.Input((6,), dtype="int32")
    e = layers.Embedding(9, 3, mask_zero=True)(inp)
    with pytest.warns(UserWarning, match="does not support masking"):
        c = layers.Conv1D(2, 3)(e)
    assert c._keras_mask is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layers.Dense(2)(e)._keras_mask is e._keras_mask


def test_any_and_all_ops():
    x = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-2.0, 3.0, 1.0]], np.float32)
    np.testing.assert_array_equal(ops.any(x, axis=-1), [True, False, True])
    np.testing.assert_array_equal(ops.all(x, axis=1), [False, False, True])
    inp = shenjing.Input((3,))
    out = ops.cast(ops.stack([ops.any(inp, axis=-1), ops.all(inp, axis=-1)], axis=1),
                   "float32")
    got = shenjing.Model(inp, out).predict(x, verbose=0)
    np.testing.assert_array_equal(got, [[1, 0], [0, 0], [1, 1]])


def test_custom_layers_get_the_mask_as_keras_passes_it():
    class MaskedMean(layers.Layer):
        """Mean over the unmasked steps, written with ops."""

        def call(self, x, mask=None):
            m = ops.expand_dims(ops.cast(mask, "float32"), -1)
            return ops.sum(x * m, axis=1) / ops.sum(m, axis=1)

    class Scale(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, x):
            return x * 2.0

    inp = shenjing.Input((4,), dtype="int32")
    e = layers.Embedding(5, 3, mask_zero=True)
    scaled = Scale()(e(inp))
    assert scaled._keras_mask is not None  # passed on: supports_masking
    with pytest.warns(UserWarning, match="does not support masking"):  # as Keras warns
        out = MaskedMean()(scaled)
    model = shenjing.Model(inp, out)
    ids = np.array([[1, 2, 0, 0], [3, 3, 3, 4]])
    table = e.embeddings
    want = 2 * np.stack([table[[1, 2]].mean(0), table[[3, 3, 3, 4]].mean(0)])
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-6)


def test_nested_models_and_batch_normalization_refuse_masks():
    inner = shenjing.Sequential([layers.Input((4, 3)), layers.LSTM(2)])
    e = layers.Embedding(9, 3, mask_zero=True)(shenjing.Input((4,), dtype="int32"))
    with pytest.raises(ValueError, match="mask"):
        inner(e)
    with pytest.raises(ValueError, match="batch statistics"):
        layers.BatchNormalization()(e)


@pytest.mark.parametrize("make", [lambda: layers.LSTM(3, return_sequences=True),
                                  lambda: layers.GRU(3, go_backwards=True,
                                                     return_sequences=True),
                                  lambda: layers.Bidirectional(layers.SimpleRNN(2,
                                                               return_sequences=True))])
def test_finite_differences_with_masked_steps(make):
    rng = np.random.default_rng(5)
    shenjing.utils.set_random_seed(5)
    model = shenjing.Sequential([layers.Input((5,), dtype="int32"),
                                 layers.Embedding(7, 3, mask_zero=True), make(),
                                 layers.GlobalAveragePooling1D(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[1, 2, 0, 3, 0], [4, 5, 6, 0, 0], [0, 0, 1, 1, 2]])
    assert finite_difference_check(model, x, rng.normal(size=(3, 2))) > 0
