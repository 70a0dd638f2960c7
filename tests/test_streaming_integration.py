"""The streaming path (PyDataset, generators) against the array path with the features other
parts of fit add: learning-rate schedules, (x, y, sample_weight) batches, class_weight and
TerminateOnNaN give the same training as with arrays."""
import re

import numpy as np
import pytest

import shenjing as keras
from shenjing import layers


def _model(optimizer="sgd", classes=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"),
                              layers.Dense(classes, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class Batches(keras.utils.PyDataset):
    def __init__(self, *arrays, batch=16, **kwargs):
        super().__init__(**kwargs)
        self.arrays, self.batch = arrays, batch

    def __len__(self):
        return -(-len(self.arrays[0]) // self.batch)

    def __getitem__(self, i):
        return tuple(a[i * self.batch:(i + 1) * self.batch] for a in self.arrays)


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)


def _same(a, b):
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)


def test_schedule_steps_in_the_stream_path():
    x, y = _data()
    sched = keras.optimizers.schedules.ExponentialDecay(0.2, decay_steps=2, decay_rate=0.5)
    a = _model(keras.optimizers.SGD(sched))
    a.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    b = _model(keras.optimizers.SGD(sched))
    b.fit(Batches(x, y), epochs=2, shuffle=False, verbose=0)
    _same(a, b)
    assert b.optimizer.learning_rate == pytest.approx(0.2 * 0.5 ** 4)


def test_sample_weight_batches_and_class_weight_match_arrays():
    x, y = _data()
    w = np.random.default_rng(1).uniform(0, 2, len(x)).astype(np.float32)
    a = _model()
    ha = a.fit(x, y, sample_weight=w, batch_size=16, epochs=2, shuffle=False, verbose=0)
    b = _model()
    hb = b.fit(Batches(x, y, w), epochs=2, shuffle=False, verbose=0)
    _same(a, b)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-12)
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    c = _model()
    c.fit(x, y, class_weight=cw, batch_size=16, epochs=2, shuffle=False, verbose=0)
    d = _model()
    d.fit(Batches(x, y), class_weight=cw, epochs=2, shuffle=False, verbose=0)
    _same(c, d)
    with pytest.raises(ValueError, match="sample_weight"):
        _model().fit(Batches(x, y), sample_weight=w, verbose=0)


def test_terminate_on_nan_in_the_stream_path(capsys):
    x, y = _data()
    x[20] = np.float32(3e38)
    model = _model()
    model.fit(Batches(x, y), epochs=2, shuffle=False, verbose=0,
              callbacks=[keras.callbacks.TerminateOnNaN()])
    assert re.match(r"Batch [12]: Invalid loss, terminating training", capsys.readouterr().out)
    assert len(model.history.history["loss"]) == 1


def test_ema_validation_freq_and_weighted_validation_match_arrays():
    x, y = _data()
    w = np.random.default_rng(2).uniform(0, 2, len(x)).astype(np.float32)
    kw = dict(epochs=3, validation_data=(x[:20], y[:20], w[:20]), validation_freq=2,
              verbose=0)
    a = _model(keras.optimizers.SGD(0.1, use_ema=True))
    ha = a.fit(x, y, batch_size=16, shuffle=False, **kw)
    b = _model(keras.optimizers.SGD(0.1, use_ema=True))
    hb = b.fit(Batches(x, y), shuffle=False, **kw)
    _same(a, b)  # the EMA averages become the weights at the end of both
    assert len(hb.history["val_loss"]) == 1
    np.testing.assert_allclose(ha.history["val_loss"], hb.history["val_loss"], rtol=1e-12)
    with pytest.raises(ValueError, match="validation_freq"):
        _model().fit(Batches(x, y), validation_data=(x, y), validation_freq=0, verbose=0)


def test_class_weight_on_a_sequence_output_is_refused_for_iterables_too():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 3)), layers.Dense(4, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.zeros((8, 5, 3), np.float32)
    y = np.zeros((8, 5), np.int64)
    for data in ((x, y), (Batches(x, y),)):
        kwargs = {"y": data[1]} if len(data) == 2 else {}
        with pytest.raises(ValueError, match="one class per sample"):
            model.fit(data[0], class_weight={0: 5.0}, verbose=0, **kwargs)
