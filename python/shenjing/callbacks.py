"""Callbacks with Keras 3 names: Callback, History, ProgbarLogger and EarlyStopping here;
ModelCheckpoint and BackupAndRestore (_checkpoints.py), CSVLogger and TerminateOnNaN
(_log_callbacks.py), TensorBoard (_tensorboard.py), LambdaCallback (_lambda_callback.py)."""
import warnings

from shenjing._progbar import Progbar


def _default(method):
    """Marks a hook as the do-nothing base version, so the training loops can skip calling
    it per batch (Keras's ``utils.default``)."""
    method._is_default = True
    return method


def _is_default(method):
    return getattr(method, "_is_default", False)


class Callback:
    """Base class; override the hooks you need.

    Every hook receives a ``logs`` dict (never None), as in Keras 3. ``self.model`` is the
    model being trained, evaluated or predicted with; ``self.params`` holds ``verbose``,
    ``epochs`` and ``steps``. Hooks left as the base versions cost nothing per batch: the
    loops call a per-batch hook only on the callbacks that override it.
    """

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    @_default
    def on_batch_begin(self, batch, logs=None):
        """A backwards compatibility alias for ``on_train_batch_begin``."""

    @_default
    def on_batch_end(self, batch, logs=None):
        """A backwards compatibility alias for ``on_train_batch_end``."""

    @_default
    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of an epoch of ``fit``."""

    @_default
    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of an epoch with its metrics (and ``val_`` ones)."""

    @_default
    def on_train_batch_begin(self, batch, logs=None):
        """Called before a training batch, with ``{}``."""
        self.on_batch_begin(batch, logs=logs)

    @_default
    def on_train_batch_end(self, batch, logs=None):
        """Called after a training batch with the running means of the epoch so far."""
        self.on_batch_end(batch, logs=logs)

    @_default
    def on_test_batch_begin(self, batch, logs=None):
        """Called before a batch of ``evaluate`` (also of the validation inside ``fit``)."""

    @_default
    def on_test_batch_end(self, batch, logs=None):
        """Called after a batch of ``evaluate`` with the running means so far."""

    @_default
    def on_predict_batch_begin(self, batch, logs=None):
        """Called before a batch of ``predict``, with ``{}``."""

    @_default
    def on_predict_batch_end(self, batch, logs=None):
        """Called after a batch of ``predict`` with ``{"outputs": batch_outputs}``."""

    @_default
    def on_train_begin(self, logs=None):
        """Called at the start of ``fit``."""

    @_default
    def on_train_end(self, logs=None):
        """Called at the end of ``fit`` with the logs of the last epoch."""

    @_default
    def on_test_begin(self, logs=None):
        """Called at the start of ``evaluate`` or of a validation run."""

    @_default
    def on_test_end(self, logs=None):
        """Called at the end of ``evaluate`` or of a validation run with its results."""

    @_default
    def on_predict_begin(self, logs=None):
        """Called at the start of ``predict``."""

    @_default
    def on_predict_end(self, logs=None):
        """Called at the end of ``predict``."""


class History(Callback):
    """Records the logs of every epoch: ``history.history['loss']`` etc. Returned by ``fit``."""

    def __init__(self):
        super().__init__()
        self.history = {}

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints the Keras progress bar: a live bar (verbose=1) or a line per epoch (verbose=2).
    ``verbose``, ``epochs`` and ``steps`` come from ``params``, as in Keras; inside ``fit`` the
    validation run is silent."""

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        verbose = params["verbose"]
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params["epochs"]
        self.target = params["steps"]

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)  # not the predictions

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = Progbar(self.target, verbose=self.verbose)

    def _update_progbar(self, batch, logs=None):
        if self.progbar is None:
            self._reset_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, logs or {}, finalize=False)

    def _finalize_progbar(self, logs):
        if self.progbar is None:
            self._reset_progbar()
        if self.target is None:
            self.target = self.progbar.target = self.seen
        self.progbar.update(self.target, logs or {}, finalize=True)


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has stopped improving.

    Args:
        monitor: quantity to watch ('val_loss' by default).
        min_delta: smallest change that counts as an improvement (0).
        patience: epochs with no improvement after which training stops (0).
        verbose: 1 prints a message when stopping.
        mode: 'auto', 'min' or 'max'; 'auto' infers from the name ('acc'/'accuracy' -> max).
        baseline: stop if the monitored value does not beat this.
        restore_best_weights: restore the weights of the best epoch when stopping.
        start_from_epoch: epochs to wait before starting to monitor.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.mode = monitor, _mode(mode, monitor, "EarlyStopping")
        self.min_delta = abs(min_delta) * (1 if mode == "max" else -1)
        self.patience, self.verbose = patience, verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.stopped_epoch = 0

    def _better(self, value, reference):
        if reference is None:
            return True
        return value - self.min_delta > reference if self.mode == "max" else \
            value - self.min_delta < reference

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"EarlyStopping: metric '{self.monitor}' is not available; "
                          f"available metrics are {', '.join(logs or {})}.", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def _mode(mode, monitor, cls):
    """'min' or 'max' for a Keras mode argument; 'auto' maximizes accuracies and AUC."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{cls}: mode must be 'auto', 'min' or 'max', received {mode!r}.")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return mode


# At the end: the list module subclasses Callback and knows History and ProgbarLogger.
from shenjing._callback_list import CallbackList, _pythonify  # noqa: E402

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint",
           "BackupAndRestore", "CSVLogger", "TerminateOnNaN", "ProgbarLogger", "LambdaCallback",
           "TensorBoard", "LearningRateScheduler", "ReduceLROnPlateau"]


# Each in its own module (they subclass Callback, so they come after it).
from shenjing._lambda_callback import LambdaCallback  # noqa: E402
from shenjing._checkpoints import BackupAndRestore, ModelCheckpoint  # noqa: E402
from shenjing._log_callbacks import CSVLogger, TerminateOnNaN  # noqa: E402
from shenjing._lr_callbacks import LearningRateScheduler, ReduceLROnPlateau  # noqa: E402
from shenjing._tensorboard import TensorBoard  # noqa: E402
