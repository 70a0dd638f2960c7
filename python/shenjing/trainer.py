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
from shenjing import _data_adapters as da, _trainer_stream as stream
from shenjing import distribution as dist
from shenjing import _checks as checks, metrics as metrics_mod, optimizers as optimizers_mod
from shenjing import _fit_args as fa, _sample_weights as sw, _weighted_metrics as wm
from shenjing._loss_graph import NoLoss
from shenjing._metric_eager import EagerMetrics
from shenjing._trainer_batch import TrainerBatch
from shenjing._trainer_compile import TrainerCompile
from shenjing._trainer_data import TrainerData
from shenjing._trainer_inference import TrainerInference
from shenjing.callbacks import CallbackList, ProgbarLogger, TerminateOnNaN, _pythonify
from shenjing.data import DataLoader, Dataset


class Trainer(TrainerData, TrainerCompile, TrainerBatch, TrainerInference):
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
                with one loss per output, or a dict keyed by output name. None (or None for
                an output) adds no loss for it: the model then trains on its ``add_loss``
                terms and the other outputs' losses, and needs no targets for it.
            loss_weights: with several outputs, a list or dict (by output name) of scalar
                weights: the loss minimised is the weighted sum of the output losses (each
                weight 1.0 when None). A float with one loss.
            metrics: list of names ('accuracy', 'mae', 'mse', ...) or Metric instances, all
                for the one output of a single-output model; with several outputs a list with
                one entry (a metric, a list of metrics or None) per output, or a dict keyed by
                output name, e.g. ``{'a': 'accuracy', 'b': ['accuracy', 'mse']}``. Logged as
                ``<output>_<metric>`` (Keras 3's names).
        """
        # Resolve everything before changing the model, so a failed compile() changes nothing.
        optimizer = optimizers_mod.get(optimizer)
        outs = mio.output_structure(self)
        deferred = None
        try:
            plan = cu.resolve_losses(loss, loss_weights, outs)
        except cu.DeferredLossError as e:
            deferred, plan = str(e), [(NoLoss(), 1.0) for _ in outs.names]
        order = [k for k in cu.loss_order(loss, outs) if not isinstance(plan[k][0], NoLoss)]
        if len(outs.names) == 1 and (isinstance(metrics, (str, metrics_mod.Metric))
                                     or callable(metrics)):
            metrics = [metrics]
        metric_ids = cu.resolve_metric_ids(metrics, outs)
        cu.check_metric_ids(metric_ids)
        weighted_ids = wm.resolve_ids(weighted_metrics, outs)
        if loss is None:
            user_loss = None
        elif cu.is_leaf(loss):
            user_loss = plan[0][0]
        elif isinstance(loss, dict):
            user_loss = {k: plan[outs.names.index(k)][0] for k in loss}
        else:
            user_loss = [None if isinstance(plan[k][0], NoLoss) else plan[k][0]
                         for k in outs.list_index]

        def apply():
            self.optimizer, self.loss = optimizer, user_loss
            self._out, self._loss_plan, self._loss_order = outs, plan, order
            self._metric_ids = metric_ids
            self._deferred_loss_error = deferred
            self._weighted_ids, self._weighted_arg, self._weighted = weighted_ids, \
                weighted_metrics, None
            self._metrics = None
            self._compile_args = (loss, loss_weights, metrics)
            if self._core is not None:
                self._compile_core()
        self._rollback_on_error(apply)

    # -- training --------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Trains the model for a fixed number of epochs.

        Args:
            x, y: samples and targets: one array each for a single input/output; with
                several, a list (in ``model.inputs``/``model.outputs`` order) or a dict keyed
                by input/output name. Or a ``shenjing.data.DataLoader`` as x (single input
                and output), or a Python iterable of batches ``(x, y[, sample_weight])``
                as x: ``utils.PyDataset``, a generator, a torch DataLoader (_trainer_stream).
            batch_size: samples per gradient update (32 when None).
            epochs: index of the last epoch to train (training starts at ``initial_epoch``).
            verbose: 'auto' or 1 (live progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: list of ``shenjing.callbacks.Callback`` (or a ``CallbackList``).
            validation_split: fraction of the samples, taken from the end before shuffling,
                to hold out and evaluate at the end of each epoch.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, val_sample_weight)`` (in
                the forms x, y and sample_weight take), a DataLoader or a Python iterable of
                batches, evaluated after each epoch.
            shuffle: reshuffle the samples (a PyDataset's batches) before each epoch.
            class_weight: dict class index -> weight (single output): each sample's loss is
                weighted by its class's weight (1 for classes not listed).
            sample_weight: array of one weight per sample, or (samples, steps) for a sequence
                output (per output with several: a list or dict); the loss is
                sum(weight * loss) / number of loss values, as Keras's sum_over_batch_size.
            steps_per_epoch: batches per epoch; the next epoch continues where this one
                stopped, and an epoch that runs out of data ends early with a warning (Keras).
                Without batch_size, the batch size is ceil(samples / steps_per_epoch).
            validation_steps: validation batches run at each validation (from the first; an
                iterable continues where the last validation stopped).
            validation_batch_size: batch size of the validation data (default: batch_size).
            validation_freq: validate every that many epochs, or at the epochs (from 1) of a
                list.

        Returns:
            A ``History`` whose ``history`` dict maps 'loss', metric names and their 'val_'
            counterparts to per-epoch values, keys sorted (Keras 3's names: with several
            outputs ``<output>_loss`` and ``<output>_<metric>``).
        """
        if da.is_stream(x):  # Python iterables: _trainer_stream.py
            if sample_weight is not None:
                raise ValueError("fit: `sample_weight` is not supported with a dataset, "
                                 "generator or other iterable: yield (x, y, sample_weight) "
                                 "batches instead.")
            return stream.fit(self, x, y, batch_size, epochs, verbose, callbacks,
                              validation_split, validation_data, shuffle, class_weight,
                              initial_epoch, steps_per_epoch, validation_steps,
                              validation_batch_size, validation_freq)
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
        fa.check(validation_steps, validation_batch_size, validation_freq)
        loader = fa.refuse_weights_with_loader(x, sample_weight)
        if sample_weight is not None and class_weight is not None:
            raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
        # Checked before anything changes: a bad callbacks list must not half-build the model.
        cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_history=True, add_progbar=level != 0)
        val = val_sw = None
        user_batch_size = batch_size
        if validation_split and validation_data is None:
            prepared, val = self._split(x, y, validation_split)
            if sample_weight is not None:  # split as x and y are (Keras splits all three)
                sample_weight, val_sw = sw.sample_weights(
                    self, sample_weight, prepared.n + val.n).split(prepared.n)
            x, y = prepared, None
        p, batch, order, steps = self._data(x, y, batch_size, "fit", shuffle)
        batch_size, steps = fa.steps_of(batch_size, batch, p.n, steps_per_epoch, steps, loader)
        weights = sw.resolve(self, p, sample_weight, class_weight).core_arg()
        train_shapes = [list(s) for s in getattr(self, "_core_input_shapes", None) or []]
        if da.is_stream(validation_data):
            val = stream.validation_source(validation_data, validation_steps,
                                           epochs - initial_epoch)
        elif validation_data is not None and not isinstance(validation_data, (DataLoader,
                                                                               Dataset)):
            vx, vy, vsw = fa.unpack_validation(validation_data)
            val = self._arrays(vx, vy, "fit", prefix="validation ")
            val_sw = sw.sample_weights(self, vsw, val.n, "validation sample_weight")
        elif validation_data is not None:
            self._single_io_only("fit")
            val = validation_data
        if train_shapes:  # the validation data may have had other sequence lengths
            self._specialize(train_shapes)
        self._resolve_metrics(p.ys)
        eager = EagerMetrics(self)  # custom metrics updated in Python per batch (rare)

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
        # BackupAndRestore sets where a resumed fit starts (Keras's model._initial_epoch).
        initial_epoch, self._initial_epoch = self._initial_epoch or initial_epoch, None
        # With TerminateOnNaN the callback stops training; otherwise a bad loss is an error.
        nan_stops = cbl._has(TerminateOnNaN)
        training_logs = None
        pos = 0  # batches of the current pass over the data done (steps_per_epoch continues it)
        for epoch in range(initial_epoch, epochs):
            cbl.on_epoch_begin(epoch)
            if eager:
                eager.reset()  # Keras resets the metrics at each epoch
            if train_shapes:  # back from validation data of other sequence lengths
                self._specialize(train_shapes)
                core = self._core
            self.optimizer._push_learning_rate(core)
            # A user schedule or callable is Python: evaluated before every batch (the one
            # per-batch Python cost; built-in schedules run inside the core's update).
            py_lr = self.optimizer._python_learning_rate()
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
                if py_lr:
                    core.learning_rate = self.optimizer.learning_rate
                start = pos * batch_size
                count = min(batch_size, n - start)
                pos += 1
                if parallel:
                    ls, ms, outs = dp.train_step(self, core, x, y, idx, start, count, weights)
                else:
                    # A keyword argument costs pybind11 ~0.3 us: passed only when needed.
                    ls, ms, outs = core.train_step(x, y, idx, start, count) if weights is None \
                        else core.train_step(x, y, idx, start, count, sample_weight=weights)
                if eager:
                    eager.update_rows(y, idx, start, count)
                if not math.isfinite(ls) and not nan_stops:
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
            if val is not None and fa.should_eval(epoch, validation_freq):
                logs = self.evaluate(val, None, batch_size=validation_batch_size or
                                     user_batch_size, callbacks=cbl, return_dict=True,
                                     sample_weight=val_sw, steps=validation_steps)
                epoch_logs.update({"val_" + k: v for k, v in logs.items()})
            cbl.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if self.stop_training:
                break
        if epochs > 0:
            self.optimizer.finalize_variable_values()  # use_ema: the averages become weights
        cbl.on_train_end(training_logs)
        return self.history

    def _shuffle_generator(self):
        if self._shuffle_rng is None:
            self._shuffle_rng = np.random.default_rng(_random.draw_seed())
        return self._shuffle_rng
