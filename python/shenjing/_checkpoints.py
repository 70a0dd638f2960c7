"""Callbacks that write the model during fit, as Keras 3's: ModelCheckpoint (every epoch or
every ``save_freq`` batches, optionally only on improvement) and BackupAndRestore (resume an
interrupted fit where it stopped). Every file is written atomically (_atomic.py), so a crash
mid-save leaves the previous file whole."""
import json
import math
import os
import shutil
import warnings

from shenjing import _atomic
from shenjing.callbacks import Callback, _mode


class _BatchCounter:
    """Keras's ``_should_save_on_batch``: true every ``save_freq`` batches, counting across
    epochs (a batch index not above the last one seen starts a new epoch)."""

    def __init__(self, save_freq, cls):
        if save_freq != "epoch" and (isinstance(save_freq, bool) or
                                     not isinstance(save_freq, int) or save_freq <= 0):
            raise ValueError(f"{cls}: Unrecognized save_freq: {save_freq!r}. Expected "
                             f"save_freq are 'epoch' or integer values")
        self.save_freq = save_freq
        self.since_last, self.last_batch = 0, None

    def due(self, batch):
        if self.save_freq == "epoch":
            return False
        if self.last_batch is None or batch <= self.last_batch:
            self.since_last += batch + 1
        else:
            self.since_last += batch - self.last_batch
        self.last_batch = batch
        if self.since_last >= self.save_freq:
            self.since_last = 0
            return True
        return False


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) every epoch or every ``save_freq`` batches, or only
    when ``monitor`` improves.

    Args:
        filepath: where to save; may hold ``{epoch}`` (1-based), ``{batch}`` (1-based, with
            an integer save_freq) and log keys, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.keras"``.
        monitor: the log key to watch ('val_loss' by default).
        verbose: 1 prints a line when saving.
        save_best_only: save only when ``monitor`` beats the best value so far.
        save_weights_only: ``model.save_weights`` instead of ``model.save``.
        mode: 'auto', 'min' or 'max'; 'auto' maximizes accuracies, minimizes the rest.
        save_freq: 'epoch', or an integer: save after that many batches (with the running
            logs of the epoch so far, as Keras).
        initial_value_threshold: the value to beat before the first save (best-only).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self._counter = _BatchCounter(save_freq, "ModelCheckpoint")
        self.filepath = os.fspath(filepath)
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _mode(mode, monitor, "ModelCheckpoint")
        self.save_freq = save_freq
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)
        else:
            self.best = -math.inf if self.mode == "max" else math.inf
        self._current_epoch = 0
        if save_freq != "epoch":  # only then does it need every batch's logs
            self.on_train_batch_end = self._on_train_batch_end

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def _on_train_batch_end(self, batch, logs=None):
        if self._counter.due(batch):
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e}") from None

    def _save(self, epoch, batch, logs):
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, "
                              f"skipping.", stacklevel=2)
                return
            better = value > self.best if self.mode == "max" else value < self.best
            if not better:
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving model to {path}")
            self.best = value
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)


class BackupAndRestore(Callback):
    """Backs up the training state so that a fit interrupted by a crash or a kill resumes
    where it stopped: run the same ``fit(..., callbacks=[BackupAndRestore(dir)])`` again.

    The backup (``latest.weights.h5`` and ``training_metadata.json`` in ``backup_dir``, as
    Keras names them) holds the weights, the optimizer state and the random streams (dropout,
    shuffling), so a resumed fit trains exactly as the uninterrupted one would have. Each file
    is written atomically.

    Args:
        backup_dir: folder of the backup (made when missing).
        save_freq: 'epoch', or an integer: back up every that many batches too.
        double_checkpoint: keep the previous backup as ``*.bkp``, used when the latest one
            cannot be read.
        delete_checkpoint: remove ``backup_dir`` when fit finishes.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        self._counter = _BatchCounter(save_freq, "BackupAndRestore")
        self.save_freq = save_freq
        self.double_checkpoint, self.delete_checkpoint = double_checkpoint, delete_checkpoint
        self.backup_dir = os.fspath(backup_dir)
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._current_epoch = 0
        if save_freq != "epoch":
            self.on_train_batch_end = self._on_train_batch_end

    def on_train_begin(self, logs=None):
        try:
            self._restore(self._weights_path, self._metadata_path)
        except (OSError, ValueError):
            if not os.path.exists(self._weights_path + ".bkp"):
                raise
            self._restore(self._weights_path + ".bkp", self._metadata_path + ".bkp")

    def _restore(self, weights, metadata):
        from shenjing import saving
        if not os.path.exists(weights):
            return
        saving.restore_training(self.model, weights)
        if os.path.exists(metadata):
            with open(metadata) as f:
                epoch = json.load(f).get("epoch")
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(f"BackupAndRestore: {metadata!r} holds no epoch number.")
            self.model._initial_epoch = epoch
            self._current_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._counter.last_batch = None
        if self.save_freq == "epoch":
            self._save()

    def _on_train_batch_end(self, batch, logs=None):
        if self._counter.due(batch):
            self._save(batch)

    def _save(self, batch=0):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for path in (self._weights_path, self._metadata_path):
                if os.path.exists(path):
                    shutil.copyfile(path, path + ".bkp")
        # A mid-epoch backup restarts that epoch on resume (its batches are not replayed
        # exactly), as Keras's; epoch-end backups resume bit for bit.
        self.model.save(self._weights_path, overwrite=True)
        text = json.dumps({"epoch": self._current_epoch, "batch": batch}).encode()
        _atomic.atomic_write(self._metadata_path, lambda f: f.write(text))

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)
