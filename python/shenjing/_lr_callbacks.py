"""Keras 3's learning-rate callbacks: LearningRateScheduler and ReduceLROnPlateau.

Both run once per epoch and set ``model.optimizer.learning_rate``, which reaches the core at
once (the next step uses it). They read the rate as Keras does, from a float32 variable:
``float(np.float32(lr))``, so messages and the ``learning_rate`` log entry carry the same
digits as Keras's.
"""
import warnings

import numpy as np

from shenjing.callbacks import Callback


def _current_lr(optimizer):
    if not hasattr(optimizer, "learning_rate"):
        raise ValueError('Optimizer must have a "learning_rate" attribute.')
    return float(np.float32(optimizer.learning_rate))


# Keras's metric directions (Metric._direction) by the names metrics log under.
_UP = ("accuracy", "acc", "auc", "precision", "recall", "iou", "r2_score", "f1_score",
       "fbeta_score", "top_k", "true_positives", "true_negatives")
_DOWN = ("loss", "error", "mae", "mse", "mape", "msle", "rmse", "hinge", "crossentropy",
         "logcosh", "log_cosh", "kl_divergence", "kld", "poisson", "false_positives",
         "false_negatives")


def _direction_by_name(name):
    if any(k in name for k in _UP):
        return "max"
    if any(k in name for k in _DOWN):
        return "min"
    return None


class LearningRateScheduler(Callback):
    """At the start of every epoch sets the learning rate to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)`` for a one-argument function), epochs counted from 0; the result must be
    a float. Adds ``learning_rate`` to the epoch's logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"LearningRateScheduler: schedule must be callable, received "
                             f"{schedule!r:.100}.")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = _current_lr(optimizer)
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:  # the one-argument form, as Keras's fallback
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. "
                             f"Got: {lr}")
        optimizer.learning_rate = lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _current_lr(self.model.optimizer)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` (not below ``min_lr``) once ``monitor`` has
    not improved by more than ``min_delta`` for ``patience`` epochs, then waits ``cooldown``
    epochs before counting again. Adds ``learning_rate`` to the epoch's logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise ValueError(f"ReduceLROnPlateau: unknown argument(s) "
                             f"{', '.join(sorted(kwargs))}.")
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"ReduceLROnPlateau mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=2)
            mode = "auto"
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        self.monitor, self.mode = monitor, mode
        self.min_delta = abs(min_delta)
        self.factor, self.min_lr, self.patience = factor, min_lr, patience
        self.verbose, self.cooldown = verbose, cooldown
        self.monitor_op = None
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def _set_monitor_op(self):
        """Keras's choice: 'min'/'max' as given; 'auto' minimizes a loss and follows a
        metric's direction (accuracies and AUC up, errors down)."""
        if self.mode == "max":
            self.monitor_op = "max"
        elif self.mode == "min":
            self.monitor_op = "min"
        else:
            name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
            direction = None if name != "loss" else "min"
            for m in getattr(self.model, "metrics", None) or ():
                if getattr(m, "name", None) == name and hasattr(m, "_direction"):
                    direction = "max" if m._direction == "up" else "min"
            if direction is None:
                direction = _direction_by_name(name)
            if direction is None:
                raise ValueError(
                    f"ReduceLROnPlateau callback received monitor={self.monitor}, but shenjing "
                    "isn't able to automatically determine whether that metric should be "
                    "maximized or minimized. Pass `mode='max'` in order to monitor based on "
                    "the highest metric value, or pass `mode='min'` in order to use the "
                    "lowest value.")
            self.monitor_op = direction
        if self.monitor_op == "min":
            self.min_delta = -abs(self.min_delta)

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self.monitor_op == "max":
            return value - self.min_delta > reference
        return value - self.min_delta < reference

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()  # delayed until the model's metrics exist, as Keras
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = _current_lr(optimizer)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          f"which is not available. Available metrics are: "
                          f"{','.join(list(logs.keys()))}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = _current_lr(optimizer)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                              f"rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
