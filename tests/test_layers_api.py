"""The Keras 3 user-facing API: building, summary, weights, fit/evaluate/predict, History,
callbacks, dropout, seeds, data loaders and configuration."""
import re

import numpy as np
import pytest

import shenjing
from shenjing import activations, callbacks, layers, losses, metrics, optimizers, utils
from shenjing.data import DataLoader, Dataset


def _data(n=40, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def _classifier(d=4, classes=3, optimizer="sgd", metrics_=("accuracy",), seed=0):
    shenjing.utils.set_random_seed(seed)
    model = shenjing.Sequential([layers.Input((d,)), layers.Dense(8, activation="relu"),
                                 layers.Dense(classes, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=list(metrics_))
    return model


def _mnist_mlp():
    return shenjing.Sequential([layers.Input(shape=(784,)),
                                layers.Dense(128, activation="relu"),
                                layers.Dropout(0.2),
                                layers.Dense(10, activation="softmax")])


# ---------------------------------------------------------------------------------------------
# Building


def test_sequential_list_add_and_input_shapes():
    a = shenjing.Sequential([layers.Input((4,)), layers.Dense(3)])
    b = shenjing.Sequential()
    b.add(layers.Input(shape=(4,)))
    b.add(layers.Dense(3))
    c = shenjing.Sequential([layers.Dense(3, input_shape=(4,))])
    d = shenjing.Sequential([layers.Dense(3, input_dim=4)])
    for m in (a, b, c, d):
        assert m.built
        assert m.input_shape == (None, 4)
        assert m.output_shape == (None, 3)
        assert m.layers[0].kernel.shape == (4, 3)
        assert m.layers[0].bias.shape == (3,)
        assert m.count_params() == 15
    assert len(b.layers) == 1 and isinstance(b.layers[0], layers.Dense)


def test_subclassing_sequential():
    class MLP(shenjing.Sequential):
        def __init__(self, hidden):
            super().__init__(name="mlp")
            self.add(layers.Input((5,)))
            self.add(layers.Dense(hidden, activation="relu"))
            self.add(layers.Dense(2))

    model = MLP(7)
    assert isinstance(model, shenjing.Sequential)
    assert model.name == "mlp"
    assert model.count_params() == 5 * 7 + 7 + 7 * 2 + 2
    model.compile(optimizer="adam", loss="mse")
    x = np.zeros((3, 5), np.float32)
    assert model.predict(x, verbose=0).shape == (3, 2)


def test_builds_on_first_fit_without_input_shape():
    model = shenjing.Sequential([layers.Dense(6, activation="tanh"), layers.Dense(2)])
    assert not model.built
    assert model.input_shape is None
    with pytest.raises(ValueError, match="not yet been built"):
        model.count_params()
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    model.fit(x, np.zeros((10, 2), np.float32), epochs=1, verbose=0)
    assert model.built
    assert model.input_shape == (None, 3)
    assert model.layers[0].kernel.shape == (3, 6)
    assert model.count_params() == 3 * 6 + 6 + 6 * 2 + 2
    assert model.predict(x, verbose=0).shape == (10, 2)


def test_build_method():
    model = shenjing.Sequential([layers.Dense(4)])
    model.build((None, 9))
    assert model.built and model.layers[0].kernel.shape == (9, 4)


def test_summary_keras_mnist_mlp():
    model = _mnist_mlp()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0].startswith("Model:")
    rows = {re.search(r"\((\w+)\)", l).group(1): l for l in lines
            if re.search(r"\((Dense|Dropout)\)", l)}
    assert len([l for l in lines if "(Dense)" in l]) == 2
    dense_rows = [l for l in lines if "(Dense)" in l]
    assert "(None, 128)" in dense_rows[0] and "100,480" in dense_rows[0]
    assert "(None, 10)" in dense_rows[1] and "1,290" in dense_rows[1]
    assert re.search(r"\b0\s*│\s*$", rows["Dropout"])
    assert "Total params: 101,770" in text
    assert "Trainable params: 101,770" in text
    assert "Non-trainable params: 0" in text
    assert model.count_params() == 101_770
    assert [l.count_params() for l in model.layers] == [100_480, 0, 1_290]


def test_summary_prints_to_stdout_by_default(capsys):
    shenjing.Sequential([layers.Input((3,)), layers.Dense(2)]).summary()
    assert "Total params: 8" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Weights


def test_get_set_weights_round_trip():
    model = _classifier()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 8), (8,), (8, 3), (3,)]
    assert all(w.dtype == np.float32 for w in weights)
    new = [np.full(w.shape, 0.01 * (i + 1), dtype=np.float64) for i, w in enumerate(weights)]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    # get_weights returns copies: changing them does not change the model.
    copy = model.get_weights()
    copy[0][...] = 123.0
    assert model.layers[0].kernel[0, 0] == np.float32(0.01)
    model.layers[0].set_weights([new[0] * 2, new[1] * 2])
    np.testing.assert_array_equal(model.layers[0].kernel, np.float32(0.02))


def test_weights_are_zero_copy_views():
    model = _classifier()
    kernel = model.layers[0].kernel
    assert isinstance(kernel, np.ndarray) and kernel.dtype == np.float32
    assert model.layers[0].weights[0] is kernel
    before = kernel.copy()
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    # The same array object shows the trained values.
    assert not np.array_equal(kernel, before)
    np.testing.assert_array_equal(kernel, model.get_weights()[0])
    # Writing into the view changes the model.
    out_before = model.predict(x[:3], verbose=0)
    model.layers[1].bias[...] += np.array([5.0, 0.0, 0.0], np.float32)
    out_after = model.predict(x[:3], verbose=0)
    assert np.all(out_after[:, 0] > out_before[:, 0])


def test_weights_survive_adding_a_layer():
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3)])
    w = model.get_weights()
    model.add(layers.Dense(2))
    for a, b in zip(w, model.get_weights()[:2]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# fit / evaluate / predict


def test_evaluate_return_types_and_values():
    x, y = _data(30)
    with_metrics = _classifier()
    result = with_metrics.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    probs = with_metrics.predict(x, verbose=0).astype(np.float64)
    ref_loss = -np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1)))
    ref_acc = np.mean(np.argmax(probs, 1) == y)
    assert result[0] == pytest.approx(ref_loss, rel=1e-5)
    assert result[1] == pytest.approx(ref_acc)
    d = with_metrics.evaluate(x, y, verbose=0, return_dict=True)
    assert set(d) == {"loss", "accuracy"}
    assert d["loss"] == pytest.approx(result[0]) and d["accuracy"] == pytest.approx(result[1])
    # batch size does not change the result
    assert with_metrics.evaluate(x, y, batch_size=7, verbose=0)[0] == pytest.approx(ref_loss,
                                                                                   rel=1e-5)
    no_metrics = _classifier(metrics_=())
    loss = no_metrics.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    assert loss == pytest.approx(ref_loss, rel=1e-5)  # same seed, same weights


def test_predict_shape_dtype_and_batching():
    model = _mnist_mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((37, 784))
    out = model.predict(x, verbose=0)
    assert out.shape == (37, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.predict(x, batch_size=5, verbose=0), out, rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(model(x.astype(np.float32)), out, rtol=1e-6, atol=1e-7)


def test_history_keys_and_lengths():
    x, y = _data(50)
    model = _classifier()
    history = model.fit(x, y, epochs=3, batch_size=10, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert history.params["epochs"] == 3 and history.params["steps"] == 4  # 40 / 10
    assert model.history is history
    assert all(isinstance(v, float) for vs in history.history.values() for v in vs)
    no_val = _classifier().fit(x, y, epochs=2, verbose=0)
    assert set(no_val.history) == {"loss", "accuracy"}
    # SGD on a classifier: the training loss goes down.
    h = _classifier().fit(x, y, epochs=10, batch_size=10, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_fit_reports_the_mean_training_loss():
    """Full-batch epoch: the logged loss is the loss at the weights before the step."""
    x, y = _data(20)
    model = _classifier(metrics_=())
    before = model.evaluate(x, y, verbose=0)
    h = model.fit(x, y, batch_size=20, epochs=1, shuffle=False, verbose=0)
    assert h.history["loss"][0] == pytest.approx(before, rel=1e-5)


def test_validation_split_takes_the_last_samples():
    x, y = _data(50, seed=3)
    model = _classifier(optimizer=optimizers.SGD(0.1), seed=5)
    ref = _classifier(optimizer=optimizers.SGD(0.1), seed=5)
    h = model.fit(x, y, epochs=2, batch_size=40, validation_split=0.2, shuffle=False, verbose=0)
    ref.fit(x[:40], y[:40], epochs=2, batch_size=40, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    val_loss, val_acc = model.evaluate(x[40:], y[40:], verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert h.history["val_accuracy"][-1] == pytest.approx(val_acc)


def test_validation_data():
    x, y = _data(30)
    vx, vy = _data(12, seed=9)
    model = _classifier()
    h = model.fit(x, y, epochs=2, validation_data=(vx, vy), verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(model.evaluate(vx, vy, verbose=0)[0],
                                                      rel=1e-6)


class _Recorder(callbacks.Callback):
    """Records the weights at the end of every epoch and can inject a fake monitored value."""

    def __init__(self, fake=None):
        super().__init__()
        self.fake = fake
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        if self.fake is not None:
            logs["fake"] = self.fake[epoch]


def test_early_stopping_patience_and_restore_best_weights():
    x, y = _data(30)
    model = _classifier()
    rec = _Recorder(fake=[3.0, 2.0, 1.0, 1.5, 1.2, 0.1, 0.1, 0.1])
    stop = callbacks.EarlyStopping(monitor="fake", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=8, batch_size=10, callbacks=[rec, stop], verbose=0)
    # Best at epoch 2; epochs 3 and 4 do not improve: stop after epoch 4.
    assert len(h.history["loss"]) == 5
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2 and stop.best == 1.0
    for got, best in zip(model.get_weights(), rec.weights[2]):
        np.testing.assert_array_equal(got, best)
    assert not np.array_equal(rec.weights[2][0], rec.weights[4][0])


def test_early_stopping_without_restore_keeps_last_weights():
    x, y = _data(30)
    model = _classifier()
    rec = _Recorder(fake=[1.0, 2.0, 3.0, 4.0, 5.0])
    stop = callbacks.EarlyStopping(monitor="fake", patience=1)
    h = model.fit(x, y, epochs=5, callbacks=[rec, stop], verbose=0)
    assert len(h.history["loss"]) == 2
    for got, last in zip(model.get_weights(), rec.weights[-1]):
        np.testing.assert_array_equal(got, last)


def test_early_stopping_on_val_loss():
    """Training towards y while validating against -y: val_loss only gets worse."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = x @ rng.normal(size=(4, 2)).astype(np.float32)
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(2)])
    model.compile(optimizer=optimizers.SGD(0.05), loss="mse")
    rec = _Recorder()
    stop = callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    h = model.fit(x, y, epochs=20, batch_size=8, validation_data=(x, -y),
                  callbacks=[rec, stop], verbose=0)
    val = h.history["val_loss"]
    assert all(b > a for a, b in zip(val, val[1:]))  # precondition of the test
    assert len(val) == 4
    for got, best in zip(model.get_weights(), rec.weights[0]):
        np.testing.assert_array_equal(got, best)


def test_verbose_0_prints_nothing(capsys):
    x, y = _data(20)
    model = _classifier()
    model.fit(x, y, epochs=2, validation_split=0.25, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = _data(20)
    model = _classifier()
    model.fit(x, y, epochs=3, batch_size=5, verbose=2)
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    progress = [l for l in lines if re.match(r"^4/4 - ", l)]
    assert len(progress) == 3
    assert [l for l in lines if l.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3",
                                                           "Epoch 3/3"]
    assert len(lines) == 6
    assert all("loss: " in l and "accuracy: " in l for l in progress)


def test_dropout_inactive_in_predict_active_in_training():
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((6,)), layers.Dense(50, activation="relu"),
                                 layers.Dropout(0.5), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    y = np.zeros((16, 2), np.float32)
    a, b = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(a, b)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(np.mean(a.astype(np.float64) ** 2),
                                                            rel=1e-5)
    # Training behaviour: a fresh mask each call, so the losses differ.
    l1 = model._core.compute_gradients(x, y)
    l2 = model._core.compute_gradients(x, y)
    assert l1 != l2
    # Quantitatively: ones through Dropout(rate) give mask values 0 or 1/(1-rate).
    probe = shenjing.Sequential([layers.Input((5000,)), layers.Dropout(0.2, seed=3)])
    probe.compile(optimizer="sgd", loss="mse")
    ones, zeros = np.ones((2, 5000), np.float32), np.zeros((2, 5000), np.float32)
    kept = probe._core.compute_gradients(ones, zeros) * 0.8 ** 2  # mean(mask^2) * (1-rate)^2
    assert kept == pytest.approx(0.8, abs=0.02)
    np.testing.assert_array_equal(probe.predict(ones, verbose=0), ones)


def test_same_seed_same_training():
    x, y = _data(40)

    def train(seed):
        shenjing.utils.set_random_seed(seed)
        model = shenjing.Sequential([layers.Input((4,)), layers.Dense(16, activation="relu"),
                                     layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=8, shuffle=True, verbose=0)
        return model.get_weights()

    a, b, c = train(7), train(7), train(8)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a[0], c[0])


def test_to_categorical():
    out = utils.to_categorical([0, 2, 1, 2])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1, 2]])
    assert utils.to_categorical(np.array([1, 0]), num_classes=5).shape == (2, 5)
    assert utils.to_categorical(np.array([[1], [0]])).shape == (2, 2)  # trailing 1 dropped
    np.testing.assert_array_equal(utils.to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        utils.to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        utils.to_categorical([0.5, 1])


# ---------------------------------------------------------------------------------------------
# Data loaders


def test_dataset_and_dataloader_batching():
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    ds = Dataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi, [6, 7])
    assert yi == 3
    loader = DataLoader(ds, batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(b[1]) for b in dropped] == [4, 4]
    # Shuffling: a permutation, reproducible with a seed, different between passes.
    a = DataLoader(ds, batch_size=3, shuffle=True, seed=11)
    b = DataLoader(ds, batch_size=3, shuffle=True, seed=11)
    pa = [np.concatenate([bt[1] for bt in a]) for _ in range(2)]
    pb = [np.concatenate([bt[1] for bt in b]) for _ in range(2)]
    np.testing.assert_array_equal(pa[0], pb[0])
    np.testing.assert_array_equal(pa[1], pb[1])
    assert sorted(pa[0]) == list(range(10))
    assert not np.array_equal(pa[0], pa[1])  # a new order every pass
    assert not np.array_equal(pa[0], y)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="samples"):
        Dataset(x, y[:5])


def test_fit_evaluate_predict_accept_a_dataloader():
    x, y = _data(30)
    a = _classifier(optimizer=optimizers.SGD(0.1), seed=2)
    b = _classifier(optimizer=optimizers.SGD(0.1), seed=2)
    loader = DataLoader(Dataset(x, y), batch_size=8)
    ha = a.fit(loader, epochs=2, verbose=0)
    hb = b.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert a.optimizer.iterations == 8  # ceil(30 / 8) * 2
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    assert ha.history["loss"] == pytest.approx(hb.history["loss"], rel=1e-6)
    assert a.evaluate(loader, verbose=0)[0] == pytest.approx(b.evaluate(x, y, verbose=0)[0],
                                                             rel=1e-6)
    np.testing.assert_allclose(a.predict(loader, verbose=0), b.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)
    dropped = _classifier()
    dropped.fit(DataLoader(Dataset(x, y), batch_size=8, drop_last=True), epochs=1, verbose=0)
    assert dropped.optimizer.iterations == 3
    shuffled = _classifier()
    shuffled.fit(DataLoader(Dataset(x, y), batch_size=8, shuffle=True, seed=0), epochs=1,
                 verbose=0)
    assert shuffled.optimizer.iterations == 4


def test_dataloader_with_seed_gives_reproducible_training():
    x, y = _data(30)

    def train():
        model = _classifier(optimizer=optimizers.SGD(0.1), seed=4)
        model.fit(DataLoader(Dataset(x, y), batch_size=8, shuffle=True, seed=5), epochs=2,
                  verbose=0)
        return model.get_weights()

    for wa, wb in zip(train(), train()):
        np.testing.assert_array_equal(wa, wb)


# ---------------------------------------------------------------------------------------------
# Configuration and identifiers


def test_threads_and_config():
    old = shenjing.get_num_threads()
    try:
        shenjing.set_num_threads(1)
        assert shenjing.get_num_threads() == 1
        cfg = shenjing.config()
        assert cfg["threads"] == 1
        assert cfg["version"] == shenjing.__version__
        assert cfg["isa"] in shenjing._core._isas()
        # Results do not depend on the thread count.
        x, y = _data(64)
        model = _classifier()
        one = model.predict(x, verbose=0)
        shenjing.set_num_threads(2)
        assert shenjing.get_num_threads() == 2
        np.testing.assert_allclose(model.predict(x, verbose=0), one, rtol=1e-6, atol=1e-7)
    finally:
        shenjing.set_num_threads(old)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            shenjing.set_num_threads(bad)


def test_compile_accepts_strings_objects_and_functions():
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(12, 2)).astype(np.float32)
    results = []
    for opt, loss, mets in [
        ("adam", "mse", ["mae"]),
        (optimizers.Adam(), losses.MeanSquaredError(), [metrics.MeanAbsoluteError()]),
        (optimizers.Adam(), losses.mean_squared_error, [metrics.mean_absolute_error]),
        ("Adam", "mean_squared_error", "mean_absolute_error"),
    ]:
        shenjing.utils.set_random_seed(0)
        model = shenjing.Sequential([layers.Input((4,)), layers.Dense(2)])
        model.compile(optimizer=opt, loss=loss, metrics=mets)
        assert isinstance(model.optimizer, optimizers.Adam)
        assert isinstance(model.loss, losses.MeanSquaredError)
        pred = model.predict(x, verbose=0).astype(np.float64)
        loss_value, mae = model.evaluate(x, y, verbose=0)
        assert loss_value == pytest.approx(np.mean((pred - y) ** 2), rel=1e-5)
        assert mae == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-5)
        results.append(loss_value)
    assert results == pytest.approx([results[0]] * 4)


def test_activations_given_as_functions():
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    for fn in (activations.relu, activations.tanh, activations.sigmoid, activations.gelu,
               activations.softmax, activations.swish, activations.silu):
        dense = layers.Dense(4, activation=fn)
        model = shenjing.Sequential([layers.Input((4,)), dense])
        expected_name = "swish" if fn is activations.silu else fn.__name__
        assert dense.activation == expected_name
        model.layers[0].kernel[...] = np.eye(4, dtype=np.float32)
        np.testing.assert_allclose(model.predict(x, verbose=0), fn(x.astype(np.float64)),
                                   rtol=1e-5, atol=1e-6, err_msg=expected_name)
        act_model = shenjing.Sequential([layers.Input((4,)), layers.Activation(fn)])
        np.testing.assert_allclose(act_model.predict(x, verbose=0), fn(x.astype(np.float64)),
                                   rtol=1e-5, atol=1e-6)
    assert activations.get("relu") is activations.relu


def test_metric_accuracy_resolution():
    """'accuracy' becomes sparse/categorical/binary accuracy from the target shapes."""
    x, y = _data(30)
    sparse = _classifier()
    probs = sparse.predict(x, verbose=0)
    acc = np.mean(np.argmax(probs, 1) == y)
    assert sparse.evaluate(x, y, verbose=0)[1] == pytest.approx(acc)
    cat = shenjing.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    cat.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    onehot = utils.to_categorical(y, 3)
    assert cat.evaluate(x, onehot, verbose=0)[1] == pytest.approx(
        np.mean(np.argmax(cat.predict(x, verbose=0), 1) == y))
    binary = shenjing.Sequential([layers.Input((4,)), layers.Dense(1, activation="sigmoid")])
    binary.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    yb = (y > 0).astype(np.float32)
    p = binary.predict(x, verbose=0)[:, 0]
    assert binary.evaluate(x, yb, verbose=0)[1] == pytest.approx(np.mean((p > 0.5) == yb))
