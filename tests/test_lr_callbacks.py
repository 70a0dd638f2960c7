"""LearningRateScheduler and ReduceLROnPlateau as Keras 3's: the rates, the messages, the
``learning_rate`` log entry; a rate changed by a callback reaches the core at once (the
epoch's or the batch's own step uses it, as in Keras)."""
import warnings

import numpy as np
import pytest

import shenjing
from shenjing import callbacks, layers, optimizers

X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)


def _model(opt=None, metrics=None):
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(2)])
    model.compile(optimizer=opt or optimizers.SGD(0.1), loss="mse", metrics=metrics)
    rng = np.random.default_rng(42)
    model.set_weights([rng.uniform(-0.8, 0.8, w.shape) for w in model.get_weights()])
    return model


def _sgd_by_hand(model, lrs, batch):
    for t, lr in enumerate(lrs):
        rows = slice((t * batch) % len(X), (t * batch) % len(X) + batch)
        model._core.compute_gradients(np.ascontiguousarray(X[rows]),
                                      np.ascontiguousarray(Y[rows]))
        for layer in model.layers:
            for _, value, grad in layer._views:
                value -= np.float32(lr) * grad
    return model.get_weights()


# Keras 3.15.1 (KERAS_BACKEND=torch) printed these with:
# import numpy as np, keras
# X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
# Y = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)
# m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
# m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
# w0 = m.get_weights()[0].copy()
# class C(keras.callbacks.Callback):
#     def on_train_batch_begin(self, b, logs=None):
#         if b == 0: self.model.optimizer.learning_rate = 0.0
# m.fit(X, Y, batch_size=6, epochs=1, verbose=0, callbacks=[C()])
# print("same-batch effect:", np.allclose(m.get_weights()[0], w0))
# # LearningRateScheduler messages + logs
# m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
# m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
# h = m.fit(X, Y, batch_size=3, epochs=3, verbose=0, validation_data=(X, Y), callbacks=[
#     keras.callbacks.LearningRateScheduler(lambda e, lr: lr * 0.5, verbose=1),
#     keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1,
#                                       min_delta=10.0, verbose=1)])
# print(h.history["learning_rate"])
# r = keras.callbacks.ReduceLROnPlateau(monitor="val_mae")
# m.fit(X, Y, epochs=1, verbose=0, validation_data=(X,Y), callbacks=[r])
# print(r.monitor_op, r.min_delta)
# try:
#     m.fit(X, Y, epochs=1, verbose=0,
#           callbacks=[keras.callbacks.LearningRateScheduler(lambda e: 1)])
# except Exception as e: print(type(e).__name__, e)
KERAS_MESSAGES = """
Epoch 1: LearningRateScheduler setting learning rate to 0.05000000074505806.

Epoch 2: LearningRateScheduler setting learning rate to 0.02500000037252903.

Epoch 2: ReduceLROnPlateau reducing learning rate to 0.012500000186264515.

Epoch 3: LearningRateScheduler setting learning rate to 0.0062500000931322575.

Epoch 3: ReduceLROnPlateau reducing learning rate to 0.0031250000465661287.
"""
KERAS_HISTORY = [0.05000000074505806, 0.02500000037252903, 0.0062500000931322575]


def test_scheduler_and_plateau_messages_logs_and_rates_as_keras(capsys):
    model = _model(metrics=["mae"])
    h = model.fit(X, Y, batch_size=3, epochs=3, verbose=0, shuffle=False,
                  validation_data=(X, Y), callbacks=[
                      callbacks.LearningRateScheduler(lambda e, lr: lr * 0.5, verbose=1),
                      callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1,
                                                  min_delta=10.0, verbose=1)])
    assert capsys.readouterr().out == KERAS_MESSAGES
    assert h.history["learning_rate"] == KERAS_HISTORY
    # Each epoch's 2 steps used the rate set at its start.
    ref = _sgd_by_hand(_model(), [0.05, 0.05, 0.025, 0.025, 0.00625, 0.00625], 3)
    for a, b in zip(model.get_weights(), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_one_argument_schedule_and_epochs_from_initial_epoch():
    seen = []

    def schedule(epoch):
        seen.append(epoch)
        return 0.1 / (epoch + 1)

    model = _model()
    model.fit(X, Y, batch_size=6, epochs=3, initial_epoch=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(schedule)])
    assert seen == [1, 2]
    assert model.optimizer.learning_rate == pytest.approx(0.1 / 3)
    ref = _sgd_by_hand(_model(), [0.05, 0.1 / 3], 6)
    for a, b in zip(model.get_weights(), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_scheduler_refuses_non_float_and_schedule_optimizers():
    with pytest.raises(ValueError, match="should be a float. Got: 1"):
        _model().fit(X, Y, epochs=1, verbose=0,
                     callbacks=[callbacks.LearningRateScheduler(lambda e: 1)])
    sched = optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(TypeError, match="not settable"):
        _model(optimizers.SGD(sched)).fit(
            X, Y, epochs=1, verbose=0,
            callbacks=[callbacks.LearningRateScheduler(lambda e, lr: lr)])
    with pytest.raises(ValueError, match="callable"):
        callbacks.LearningRateScheduler(0.1)


# Keras 3.15.1's rates for a scripted monitor, from:
# import numpy as np, keras
# m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
# m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
# seq = [1.0, 0.995, 0.99, 0.98, 0.985, 0.99, 0.97, 0.975, 0.976, 0.977, 0.978, 0.979, 0.98]
# r = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1,
#                                       min_lr=0.02, min_delta=0.01)
# r.set_model(m); r.on_train_begin()
# out = []
# for e, v in enumerate(seq):
#     logs = {"val_loss": v}
#     r.on_epoch_end(e, logs)
#     out.append(logs["learning_rate"])
# out.append(float(np.asarray(m.optimizer.learning_rate)))
# print(out)
# r = keras.callbacks.ReduceLROnPlateau(monitor="acc", mode="max", factor=0.2, patience=1)
# r.set_model(m); r.on_train_begin(); out = []
# for e, v in enumerate([0.5, 0.6, 0.6, 0.55, 0.7, 0.7]):
#     logs = {"acc": v}; r.on_epoch_end(e, logs); out.append(logs["learning_rate"])
# out.append(float(np.asarray(m.optimizer.learning_rate)))
# print(out)
KERAS_PLATEAU = [
    [0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.05000000074505806,
     0.05000000074505806, 0.05000000074505806, 0.02500000037252903, 0.02500000037252903,
     0.019999999552965164, 0.019999999552965164, 0.019999999552965164, 0.019999999552965164,
     0.019999999552965164, 0.019999999552965164],
    [0.019999999552965164, 0.019999999552965164, 0.019999999552965164, 0.003999999724328518,
     0.0007999999215826392, 0.0007999999215826392, 0.0001599999814061448]]


def test_plateau_patience_cooldown_min_lr_and_max_mode_as_keras():
    m = _model()
    seq = [1.0, 0.995, 0.99, 0.98, 0.985, 0.99, 0.97, 0.975, 0.976, 0.977, 0.978, 0.979, 0.98]
    r = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                                    min_lr=0.02, min_delta=0.01)
    r.set_model(m)
    r.on_train_begin()
    out = []
    for e, v in enumerate(seq):
        logs = {"val_loss": v}
        r.on_epoch_end(e, logs)
        out.append(logs["learning_rate"])
    out.append(float(np.float32(m.optimizer.learning_rate)))
    assert out == pytest.approx(KERAS_PLATEAU[0], rel=1e-7)
    r = callbacks.ReduceLROnPlateau(monitor="acc", mode="max", factor=0.2, patience=1)
    r.set_model(m)
    r.on_train_begin()
    out = []
    for e, v in enumerate([0.5, 0.6, 0.6, 0.55, 0.7, 0.7]):
        logs = {"acc": v}
        r.on_epoch_end(e, logs)
        out.append(logs["learning_rate"])
    out.append(float(np.float32(m.optimizer.learning_rate)))
    assert out == pytest.approx(KERAS_PLATEAU[1], rel=1e-7)


def test_plateau_defaults_errors_and_auto_mode():
    r = callbacks.ReduceLROnPlateau()
    assert (r.monitor, r.factor, r.patience, r.verbose, r.mode, r.min_delta, r.cooldown,
            r.min_lr) == ("val_loss", 0.1, 10, 0, "auto", 1e-4, 0, 0.0)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)
    with pytest.warns(UserWarning, match="unknown, fallback to auto"):
        callbacks.ReduceLROnPlateau(mode="sideways")
    m = _model(metrics=["accuracy"])
    for monitor, op in [("val_loss", "min"), ("val_mae", "min"), ("accuracy", "max")]:
        r = callbacks.ReduceLROnPlateau(monitor=monitor)
        r.set_model(m)
        r._set_monitor_op()
        assert r.monitor_op == op
        assert r.min_delta == (-1e-4 if op == "min" else 1e-4)
    r = callbacks.ReduceLROnPlateau(monitor="mystery")
    r.set_model(m)
    with pytest.raises(ValueError, match="automatically determine"):
        r.on_epoch_end(0, {"mystery": 1.0})
    r = callbacks.ReduceLROnPlateau(monitor="val_nothing", mode="min")
    r.set_model(m)
    with pytest.warns(UserWarning, match="`val_nothing` which is not available"):
        r.on_epoch_end(0, {"val_loss": 1.0, "val_nothing_else": 2.0})


class _SetLR(callbacks.Callback):
    def __init__(self, hook, when, lr):
        super().__init__()
        self.hook, self.when, self.lr = hook, when, lr

    def on_epoch_begin(self, epoch, logs=None):
        if self.hook == "epoch" and epoch == self.when:
            self.model.optimizer.learning_rate = self.lr

    def on_train_batch_begin(self, batch, logs=None):
        if self.hook == "batch" and batch == self.when:
            self.model.optimizer.learning_rate = self.lr


def test_rate_set_by_a_callback_takes_effect_at_once():
    """on_epoch_begin: that epoch's steps; on_train_batch_begin: that very batch (Keras 3
    assigns its rate variable before the step runs)."""
    model = _model()
    model.fit(X, Y, batch_size=2, epochs=2, shuffle=False, verbose=0,
              callbacks=[_SetLR("epoch", 1, 0.02)])
    ref = _sgd_by_hand(_model(), [0.1] * 3 + [0.02] * 3, 2)
    for a, b in zip(model.get_weights(), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    model = _model()
    model.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0,
              callbacks=[_SetLR("batch", 1, 0.0)])
    ref = _sgd_by_hand(_model(), [0.1, 0.0, 0.0], 2)
    for a, b in zip(model.get_weights(), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_plateau_inside_fit_reduces_the_next_epochs_rate():
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = model.fit(X, Y, batch_size=6, epochs=4, verbose=0, callbacks=[
            callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1,
                                        min_delta=100.0)])
    # Every epoch after the first fails to improve by 100, so the rate halves at its end;
    # the log holds the rate the epoch used (written before the reduction, as Keras).
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025], rel=1e-6)
    assert model.optimizer.learning_rate == pytest.approx(0.0125)
    ref = _sgd_by_hand(_model(), [0.1, 0.1, 0.05, 0.025], 6)
    for a, b in zip(model.get_weights(), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
