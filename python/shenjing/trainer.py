"""Training and inference of a model with the Keras 3 API: compile, fit, evaluate, predict (as
Keras's ``trainers/trainer.py``), for any number of inputs and outputs. Each batch is one C++
call (with the GIL released); Python only slices, counts, runs callbacks and prints progress.
What compile's arguments mean per output is in _compile_utils.py; how x and y are checked and
matched to the inputs and outputs in _trainer_data.py and _multi_io.py."""
import math
import numbers
import time
import warnings

import numpy as np

from shenjing import _compile_utils as cu, _data_parallel as dp, _multi_io as mio, _random
from shenjing import _metric_custom, distribution as dist
from shenjing import _checks as checks, metrics as metrics_mod, optimizers as optimizers_mod
from shenjing._trainer_compile import TrainerCompile
from shenjing._trainer_data import TrainerData
from shenjing.callbacks import CallbackList, ProgbarLogger, _pythonify
from shenjing.data import DataLoader, Dataset


class Trainer(TrainerData, TrainerCompile):
    """The training half of a model (mixed into ``Model``): needs ``self._core``, the
    layers, the input shapes and ``_build``/``_rollback_on_error`` from the model."""

    # -- compile ---------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Configures the model for training.

        Args:
            optimizer: name ('adam', 'sgd', 'rmsprop', 'adamw', 'adagrad'), instance or
                Keras config dict.
            loss: name ('mse', 'categorical_crossentropy', ...), function, Loss instance or
                Keras config dict; with several outputs, one loss for every output, a list
                with one loss per output, or a dict keyed by output name.
            loss_weights: with several outputs, a list or dict (by output name) of scalar
                weights: the loss minimised is the weighted sum of the output losses (each
                weight 1.0 when None). A float with one loss.
            metrics: list of names ('accuracy', 'mae', 'mse', ...) or Metric instances, all
                for the one output of a single-output model; with several outputs a list with
                one entry (a metric, a list of metrics or None) per output, or a dict keyed by
                output name, e.g. ``{'a': 'accuracy', 'b': ['accuracy', 'mse']}``. Logged as
                ``<output>_<metric>`` (Keras 3's names).
        """
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'.")
        if weighted_metrics is not None:
            raise ValueError("weighted_metrics are not supported.")
        # Resolve everything before changing the model, so a failed compile() changes nothing.
        optimizer = optimizers_mod.get(optimizer)
        outs = mio.output_structure(self)
        plan = cu.resolve_losses(loss, loss_weights, outs)
        order = cu.loss_order(loss, outs)
        if len(outs.names) == 1 and (isinstance(metrics, (str, metrics_mod.Metric))
                                     or callable(metrics)):
            metrics = [metrics]
        metric_ids = cu.resolve_metric_ids(metrics, outs)
        cu.check_metric_ids(metric_ids)
        if cu.is_leaf(loss):
            user_loss = plan[0][0]
        elif isinstance(loss, dict):
            user_loss = {k: plan[outs.names.index(k)][0] for k in loss}
        else:
            user_loss = [plan[k][0] for k in outs.list_index]

        def apply():
            self.optimizer, self.loss = optimizer, user_loss
            self._out, self._loss_plan, self._loss_order = outs, plan, order
            self._metric_ids = metric_ids
            self._metrics = None
            self._compile_args = (loss, loss_weights, metrics)
            if self._core is not None:
                self._compile_core()
        self._rollback_on_error(apply)

    # -- training --------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            steps_per_epoch=None):
        """Trains the model for a fixed number of epochs.

        Args:
            x, y: samples and targets: one array each for a single input/output; with
                several, a list (in ``model.inputs``/``model.outputs`` order) or a dict keyed
                by input/output name. Or a ``shenjing.data.DataLoader`` as x (single input
                and output).
            batch_size: samples per gradient update (32 when None).
            epochs: index of the last epoch to train (training starts at ``initial_epoch``).
            verbose: 'auto' or 1 (live progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: list of ``shenjing.callbacks.Callback`` (or a ``CallbackList``).
            validation_split: fraction of the samples, taken from the end before shuffling,
                to hold out and evaluate at the end of each epoch.
            validation_data: ``(x_val, y_val)`` (in the forms x and y take) or a DataLoader
                evaluated after each epoch.
            shuffle: reshuffle the samples before each epoch.
            steps_per_epoch: batches per epoch; the next epoch continues where this one
                stopped, and an epoch that runs out of data ends early with a warning (Keras).

        Returns:
            A ``History`` whose ``history`` dict maps 'loss', metric names and their 'val_'
            counterparts to per-epoch values, keys sorted (Keras 3's names: with several
            outputs ``<output>_loss`` and ``<output>_<metric>``).
        """
        if self.optimizer is None:
            raise ValueError("You must call compile() before fit().")
        if x is None:
            raise ValueError("fit needs input data x (an array or a DataLoader).")
        level = checks.verbosity(verbose) if dist.rank() == 0 else 0  # rank 0 prints
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
        val = None
        if validation_split and validation_data is None:
            prepared, val = self._split(x, y, validation_split)
            x, y = prepared, None
        p, batch_size, order, steps = self._data(x, y, batch_size, "fit", shuffle)
        train_shapes = [list(s) for s in getattr(self, "_core_input_shapes", None) or []]
        if validation_data is not None and not isinstance(validation_data, (DataLoader,
                                                                             Dataset)):
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val).")
            val = self._arrays(*validation_data, "fit", prefix="validation ")
        elif validation_data is not None:
            self._single_io_only("fit")
            val = validation_data
        if train_shapes:  # the validation data may have had other sequence lengths
            self._specialize(train_shapes)
        self._resolve_metrics(p.ys)

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
        names, trackers = self._log_names, self._trackers
        x, y = p.core_args()  # built once: the batch loop only passes them on
        n = p.n
        parallel = dp.active()
        if parallel:
            dp.prepare(self)
        core = self._core
        self.stop_training = False
        cbl.on_train_begin()
        training_logs = None
        pos = 0  # batches of the current pass over the data done (steps_per_epoch continues it)
        for epoch in range(initial_epoch, epochs):
            cbl.on_epoch_begin(epoch)
            if train_shapes:  # back from validation data of other sequence lengths
                self._specialize(train_shapes)
                core = self._core
            core.learning_rate = self.optimizer.learning_rate
            if pos == 0:
                idx = order()
                if parallel:
                    idx = dp.broadcast_order(idx)
            loss_sum, sums, seen = 0.0, np.zeros(self._n_sums), 0
            out_sums = np.zeros(len(p.ys))
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
                if self._core is not core:  # a callback predicted at another length
                    if train_shapes:
                        self._specialize(train_shapes)
                    core = self._core
                start = pos * batch_size
                count = min(batch_size, n - start)
                pos += 1
                if parallel:
                    ls, ms, outs = dp.train_step(self, core, x, y, idx, start, count)
                else:
                    ls, ms, outs = core.train_step(x, y, idx, start, count)
                if not math.isfinite(ls):
                    raise ValueError(
                        f"The loss became {ls / count} at epoch {epoch + 1}, batch {b + 1}: "
                        "training stopped (like Keras's TerminateOnNaN). Lower the learning "
                        "rate, scale the inputs, or check the targets.")
                loss_sum += ls
                sums += ms
                if trackers:
                    out_sums += outs
                seen += count
                if end_cbs or (progbar and time.perf_counter() >= next_draw):
                    logs = _pythonify(self._logs(names, sums, loss_sum, seen, trackers,
                                                 out_sums))
                    for c in end_cbs:
                        c.on_train_batch_end(b, logs)
                    if progbar and time.perf_counter() >= next_draw:
                        progbar.on_train_batch_end(b, logs)
                        next_draw = time.perf_counter() + redraw_every
                if self.stop_training:
                    break
            if pos >= steps:
                pos = 0
            epoch_logs = self._logs(names, sums, loss_sum, seen, trackers, out_sums)
            if val is not None:
                logs = self.evaluate(val, None, batch_size=batch_size, callbacks=cbl,
                                     return_dict=True)
                epoch_logs.update({"val_" + k: v for k, v in logs.items()})
            cbl.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if self.stop_training:
                break
        cbl.on_train_end(training_logs)
        return self.history

    def _logs(self, names, sums, loss_sum, seen, trackers=(), out_sums=None):
        """Keras's logs: 'loss' (the total), the compiled metrics and, with several outputs,
        each output's unweighted loss (``<output>_loss``), all means over the samples seen;
        a state metric's result comes from its state summed over the batches."""
        logs = {"loss": loss_sum / seen}
        for name, (a, b, m, width) in zip(names, self._metric_slices):
            if m is None:
                logs[name] = float(sums[a] / seen)
            elif not getattr(m, "_state", False):  # a custom stateful metric
                logs[name] = _metric_custom.result_from(m, self._metric_increments[id(m)],
                                                        sums[a:b])
            else:  # the metric object holds the state too, as a Keras metric after fit does
                m._total, m._width = np.array(sums[a:b]), width
                logs[name] = m.result()
        for name, k in trackers:
            logs[name] = float(out_sums[k] / seen)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False,
                 callbacks=None):
        """Returns the loss, or a list ``[loss, ...]`` when the model has metrics or several
        outputs (in ``metrics_names`` order; a dict when ``return_dict``), at inference
        behaviour (dropout off). x and y take the forms ``fit`` takes. ``callbacks`` get the
        ``on_test_*`` hooks."""
        if self.optimizer is None:
            raise ValueError("You must call compile() before evaluate().")
        if x is None:
            raise ValueError("evaluate needs input data x (an array or a DataLoader).")
        level = checks.verbosity(verbose) if dist.rank() == 0 else 0  # rank 0 prints
        cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=level != 0)
        p, batch_size, order, steps = self._data(x, y, batch_size, "evaluate")
        self._resolve_metrics(p.ys)
        if cbl is not callbacks:
            cbl.set_model(self)
            cbl.set_params({"verbose": verbose, "epochs": 1, "steps": steps})
        # Inside fit the progress bar ignores the validation batches: skip calling it.
        quiet = cbl._progbar if type(cbl._progbar) is ProgbarLogger and \
            cbl._progbar._called_in_fit else None
        begin_cbs = cbl._batch_callbacks("on_test_batch_begin")
        end_cbs = cbl._batch_callbacks("on_test_batch_end", skip=quiet)
        names, trackers = self._log_names, self._trackers
        (x, y), n = p.core_args(), p.n
        idx = order()
        cbl.on_test_begin()
        loss_sum, sums, out_sums, seen = 0.0, np.zeros(self._n_sums), np.zeros(len(p.ys)), 0
        for b in range(steps):
            if begin_cbs:
                batch_begin = {}
                for c in begin_cbs:
                    c.on_test_batch_begin(b, batch_begin)
            start = b * batch_size
            count = min(batch_size, n - start)
            if dp.active():  # each rank evaluates its part; the sums are global
                ls, ms, outs = dp.test_step(self._core, x, y, idx, start, count, self._n_sums,
                                            len(p.ys))
            else:
                ls, ms, outs = self._core.test_step(x, y, idx, start, count)
            loss_sum += ls
            sums += ms
            if trackers:
                out_sums += outs
            seen += count
            if end_cbs:
                logs = _pythonify(self._logs(names, sums, loss_sum, seen, trackers, out_sums))
                for c in end_cbs:
                    c.on_test_batch_end(b, logs)
        logs = _pythonify(self._logs(names, sums, loss_sum, seen, trackers, out_sums))
        cbl.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs[k] for k in self._eval_keys]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Returns the outputs for the samples in x as float32: one array, or with several
        outputs a list in ``model.outputs`` order (a dict when the model's outputs were given
        as a dict). x: an array, a list (in ``model.inputs`` order) or a dict keyed by input
        name, or a DataLoader for a single-input model. ``callbacks`` get the
        ``on_predict_*`` hooks."""
        core = self._core
        if (verbose == 0 and callbacks is None and core is not None and type(x) is np.ndarray
                and x.dtype == np.float32 and x.ndim and x.flags.c_contiguous and 0 < len(x)
                and (batch_size is None and len(x) <= 32
                     or type(batch_size) is int and 0 < len(x) <= batch_size)
                and x.shape[1:] == self._input_shape
                and (self._fast_core is core or self._single_io(core))):
            # Fast path for one small ready batch (latency-bound serving): one C++ call.
            out = np.empty((len(x),) + self._output_tail, dtype=np.float32)
            core.predict(x, out, 0, len(x))
            return out
        if x is None:
            raise ValueError("predict needs input data x (an array or a DataLoader).")
        if isinstance(x, (Dataset, DataLoader)):
            self._single_io_only("predict")
        if isinstance(x, Dataset):
            x = x.x
        if isinstance(x, DataLoader):
            batch_size, x = x.batch_size, x.dataset.x
        batch_size = checks.check_batch_size(batch_size)
        level = checks.verbosity(verbose) if dist.rank() == 0 else 0  # rank 0 prints
        cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=level != 0)
        xs, labels = self._inputs(x)
        for a, label in zip(xs, labels):
            if a.dtype.kind == "f" and a.dtype != np.float32:
                checks.check_finite(a, label)  # a clear message beyond float32's range
        n = len(xs[0])
        outs = [np.empty((n,) + tuple(s), dtype=np.float32) for s in self._core.output_shapes]
        cx, cout = xs[0] if len(xs) == 1 else xs, outs[0] if len(outs) == 1 else outs
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
            self._core.predict(cx, cout, start, count)
            if end_cbs:
                # Read-only views: what the hook sees is what predict returns.
                views = []
                for out in outs:
                    views.append(out[start:start + count])
                    views[-1].flags.writeable = False
                logs = {"outputs": mio.pack_outputs(self, views)}
                for c in end_cbs:
                    c.on_predict_batch_end(b, logs)
        cbl.on_predict_end()
        return mio.pack_outputs(self, outs)

    _fast_core = None  # the core last seen to have one input and one output

    def _single_io(self, core):
        if core.num_inputs == 1 and core.num_outputs == 1:
            self._fast_core = core
            return True
        return False

    def __call__(self, x, training=False):
        return self._call_on_arrays(x)

    def _call_on_arrays(self, x):
        """``model(x)`` on arrays: predict over every sample in one batch."""
        names, _ = mio.input_structure(self)
        first = mio.flatten(x, names, False, "x", "input")[0] if not isinstance(x, dict) \
            else next(iter(x.values()), [])
        n = len(first) if hasattr(first, "__len__") else 1
        return self.predict(x, batch_size=max(1, n), verbose=0)

    def _shuffle_generator(self):
        if self._shuffle_rng is None:
            self._shuffle_rng = np.random.default_rng(_random.draw_seed())
        return self._shuffle_rng
