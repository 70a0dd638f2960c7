"""Axes of unknown size (``Input((None, F))``, ``Input((None,), dtype="int32")``): shapes stay
None where Keras shows None, every call may bring other sequence lengths, and training across
lengths (validation data of another length) is exactly training at one length."""
import numpy as np
import pytest

import shenjing
from shenjing import _core, layers


def _text(T):
    inp = shenjing.Input((T,), dtype="int32")
    x = layers.Embedding(40, 6)(inp)
    x = layers.Bidirectional(layers.LSTM(5, return_sequences=True))(x)
    x = layers.GRU(4)(x)
    return shenjing.Model(inp, layers.Dense(1, activation="sigmoid")(x))


def test_shapes_keep_unknown_axes_and_weights_exist_before_data(capsys):
    model = _text(None)
    assert model.input_shape == (None, None)
    assert [la.output_shape for la in model.layers[1:]] == [
        (None, None, 6), (None, None, 10), (None, 4), (None, 1)]
    assert model.count_params() == _text(8).count_params()
    model.summary()
    assert "(None, None, 10)" in capsys.readouterr().out


def test_each_call_may_have_its_own_length():
    shenjing.utils.set_random_seed(0)
    dynamic = _text(None)
    rng = np.random.default_rng(0)
    for T in (3, 11, 5):
        fixed = _text(T)
        fixed.set_weights(dynamic.get_weights())
        x = rng.integers(0, 40, (4, T))
        np.testing.assert_array_equal(dynamic.predict(x, verbose=0), fixed.predict(x, verbose=0))


def test_training_across_lengths_equals_training_at_one_length():
    """Validation data of another length rebuilds the core twice per epoch; the optimizer
    state, weights and random streams carry over, so the weights end bit-identical."""
    rng = np.random.default_rng(1)
    x = rng.integers(1, 40, (48, 9))
    y = (x[:, 0] > 20).astype(np.float32)
    xv = rng.integers(1, 40, (16, 4))
    yv = (xv[:, 0] > 20).astype(np.float32)

    def run(T, validation):
        shenjing.utils.set_random_seed(2)
        inp = shenjing.Input((T,), dtype="int32")
        h = layers.Embedding(40, 6)(inp)
        h = layers.Dropout(0.3)(layers.LSTM(5, return_sequences=True)(h))
        out = layers.Dense(1, activation="sigmoid")(layers.GRU(4)(h))
        model = shenjing.Model(inp, out)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        hist = model.fit(x, y, batch_size=16, epochs=3, verbose=0,
                         validation_data=(xv, yv) if validation else None)
        return model, hist.history

    dyn, hist = run(None, True)
    fixed, ref = run(9, False)
    assert hist["loss"] == ref["loss"] and "val_loss" in hist
    for a, b in zip(dyn.get_weights(), fixed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert dyn.optimizer.iterations == fixed.optimizer.iterations


def test_sequence_outputs_and_targets_per_step():
    shenjing.utils.set_random_seed(3)
    model = shenjing.Sequential([layers.Input((None, 3)),
                                 layers.GRU(4, return_sequences=True),
                                 layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(4)
    for T in (6, 2):
        x = rng.normal(size=(8, T, 3)).astype(np.float32)
        model.fit(x, rng.integers(0, 2, (8, T)), epochs=1, verbose=0)
        assert model.predict(x, verbose=0).shape == (8, T, 2)
    with pytest.raises(ValueError, match="incompatible"):
        model.predict(np.zeros((2, 4, 5), np.float32), verbose=0)


def test_files_keep_the_unknown_axes(tmp_path):
    shenjing.utils.set_random_seed(5)
    model = _text(None)
    x7 = np.random.default_rng(0).integers(0, 40, (3, 7))
    model.predict(x7, verbose=0)  # the core now runs length 7
    path = str(tmp_path / "dyn.keras")
    model.save(path)
    loaded = shenjing.models.load_model(path)
    assert loaded.input_shape == (None, None)
    x4 = x7[:, :4]
    for x in (x7, x4):
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # The native loader runs the graph at the length the core ran when saved.
    core = _core.load_model_file(path)[0]
    out = np.zeros((3, 1), np.float32)
    core.predict(x7.astype(np.float32), out, 0, 3)
    np.testing.assert_allclose(out, model.predict(x7, verbose=0), rtol=1e-6)


def test_windows_over_the_unknown_axis_and_weights_that_would_depend_on_it():
    model = shenjing.Sequential([layers.Input((None, 3)), layers.Conv1D(4, 3),
                                 layers.GlobalMaxPooling1D(), layers.Dense(2)])
    assert model.layers[0].output_shape == (None, None, 4)
    for T in (3, 20):
        assert model.predict(np.ones((2, T, 3), np.float32), verbose=0).shape == (2, 2)
    with pytest.raises(ValueError, match="unknown size"):
        shenjing.Sequential([layers.Input((None, 3)), layers.Flatten(), layers.Dense(2)])


def test_a_callback_predicting_at_another_length_does_not_rewind_training():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 40, (32, 6))
    y = (x[:, 0] > 20).astype(np.float32)

    class PredictOther(shenjing.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.predict(x[:2, :3], verbose=0)

    def run(callbacks):
        shenjing.utils.set_random_seed(4)
        model = _text(None)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
        return model

    plain, busy = run([]), run([PredictOther()])
    assert int(busy.optimizer.iterations) == int(plain.optimizer.iterations) == 8
    for a, b in zip(plain.get_weights(), busy.get_weights()):
        np.testing.assert_array_equal(a, b)
