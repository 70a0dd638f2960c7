"""keras.io's "Writing your own callbacks" guide (its Keras 3 version) runs unchanged but for
imports, and prints what Keras 3 prints."""
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
