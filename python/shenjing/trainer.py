"""Training and inference of a model with the Keras 3 API: compile, fit, evaluate, predict (as
Keras's ``trainers/trainer.py``). Each batch is one C++ call (with the GIL released); Python
only slices, counts, runs callbacks and prints progress."""
import math
import numbers
import time
import warnings

import numpy as np

from shenjing import _checks as checks, _random, losses as losses_mod, metrics as metrics_mod
from shenjing import optimizers as optimizers_mod
from shenjing.callbacks import CallbackList, ProgbarLogger, _pythonify
from shenjing.data import DataLoader, Dataset

_SPARSE_CE = 5


class Trainer:
    """The training half of a model (mixed into ``Sequential``): needs ``self._core``, the
    layers, the input shape and ``_build``/``_rollback_on_error`` from the model."""

    # -- compile ---------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Configures the model for training.

        Args:
            optimizer: name ('adam', 'sgd', 'rmsprop', 'adamw', 'adagrad') or instance.
            loss: name ('mse', 'categorical_crossentropy', ...), function or Loss instance.
            metrics: list of names ('accuracy', 'mae', 'mse', ...) or Metric instances.
        """
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'.")
        if loss_weights is not None or weighted_metrics is not None:
            raise ValueError("loss_weights and weighted_metrics are not supported.")
        # Resolve everything before changing the model, so a failed compile() changes nothing.
        optimizer = optimizers_mod.get(optimizer)
        loss = losses_mod.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_mod.Metric)) or callable(metrics):
            metrics = [metrics]
        for m in metrics:  # fail early on unknown names
            metrics_mod.get(m, (1, 2), (1, 2))

        def apply():
            self.optimizer, self.loss = optimizer, loss
            self._metric_ids = list(metrics)
            self._metrics = None
            if self._core is not None:
                self._compile_core()
        self._rollback_on_error(apply)

    def _compile_core(self):
        # Frozen layers (layer.trainable = False) take effect here, at compile, as in Keras.
        for i, layer in enumerate(self._core_layers):
            self._core.set_trainable(i, bool(layer.trainable))
        kind, from_logits, delta = self.loss._spec()
        self._core.compile([(kind, from_logits, delta, 1.0, [m._code for m in self._metrics or []])],
                           self.optimizer._spec())
        self.optimizer._model = self._core

    def _resolve_metrics(self, y_shape):
        out_shape = self.output_shape
        metrics = [metrics_mod.get(m, y_shape, out_shape) for m in self._metric_ids]
        for m in metrics:
            metrics_mod.check_targets(m, y_shape, out_shape)
        if self._metrics is None or [m._code for m in metrics] != \
                [m._code for m in self._metrics]:
            self._metrics = metrics
            self._core.set_metrics([[m._code for m in metrics]])

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for m in self._metrics or []]

    # -- data ------------------------------------------------------------------------------
    def _as_input(self, x):
        """x as a C-contiguous float32 array of this model's input shape (converted once)."""
        x = checks.numeric(x, "x")
        if self._input_shape is None:
            def infer():  # a build that fails leaves no inferred input shape behind
                self._input_shape = tuple(x.shape[1:])
                self._build()
            self._rollback_on_error(infer)
        elif self._core is None:
            self._build()
        expected = tuple(self._input_shape)
        if x.shape[1:] != expected:
            if x.ndim == 1 and expected == (1,):
                x = x.reshape(-1, 1)
            else:
                first = self._layers[0] if self._layers else None
                where = f'layer "{first.name}"' if first else f'model "{self.name}"'
                raise ValueError(
                    f"Input 0 of {where} is incompatible with the layer: expected shape "
                    f"{(None,) + expected}, but received input with shape {x.shape}.")
        if x.dtype not in checks.CORE_DTYPES:
            x = checks.to_float32(x, "x")
        return np.ascontiguousarray(x)

    def _as_target(self, y, n):
        """y as float32, checked against the output shape the way Keras checks it: targets
        shaped like the output (a trailing axis of 1 may be added or dropped), or for
        sparse_categorical_crossentropy one integer label per position of the output but its
        last axis (``(batch,)`` for ``(None, 10)``, ``(batch, time)`` for ``(None, time, 10)``)."""
        y = checks.numeric(y, "y")
        if y.shape[0] != n:
            raise ValueError(f"x and y must have the same number of samples: x has {n}, "
                             f"y has {y.shape[0]}.")
        checks.check_finite(y, "y")
        out, shape = tuple(self.output_shape[1:]), tuple(y.shape[1:])
        if self.loss._kind == _SPARSE_CE:
            if shape not in (out[:-1], out[:-1] + (1,)):
                where = "sample" if len(out) == 1 else \
                    f"position of the output {self.output_shape} but its last axis"
                raise ValueError(
                    f"sparse_categorical_crossentropy expects one integer class label per "
                    f"{where}, i.e. y of shape {(None,) + out[:-1]}; received y with shape "
                    f"{y.shape}. For one-hot targets use categorical_crossentropy.")
            if y.dtype.kind == "f" and np.any(y != np.round(y)):
                raise ValueError("sparse_categorical_crossentropy expects integer class labels, "
                                 "received non-integer values.")
            lo, hi, width = y.min(), y.max(), out[-1]
            if lo < 0 or hi >= width:
                bad = lo if lo < 0 else hi
                raise ValueError(f"Received a label value of {bad} which is outside the valid "
                                 f"range of [0, {width - 1}] for a model with {width} outputs.")
        elif shape not in (out, out + (1,)) and shape + (1,) != out:
            hint = (" For integer class labels use loss='sparse_categorical_crossentropy' or "
                    "shenjing.utils.to_categorical.") if self.loss._kind == 4 else ""
            raise ValueError(f"Target y has shape {y.shape}, which does not match the model "
                             f"output shape {self.output_shape}.{hint}")
        return np.ascontiguousarray(y, dtype=np.float32)  # checked above

    def _data(self, x, y, batch_size, what, shuffle=False):
        """(x, y, batch_size, order_fn, steps) for arrays or a DataLoader/Dataset."""
        drop_last = False
        if isinstance(x, Dataset):
            x = DataLoader(x, batch_size=checks.check_batch_size(batch_size))
        if isinstance(x, DataLoader):
            if y is not None:
                raise ValueError(f"{what}: pass y inside the DataLoader, not separately.")
            loader = x
            x, y = loader.dataset.x, loader.dataset.y
            batch_size, drop_last, order = loader.batch_size, loader.drop_last, loader.order
        else:
            batch_size = checks.check_batch_size(batch_size)
            order = None
        x = self._as_input(x)
        if y is None:
            raise ValueError(f"{what} needs targets y.")
        y = self._as_target(y, len(x))
        checks.check_finite(x, "x")
        if order is None:
            n = len(x)
            order = (lambda: self._shuffle_generator().permutation(n).astype(np.int64)) \
                if shuffle else (lambda: None)
        steps = len(x) // batch_size if drop_last else -(-len(x) // batch_size)
        if steps == 0:
            raise ValueError(f"{what}: no complete batch of {batch_size} samples in "
                             f"{len(x)} samples with drop_last=True.")
        return x, y, batch_size, order, steps

    # -- training --------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            steps_per_epoch=None):
        """Trains the model for a fixed number of epochs.

        Args:
            x, y: arrays of samples and targets, or a ``shenjing.data.DataLoader`` as x.
            batch_size: samples per gradient update (32 when None).
            epochs: index of the last epoch to train (training starts at ``initial_epoch``).
            verbose: 'auto' or 1 (live progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: list of ``shenjing.callbacks.Callback`` (or a ``CallbackList``).
            validation_split: fraction of the samples, taken from the end before shuffling,
                to hold out and evaluate at the end of each epoch.
            validation_data: ``(x_val, y_val)`` or a DataLoader evaluated after each epoch.
            shuffle: reshuffle the samples before each epoch.
            steps_per_epoch: batches per epoch; the next epoch continues where this one
                stopped, and an epoch that runs out of data ends early with a warning (Keras).

        Returns:
            A ``History`` whose ``history`` dict maps 'loss', metric names and their 'val_'
            counterparts to per-epoch values.
        """
        if self.optimizer is None:
            raise ValueError("You must call compile() before fit().")
        if x is None:
            raise ValueError("fit needs input data x (an array or a DataLoader).")
        level = checks.verbosity(verbose)
        for what, v in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{what} must be a non-negative integer, received {v!r}.")
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not isinstance(
                steps_per_epoch, (int, np.integer)) or steps_per_epoch <= 0):
            raise ValueError(f"steps_per_epoch must be None or a positive integer, received "
                             f"{steps_per_epoch!r}.")
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
                or not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1), received "
                             f"{validation_split!r}.")
        # Checked before anything changes: a bad callbacks list must not half-build the model.
        cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_history=True, add_progbar=level != 0)
        if validation_split and validation_data is None:
            if isinstance(x, (DataLoader, Dataset)):
                raise ValueError("validation_split needs arrays x and y, not a DataLoader.")
            if y is None:
                raise ValueError("fit needs targets y (validation_split splits x and y).")
            x, y = checks.numeric(x, "x"), checks.numeric(y, "y")
            if len(x) != len(y):
                raise ValueError(f"x and y must have the same number of samples: x has "
                                 f"{len(x)}, y has {len(y)}.")
            split = int(len(x) * (1 - validation_split))
            if split == 0 or split == len(x):
                raise ValueError(f"validation_split={validation_split} leaves no samples for "
                                 f"training or validation with {len(x)} samples.")
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        x, y, batch_size, order, steps = self._data(x, y, batch_size, "fit", shuffle)
        self._resolve_metrics(y.shape)
        if validation_data is not None and not isinstance(validation_data, (DataLoader,
                                                                             Dataset)):
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val).")
            vx, vy = validation_data
            vx = self._as_input(vx)
            checks.check_finite(vx, "validation x")
            validation_data = (vx, self._as_target(vy, len(vx)))

        if cbl is not callbacks:
            cbl.set_model(self)
            cbl.set_params({"verbose": verbose, "epochs": epochs,
                            "steps": steps_per_epoch or steps})
        # Per-batch hooks go only to the callbacks that override them; the default progress
        # bar is redrawn from here at most every 50 ms, with logs built only then.
        progbar = cbl._progbar if type(cbl._progbar) is ProgbarLogger else None
        begin_cbs = cbl._batch_callbacks("on_train_batch_begin")
        end_cbs = cbl._batch_callbacks("on_train_batch_end", skip=progbar)
        redraw_every = 0.05 if progbar and progbar.verbose == 1 else math.inf
        names = [m.name for m in self._metrics]
        core = self._core
        self.stop_training = False
        cbl.on_train_begin()
        training_logs = None
        pos = 0  # batches of the current pass over the data done (steps_per_epoch continues it)
        for epoch in range(initial_epoch, epochs):
            cbl.on_epoch_begin(epoch)
            core.learning_rate = self.optimizer.learning_rate
            if pos == 0:
                idx = order()
            loss_sum, sums, seen = 0.0, np.zeros(len(names)), 0
            next_draw = time.perf_counter() + redraw_every
            for b in range(steps_per_epoch or steps):
                if pos >= steps:
                    warnings.warn("Your input ran out of data; interrupting training. Make sure "
                                  "that it has at least `steps_per_epoch * epochs` batches.",
                                  stacklevel=2)
                    break
                if begin_cbs:
                    batch_begin = {}
                    for c in begin_cbs:
                        c.on_train_batch_begin(b, batch_begin)
                start = pos * batch_size
                count = min(batch_size, len(x) - start)
                pos += 1
                ls, ms, _ = core.train_step(x, y, idx, start, count)
                if not math.isfinite(ls):
                    raise ValueError(
                        f"The loss became {ls / count} at epoch {epoch + 1}, batch {b + 1}: "
                        "training stopped (like Keras's TerminateOnNaN). Lower the learning "
                        "rate, scale the inputs, or check the targets.")
                loss_sum += ls
                sums += ms
                seen += count
                if end_cbs or (progbar and time.perf_counter() >= next_draw):
                    logs = _pythonify(self._logs(names, sums, loss_sum, seen))
                    for c in end_cbs:
                        c.on_train_batch_end(b, logs)
                    if progbar and time.perf_counter() >= next_draw:
                        progbar.on_train_batch_end(b, logs)
                        next_draw = time.perf_counter() + redraw_every
                if self.stop_training:
                    break
            if pos >= steps:
                pos = 0
            epoch_logs = self._logs(names, sums, loss_sum, seen)
            if validation_data is not None:
                val = self.evaluate(*((validation_data, None) if isinstance(
                    validation_data, (DataLoader, Dataset)) else validation_data),
                    batch_size=batch_size, callbacks=cbl, return_dict=True)
                epoch_logs.update({"val_" + k: v for k, v in val.items()})
            cbl.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if self.stop_training:
                break
        cbl.on_train_end(training_logs)
        return self.history

    @staticmethod
    def _logs(names, sums, loss_sum, seen):
        logs = {n: float(s / seen) for n, s in zip(names, sums)}
        logs["loss"] = loss_sum / seen
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False,
                 callbacks=None):
        """Returns the loss, or ``[loss, *metrics]`` when the model has metrics (a dict when
        ``return_dict``), at inference behaviour (dropout off). ``callbacks`` get the
        ``on_test_*`` hooks."""
        if self.optimizer is None:
            raise ValueError("You must call compile() before evaluate().")
        if x is None:
            raise ValueError("evaluate needs input data x (an array or a DataLoader).")
        level = checks.verbosity(verbose)
        cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=level != 0)
        x, y, batch_size, order, steps = self._data(x, y, batch_size, "evaluate")
        self._resolve_metrics(y.shape)
        if cbl is not callbacks:
            cbl.set_model(self)
            cbl.set_params({"verbose": verbose, "epochs": 1, "steps": steps})
        # Inside fit the progress bar ignores the validation batches: skip calling it.
        quiet = cbl._progbar if type(cbl._progbar) is ProgbarLogger and \
            cbl._progbar._called_in_fit else None
        begin_cbs = cbl._batch_callbacks("on_test_batch_begin")
        end_cbs = cbl._batch_callbacks("on_test_batch_end", skip=quiet)
        names = [m.name for m in self._metrics]
        idx = order()
        cbl.on_test_begin()
        loss_sum, sums, seen = 0.0, np.zeros(len(names)), 0
        for b in range(steps):
            if begin_cbs:
                batch_begin = {}
                for c in begin_cbs:
                    c.on_test_batch_begin(b, batch_begin)
            start = b * batch_size
            count = min(batch_size, len(x) - start)
            ls, ms, _ = self._core.test_step(x, y, idx, start, count)
            loss_sum += ls
            sums += ms
            seen += count
            if end_cbs:
                logs = _pythonify(self._logs(names, sums, loss_sum, seen))
                for c in end_cbs:
                    c.on_test_batch_end(b, logs)
        logs = _pythonify(self._logs(names, sums, loss_sum, seen))
        cbl.on_test_end(logs)
        if return_dict:
            return logs
        return logs["loss"] if not names else [logs["loss"]] + [logs[n] for n in names]

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Returns the outputs for the samples in x (an array or a DataLoader) as float32.
        ``callbacks`` get the ``on_predict_*`` hooks."""
        core = self._core
        if (verbose == 0 and callbacks is None and core is not None and type(x) is np.ndarray
                and x.dtype == np.float32 and x.ndim and x.flags.c_contiguous and 0 < len(x)
                and (batch_size is None and len(x) <= 32
                     or type(batch_size) is int and 0 < len(x) <= batch_size)
                and x.shape[1:] == self._input_shape):
            # Fast path for one small ready batch (latency-bound serving): one C++ call.
            out = np.empty((len(x),) + self._output_tail, dtype=np.float32)
            core.predict(x, out, 0, len(x))
            return out
        if x is None:
            raise ValueError("predict needs input data x (an array or a DataLoader).")
        if isinstance(x, Dataset):
            x = x.x
        if isinstance(x, DataLoader):
            batch_size, x = x.batch_size, x.dataset.x
        batch_size = checks.check_batch_size(batch_size)
        level = checks.verbosity(verbose)
        cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=level != 0)
        x = self._as_input(x)
        if x.dtype.kind == "f" and x.dtype != np.float32:
            checks.check_finite(x, "x")  # a clear message for float64 beyond float32's range
        n = len(x)
        out = np.empty((n,) + tuple(self._core.output_shape), dtype=np.float32)
        steps = -(-n // batch_size)
        if cbl is not callbacks:
            cbl.set_model(self)
            cbl.set_params({"verbose": verbose, "epochs": 1, "steps": steps})
        begin_cbs = cbl._batch_callbacks("on_predict_batch_begin")
        end_cbs = cbl._batch_callbacks("on_predict_batch_end")
        cbl.on_predict_begin()
        for b in range(steps):
            if begin_cbs:
                batch_begin = {}
                for c in begin_cbs:
                    c.on_predict_batch_begin(b, batch_begin)
            start = b * batch_size
            count = min(batch_size, n - start)
            self._core.predict(x, out, start, count)
            if end_cbs:
                # A read-only view: what the hook sees is what predict returns.
                batch_out = out[start:start + count]
                batch_out.flags.writeable = False
                logs = {"outputs": batch_out}
                for c in end_cbs:
                    c.on_predict_batch_end(b, logs)
        cbl.on_predict_end()
        return out

    def __call__(self, x, training=False):
        return self.predict(x, batch_size=max(1, len(x)), verbose=0)

    def _shuffle_generator(self):
        if self._shuffle_rng is None:
            self._shuffle_rng = np.random.default_rng(_random.draw_seed())
        return self._shuffle_rng
