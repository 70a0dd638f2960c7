"""Keras 3's single-batch calls (train_on_batch, test_on_batch, predict_on_batch), fit's
validation_steps / validation_batch_size / validation_freq, steps without a batch size, and
layer(x) / model(x, training=) on arrays, with Keras's return values."""
import warnings

import numpy as np
import pytest

import shenjing as keras
from shenjing import layers

RNG = np.random.default_rng(0)
X = RNG.normal(size=(10, 4)).astype(np.float32)
Y = RNG.normal(size=(10, 2)).astype(np.float32)
LABELS = RNG.integers(0, 3, 10)


def _model(metrics=None, classes=False, lr=0.05):
    keras.utils.set_random_seed(4)
    if classes:
        m = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
        m.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy", metrics=metrics)
    else:
        m = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
        m.compile(keras.optimizers.SGD(lr), "mse", metrics=metrics)
    return m


class Count(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.test, self.train, self.epochs = [], [], []

    def on_test_batch_end(self, batch, logs=None):
        self.test.append(batch)

    def on_train_batch_end(self, batch, logs=None):
        self.train.append(batch)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(sorted(logs))


def test_train_on_batch_is_one_step_of_fit():
    a, b = _model(), _model()
    loss = a.train_on_batch(X, Y)
    h = b.fit(X, Y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    assert isinstance(loss, float) and loss == pytest.approx(h.history["loss"][0], rel=1e-7)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert a.optimizer.iterations == 1


def test_return_values_and_metrics_reset_per_call():
    m = _model(["accuracy"], classes=True)
    first = m.test_on_batch(X[:5], LABELS[:5], return_dict=True)
    second = m.test_on_batch(X[5:], LABELS[5:], return_dict=True)
    p = m.predict(X, verbose=0).argmax(1)
    # Keras 3 resets the metrics at each call: each value is its own batch's.
    assert first["accuracy"] == pytest.approx((p[:5] == LABELS[:5]).mean())
    assert second["accuracy"] == pytest.approx((p[5:] == LABELS[5:]).mean())
    values = m.test_on_batch(X, LABELS)
    assert isinstance(values, list) and len(values) == 2
    assert values == pytest.approx(m.evaluate(X, LABELS, batch_size=10, verbose=0))
    logs = m.train_on_batch(X, LABELS, return_dict=True)
    assert sorted(logs) == ["accuracy", "loss"]
    plain = _model()
    assert isinstance(plain.test_on_batch(X, Y), float)
    assert sorted(plain.test_on_batch(X, Y, return_dict=True)) == ["loss"]


def test_train_on_batch_weights_and_class_weight():
    a, b = _model(classes=True), _model(classes=True)
    cw = {0: 3.0, 2: 0.5}
    a.train_on_batch(X, LABELS, class_weight=cw)
    b.train_on_batch(X, LABELS, sample_weight=np.array([cw.get(int(v), 1.0) for v in LABELS],
                                                       np.float32))
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    w = RNG.uniform(0, 2, 10).astype(np.float32)
    p = a.predict(X, verbose=0)
    loss = a.test_on_batch(X, LABELS, sample_weight=w)
    assert loss == pytest.approx((w * -np.log(p[np.arange(10), LABELS])).mean(), rel=1e-5)


def test_predict_on_batch_and_model_call():
    m = _model()
    out = m.predict_on_batch(X)
    assert isinstance(out, np.ndarray) and out.shape == (10, 2)
    np.testing.assert_array_equal(out, m.predict(X, verbose=0))
    np.testing.assert_array_equal(m(X, training=True), out)  # no layer differs in training
    d = keras.Sequential([keras.Input((4,)), layers.Dropout(0.5), layers.Dense(2)])
    with pytest.raises(ValueError, match="Dropout"):
        d(X, training=True)
    assert d(X).shape == (10, 2)


def test_compile_is_needed():
    m = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    for call in (lambda: m.train_on_batch(X, Y), lambda: m.test_on_batch(X, Y)):
        with pytest.raises(ValueError, match="compile"):
            call()


def test_validation_freq_int_and_list():
    m = _model()
    c = Count()
    h = m.fit(X, Y, epochs=4, validation_data=(X, Y), validation_freq=2, verbose=0,
              callbacks=[c])
    assert len(h.history["loss"]) == 4 and len(h.history["val_loss"]) == 2
    assert c.epochs == [["loss"], ["loss", "val_loss"]] * 2
    h = _model().fit(X, Y, epochs=4, validation_data=(X, Y), validation_freq=[1, 4], verbose=0)
    assert len(h.history["val_loss"]) == 2
    for bad in (0, -1, (1, 2), 1.5, "2", [1.5]):
        with pytest.raises(ValueError, match="validation_freq"):
            m.fit(X, Y, validation_data=(X, Y), validation_freq=bad, verbose=0)


def test_validation_steps_and_batch_size():
    m = _model()
    c = Count()
    h = m.fit(X, Y, epochs=1, batch_size=4, validation_data=(X, Y), validation_steps=2,
              verbose=0, callbacks=[c])
    assert c.test == [0, 1]  # the first two batches of 4
    assert h.history["val_loss"][0] == pytest.approx(m.evaluate(X[:8], Y[:8], verbose=0),
                                                     rel=1e-6)
    c = Count()
    m.fit(X, Y, epochs=1, batch_size=4, validation_data=(X, Y), validation_batch_size=3,
          verbose=0, callbacks=[c])
    assert c.test == [0, 1, 2, 3]
    # Without batch_size, validation_steps sets it to ceil(samples / steps), as Keras.
    c = Count()
    m.fit(X, Y, epochs=1, validation_data=(X, Y), validation_steps=2, verbose=0, callbacks=[c])
    assert c.test == [0, 1]
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="validation_steps"):
            m.fit(X, Y, validation_data=(X, Y), validation_steps=bad, verbose=0)
        with pytest.raises(ValueError, match="validation_batch_size"):
            m.fit(X, Y, validation_data=(X, Y), validation_batch_size=bad, verbose=0)


def test_steps_without_batch_size_and_evaluate_steps():
    m = _model()
    c = Count()
    m.fit(X, Y, epochs=1, steps_per_epoch=2, verbose=0, callbacks=[c])
    assert c.train == [0, 1]  # batches of ceil(10 / 2) = 5: every sample once
    assert m.evaluate(X, Y, steps=2, verbose=0) == pytest.approx(m.evaluate(X, Y, verbose=0))
    assert m.evaluate(X, Y, batch_size=3, steps=2, verbose=0) == pytest.approx(
        m.evaluate(X[:6], Y[:6], verbose=0), rel=1e-6)
    with pytest.warns(UserWarning, match="ran out of data"):
        m.evaluate(X, Y, batch_size=5, steps=3, verbose=0)
    with pytest.raises(ValueError, match="steps"):
        m.evaluate(X, Y, steps=0, verbose=0)


def test_layer_called_on_arrays_builds_and_keeps_its_weights():
    keras.utils.set_random_seed(0)
    dense = layers.Dense(3, activation="relu")
    out = dense(X)
    assert isinstance(out, np.ndarray) and out.shape == (10, 3)
    k, b = dense.get_weights()
    np.testing.assert_allclose(out, np.maximum(X @ k + b, 0), rtol=1e-5, atol=1e-6)
    assert len(dense.weights) == 2
    # The same weights in a model built later.
    m = keras.Sequential([keras.Input((4,)), dense])
    np.testing.assert_array_equal(m.predict(X, verbose=0), out)

    class Scale(layers.Layer):
        def build(self, input_shape):
            self.s = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.s * 2.0

    s = Scale()
    np.testing.assert_allclose(s(X), X * 2.0, rtol=1e-6)
    assert [w.shape for w in s.weights] == [(4,)]


def test_train_on_batch_keeps_a_schedule():
    """A learning-rate schedule stays a schedule through train_on_batch (it was once replaced
    by its current value)."""
    x = np.random.default_rng(5).normal(size=(16, 4)).astype(np.float32)
    y = x[:, :2].copy()

    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        sched = keras.optimizers.schedules.ExponentialDecay(0.2, decay_steps=1, decay_rate=0.5)
        m.compile(optimizer=keras.optimizers.SGD(sched), loss="mse")
        return m

    a, b = model(), model()
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for _ in range(2):
        b.train_on_batch(x[:8], y[:8])
        b.train_on_batch(x[8:], y[8:])
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)
    assert b.optimizer.learning_rate == pytest.approx(0.2 * 0.5 ** 4)
