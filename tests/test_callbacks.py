"""Callbacks as Keras 3: keras.io's "Writing your own callbacks" guide runs unchanged (but for
imports), every hook fires in Keras's order with Keras's logs, in fit, evaluate and predict,
and per-batch hooks cost nothing unless a callback overrides them."""
import os
import warnings

import numpy as np
import pytest

import shenjing
from shenjing import callbacks, layers


def _mnist_1000():
    """The guide's data: the first 1000 MNIST samples (random ones shaped alike without
    $SHENJING_DATA: the guide's code does not depend on the values)."""
    if os.environ.get("SHENJING_DATA"):
        (x_train, y_train), (x_test, y_test) = shenjing.datasets.mnist.load_data()
    else:
        rng = np.random.default_rng(0)
        x_train, x_test = (rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8) for _ in "ab")
        y_train, y_test = (rng.integers(0, 10, 1000, dtype=np.uint8) for _ in "ab")
    return (x_train, y_train), (x_test, y_test)


# --- keras.io/guides/writing_your_own_callbacks (Keras 3 version), imports adapted ----------
class _Keras:
    Sequential = shenjing.Sequential
    layers = layers
    optimizers = shenjing.optimizers
    callbacks = callbacks


keras = _Keras


def get_model():
    model = keras.Sequential()
    model.add(keras.layers.Dense(1))
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.1),
        loss="mean_squared_error",
        metrics=["mean_absolute_error"],
    )
    return model


class CustomCallback(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        keys = list(logs.keys())
        print("Starting training; got log keys: {}".format(keys))

    def on_train_end(self, logs=None):
        keys = list(logs.keys())
        print("Stop training; got log keys: {}".format(keys))

    def on_epoch_begin(self, epoch, logs=None):
        keys = list(logs.keys())
        print("Start epoch {} of training; got log keys: {}".format(epoch, keys))

    def on_epoch_end(self, epoch, logs=None):
        keys = list(logs.keys())
        print("End epoch {} of training; got log keys: {}".format(epoch, keys))

    def on_test_begin(self, logs=None):
        keys = list(logs.keys())
        print("Start testing; got log keys: {}".format(keys))

    def on_test_end(self, logs=None):
        keys = list(logs.keys())
        print("Stop testing; got log keys: {}".format(keys))

    def on_predict_begin(self, logs=None):
        keys = list(logs.keys())
        print("Start predicting; got log keys: {}".format(keys))

    def on_predict_end(self, logs=None):
        keys = list(logs.keys())
        print("Stop predicting; got log keys: {}".format(keys))

    def on_train_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Training: start of batch {}; got log keys: {}".format(batch, keys))

    def on_train_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Training: end of batch {}; got log keys: {}".format(batch, keys))

    def on_test_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Evaluating: start of batch {}; got log keys: {}".format(batch, keys))

    def on_test_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Evaluating: end of batch {}; got log keys: {}".format(batch, keys))

    def on_predict_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Predicting: start of batch {}; got log keys: {}".format(batch, keys))

    def on_predict_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print("...Predicting: end of batch {}; got log keys: {}".format(batch, keys))


class LossAndErrorPrintingCallback(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print(
            "Up to batch {}, the average loss is {:7.2f}.".format(batch, logs["loss"])
        )

    def on_test_batch_end(self, batch, logs=None):
        print(
            "Up to batch {}, the average loss is {:7.2f}.".format(batch, logs["loss"])
        )

    def on_epoch_end(self, epoch, logs=None):
        print(
            "The average loss for epoch {} is {:7.2f} "
            "and mean absolute error is {:7.2f}.".format(
                epoch, logs["loss"], logs["mean_absolute_error"]
            )
        )


class EarlyStoppingAtMinLoss(keras.callbacks.Callback):
    """Stop training when the loss is at its min, i.e. the loss stops decreasing."""

    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        # best_weights to store the weights at which the minimum loss occurs.
        self.best_weights = None

    def on_train_begin(self, logs=None):
        # The number of epoch it has waited when loss is no longer minimum.
        self.wait = 0
        # The epoch the training stops at.
        self.stopped_epoch = 0
        # Initialize the best as infinity.
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            # Record the best weights if current results is better (less).
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                print("Restoring model weights from the end of the best epoch.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class CustomLearningRateScheduler(keras.callbacks.Callback):
    """Learning rate scheduler which sets the learning rate according to schedule."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        # Get the current learning rate from model's optimizer.
        lr = self.model.optimizer.learning_rate
        # Call schedule function to get the scheduled learning rate.
        scheduled_lr = self.schedule(epoch, lr)
        # Set the value back to the optimizer before this epoch starts
        self.model.optimizer.learning_rate = scheduled_lr
        print(f"\nEpoch {epoch}: Learning rate is {float(np.array(scheduled_lr))}.")


LR_SCHEDULE = [
    # (epoch to start, learning rate) tuples
    (3, 0.05),
    (6, 0.01),
    (9, 0.005),
    (12, 0.001),
]


def lr_schedule(epoch, lr):
    """Helper function to retrieve the scheduled learning rate based on epoch."""
    if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
        return lr
    for i in range(len(LR_SCHEDULE)):
        if epoch == LR_SCHEDULE[i][0]:
            return LR_SCHEDULE[i][1]
    return lr
# --- end of the guide's definitions ----------------------------------------------------------


@pytest.fixture(scope="module")
def guide_data():
    (x_train, y_train), (x_test, y_test) = _mnist_1000()
    x_train = x_train.reshape(-1, 784).astype("float32") / 255.0
    x_test = x_test.reshape(-1, 784).astype("float32") / 255.0
    return x_train[:1000], y_train[:1000], x_test[:1000], y_test[:1000]


def _batches(kind, n, keys):
    verb = {"Training": "Training", "Evaluating": "Evaluating", "Predicting": "Predicting"}[kind]
    out = []
    for b in range(n):
        out += [f"...{verb}: start of batch {b}; got log keys: []",
                f"...{verb}: end of batch {b}; got log keys: {keys}"]
    return out


def test_guide_custom_callback_prints_every_hook_like_keras(guide_data, capsys):
    x_train, y_train, x_test, y_test = guide_data
    model = get_model()
    model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0, validation_split=0.5,
              callbacks=[CustomCallback()])
    res = model.evaluate(x_test, y_test, batch_size=128, verbose=0,
                         callbacks=[CustomCallback()])
    res = model.predict(x_test, batch_size=128, verbose=0, callbacks=[CustomCallback()])
    assert res.shape == (1000, 1)
    metrics = ["loss", "mean_absolute_error"]
    every = metrics + ["val_loss", "val_mean_absolute_error"]
    # The output Keras 3 prints for the same calls (500 training and 500 validation samples:
    # 4 batches each; 1000 test samples: 8 batches).
    expected = (["Starting training; got log keys: []",
                 "Start epoch 0 of training; got log keys: []"]
                + _batches("Training", 4, metrics)
                + ["Start testing; got log keys: []"] + _batches("Evaluating", 4, metrics)
                + [f"Stop testing; got log keys: {metrics}",
                   f"End epoch 0 of training; got log keys: {every}",
                   f"Stop training; got log keys: {every}",
                   "Start testing; got log keys: []"] + _batches("Evaluating", 8, metrics)
                + [f"Stop testing; got log keys: {metrics}",
                   "Start predicting; got log keys: []"]
                + _batches("Predicting", 8, ["outputs"])
                + ["Stop predicting; got log keys: []"])
    assert capsys.readouterr().out.splitlines() == expected


def test_guide_loss_printing_gets_running_means(guide_data, capsys):
    x_train, y_train, x_test, y_test = guide_data
    model = get_model()
    h = model.fit(x_train, y_train, batch_size=128, epochs=2, verbose=0,
                  callbacks=[LossAndErrorPrintingCallback()])
    res = model.evaluate(x_test, y_test, batch_size=128, verbose=0,
                         callbacks=[LossAndErrorPrintingCallback()])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * (8 + 1) + 8
    for epoch in range(2):
        last_batch = lines[epoch * 9 + 7]
        assert last_batch == f"Up to batch 7, the average loss is " \
                             f"{h.history['loss'][epoch]:7.2f}."
        assert lines[epoch * 9 + 8] == (
            f"The average loss for epoch {epoch} is {h.history['loss'][epoch]:7.2f} and mean "
            f"absolute error is {h.history['mean_absolute_error'][epoch]:7.2f}.")
    assert lines[-1] == f"Up to batch 7, the average loss is {res[0]:7.2f}."


def test_guide_early_stopping_at_min_loss_with_steps_per_epoch(guide_data, capsys):
    x_train, y_train, _, _ = guide_data
    model = get_model()
    stopper = EarlyStoppingAtMinLoss()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = model.fit(x_train, y_train, batch_size=64, steps_per_epoch=5, epochs=30,
                      verbose=0, callbacks=[LossAndErrorPrintingCallback(), stopper])
    out = capsys.readouterr().out.splitlines()
    assert h.params == {"verbose": 0, "epochs": 30, "steps": 5}
    epochs_run = len(h.history["loss"])
    assert stopper.stopped_epoch == epochs_run - 1 and epochs_run < 30
    assert out[-1] == f"Epoch {epochs_run}: early stopping"
    # 16 batches of 64: epochs of 5, 5, 5 then 1 batch (Keras warns that the input ran out),
    # then the next pass over the data.
    batch_lines = [line for line in out if line.startswith("Up to batch")]
    per_epoch = [5, 5, 5, 1, 5, 5, 5, 1] * 4
    assert len(batch_lines) == sum(per_epoch[:epochs_run])
    ran_out = [w for w in caught if "ran out of data" in str(w.message)]
    assert len(ran_out) == epochs_run // 4


@pytest.mark.filterwarnings("ignore:Your input ran out of data")  # as Keras warns
def test_guide_learning_rate_scheduler(guide_data, capsys):
    x_train, y_train, _, _ = guide_data
    model = get_model()
    model.fit(x_train, y_train, batch_size=64, steps_per_epoch=5, epochs=15, verbose=0,
              callbacks=[LossAndErrorPrintingCallback(),
                         CustomLearningRateScheduler(lr_schedule)])
    out = capsys.readouterr().out
    rates = [float(line.split("is ")[1].rstrip(".")) for line in out.splitlines()
             if "Learning rate is" in line]
    assert rates == [0.1] * 3 + [0.05] * 3 + [0.01] * 3 + [0.005] * 3 + [0.001] * 3
    assert model.optimizer.learning_rate == 0.001


# --- hook order, logs and cost ----------------------------------------------------------------
class Recorder(callbacks.Callback):
    """Records every hook call with a copy of its logs."""

    def __init__(self):
        super().__init__()
        self.calls = []


for _hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
              "on_predict_begin", "on_predict_end"):
    setattr(Recorder, _hook, lambda self, logs=None, _h=_hook:
            self.calls.append((_h, None, dict(logs))))
for _hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
              "on_predict_batch_end"):
    setattr(Recorder, _hook, lambda self, i, logs=None, _h=_hook:
            self.calls.append((_h, i, dict(logs))))


def _regressor():
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def _xy(n=10):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 2)).astype(
        np.float32)


def test_fit_hook_order_and_logs_with_validation():
    x, y = _xy(10)
    model = _regressor()
    rec = Recorder()
    h = model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x[:6], y[:6]),
                  callbacks=[rec])
    names = [(c[0], c[1]) for c in rec.calls]
    epoch = lambda e: ([("on_epoch_begin", e)]
                       + [p for b in range(3) for p in (("on_train_batch_begin", b),
                                                        ("on_train_batch_end", b))]
                       + [("on_test_begin", None)]
                       + [p for b in range(2) for p in (("on_test_batch_begin", b),
                                                        ("on_test_batch_end", b))]
                       + [("on_test_end", None), ("on_epoch_end", e)])
    assert names == [("on_train_begin", None)] + epoch(0) + epoch(1) + [("on_train_end", None)]
    logs = {(c[0], c[1]): c[2] for c in rec.calls}
    assert logs[("on_train_begin", None)] == {} and logs[("on_epoch_begin", 1)] == {}
    assert logs[("on_train_batch_begin", 2)] == {} and logs[("on_test_batch_begin", 1)] == {}
    assert list(logs[("on_train_batch_end", 0)]) == ["loss", "mae"]
    # The last batch's running means are the epoch's values; the epoch logs are sorted.
    assert list(logs[("on_epoch_end", 1)]) == ["loss", "mae", "val_loss", "val_mae"]
    assert logs[("on_train_batch_end", 2)]["loss"] == h.history["loss"][1]
    assert logs[("on_test_end", None)]["loss"] == h.history["val_loss"][1]
    assert logs[("on_train_end", None)] == logs[("on_epoch_end", 1)]
    assert all(isinstance(v, float) for v in logs[("on_train_batch_end", 0)].values())
    assert rec.params == {"verbose": 0, "epochs": 2, "steps": 3} and rec.model is model


def test_running_means_match_per_batch_evaluation():
    x, y = _xy(12)
    model = _regressor()
    rec = Recorder()
    result = model.evaluate(x, y, batch_size=5, verbose=0, callbacks=[rec])
    ends = [c[2] for c in rec.calls if c[0] == "on_test_batch_end"]
    first = model.evaluate(x[:5], y[:5], batch_size=5, verbose=0)
    two = model.evaluate(x[:10], y[:10], batch_size=10, verbose=0)
    assert ends[0]["loss"] == pytest.approx(first[0], rel=1e-5)
    assert ends[1]["mae"] == pytest.approx(two[1], rel=1e-5)
    assert ends[2] == {"loss": pytest.approx(result[0]), "mae": pytest.approx(result[1])}
    assert [c[0] for c in rec.calls][0] == "on_test_begin"
    assert rec.calls[-1] == ("on_test_end", None, ends[2])
    assert rec.params == {"verbose": 0, "epochs": 1, "steps": 3}


def test_predict_hooks_get_the_outputs():
    x, _ = _xy(10)
    model = _regressor()
    rec = Recorder()
    out = model.predict(x, batch_size=4, verbose=0, callbacks=[rec])
    assert [c[0] for c in rec.calls] == (["on_predict_begin"] + [
        h for _ in range(3) for h in ("on_predict_batch_begin", "on_predict_batch_end")]
        + ["on_predict_end"])
    got = [c[2]["outputs"] for c in rec.calls if c[0] == "on_predict_batch_end"]
    np.testing.assert_array_equal(np.concatenate(got), out)
    assert [len(g) for g in got] == [4, 4, 2]
    assert rec.calls[0][2] == {} and rec.calls[-1][2] == {}


def test_logs_argument_is_always_a_dict_even_without_default():
    """``def on_train_begin(self, logs):`` (no default) works as in Keras."""
    seen = []

    class NoDefaults(callbacks.Callback):
        def on_train_begin(self, logs):
            seen.append(("train_begin", logs))

        def on_epoch_begin(self, epoch, logs):
            seen.append(("epoch_begin", logs))

        def on_test_begin(self, logs):
            seen.append(("test_begin", logs))

        def on_predict_begin(self, logs):
            seen.append(("predict_begin", logs))

        def on_predict_end(self, logs):
            seen.append(("predict_end", logs))

    x, y = _xy(8)
    model = _regressor()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[NoDefaults()])
    model.evaluate(x, y, verbose=0, callbacks=[NoDefaults()])
    model.predict(x, verbose=0, callbacks=[NoDefaults()])
    assert seen == [("train_begin", {}), ("epoch_begin", {}), ("test_begin", {}),
                    ("predict_begin", {}), ("predict_end", {})]


def test_on_batch_aliases_are_called_in_fit_only():
    calls = []

    class Alias(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch, dict(logs)))

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch, sorted(logs)))

    x, y = _xy(8)
    model = _regressor()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Alias()])
    model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[Alias()])
    model.predict(x, batch_size=4, verbose=0, callbacks=[Alias()])
    assert calls == [("begin", 0, {}), ("end", 0, ["loss", "mae"]),
                     ("begin", 1, {}), ("end", 1, ["loss", "mae"])]


def test_per_batch_hooks_not_overridden_are_never_called(monkeypatch):
    """The loops call a per-batch hook only on callbacks that override it: the base versions
    (here replaced by counters that still look like the base no-ops) are never called."""
    counts = {}
    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                 "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
                 "on_batch_begin", "on_batch_end"):
        def counter(self, batch, logs=None, _h=hook):
            counts[_h] = counts.get(_h, 0) + 1
        counter._is_default = True
        monkeypatch.setattr(callbacks.Callback, hook, counter)

    class EpochOnly(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            counts["epoch_end"] = counts.get("epoch_end", 0) + 1

    x, y = _xy(40)
    model = _regressor()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_split=0.5,
              callbacks=[EpochOnly()])
    model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[EpochOnly()])
    model.predict(x, batch_size=4, verbose=0, callbacks=[EpochOnly()])
    assert counts == {"epoch_end": 2}


def test_stop_training_in_a_batch_hook_stops_within_the_epoch():
    class StopAt(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    x, y = _xy(40)
    model = _regressor()
    rec = Recorder()
    h = model.fit(x, y, batch_size=4, epochs=5, verbose=0, callbacks=[StopAt(), rec])
    assert len(h.history["loss"]) == 1
    assert [c[1] for c in rec.calls if c[0] == "on_train_batch_end"] == [0, 1]


def test_callback_list_as_keras():
    x, y = _xy(8)
    model = _regressor()
    rec = Recorder()
    cbl = callbacks.CallbackList([rec], add_history=True, add_progbar=False, model=model,
                                 verbose=0, epochs=1, steps=2)
    assert isinstance(cbl, callbacks.Callback)
    assert isinstance(cbl.callbacks[-1], callbacks.History)
    assert model.history is cbl.callbacks[-1] and rec.model is model
    assert rec.params == {"verbose": 0, "epochs": 1, "steps": 2}
    cbl.on_train_begin()
    cbl.on_epoch_end(0, {"b": np.float32(2), "a": 1})
    assert rec.calls == [("on_train_begin", None, {}), ("on_epoch_end", 0, {"a": 1.0, "b": 2.0})]
    assert list(rec.calls[1][2]) == ["a", "b"]
    # fit uses a CallbackList as given: no second History, no progress bar.
    rec.calls.clear()
    h = model.fit(x, y, batch_size=4, epochs=1, verbose=1, callbacks=cbl)
    assert h is cbl.callbacks[-1] and len(h.history["loss"]) == 1
    assert [c[0] for c in rec.calls][:2] == ["on_train_begin", "on_epoch_begin"]


def test_bad_callbacks_raise_type_error_and_change_nothing():
    model = shenjing.Sequential([layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = _xy(8)
    for bad in (object(), [object()], "history", [callbacks.Callback, 3]):
        with pytest.raises(TypeError, match="callbacks"):
            model.fit(x, y, verbose=0, callbacks=bad)
        assert not model.built
    model.build((None, 3))
    for call in (lambda: model.evaluate(x, y, verbose=0, callbacks=[1]),
                 lambda: model.predict(x, verbose=0, callbacks=1)):
        with pytest.raises(TypeError, match="callbacks"):
            call()


def test_progress_bar_is_silent_during_validation(capsys):
    x, y = _xy(40)
    model = _regressor()
    model.fit(x, y, batch_size=4, epochs=2, verbose=2, validation_split=0.25)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2" and len(out) == 4
    assert out[1].startswith("8/8 - ") and "val_loss" in out[1]
    model.evaluate(x, y, batch_size=8, verbose=2)
    model.predict(x, batch_size=8, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("5/5 - ") and "loss" in out[0]
    assert out[1].startswith("5/5 - ") and "loss" not in out[1]
