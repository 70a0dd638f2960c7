"""The inference half of the trainer: ``evaluate`` (loss and metrics, one C++ ``test_step``
per batch) and ``predict`` (one C++ call per batch, with a fast path for one small ready
batch), as Keras's ``trainers/trainer.py``; Python iterables go to _trainer_stream.py."""
import numpy as np

from shenjing import _data_adapters as da, _data_parallel as dp, _multi_io as mio
from shenjing import _checks as checks, _fit_args as fa, _sample_weights as sw
from shenjing import _trainer_stream as stream, distribution as dist
from shenjing._metric_eager import EagerMetrics
from shenjing.callbacks import CallbackList, ProgbarLogger, _pythonify
from shenjing.data import DataLoader, Dataset


class TrainerInference:
    """Mixed into ``Trainer``: needs the core, the compiled metrics and _trainer_data's
    checks."""

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Returns the loss, or a list ``[loss, ...]`` when the model has metrics or several
        outputs (in ``metrics_names`` order; a dict when ``return_dict``), at inference
        behaviour (dropout off). x, y and sample_weight take the forms ``fit`` takes;
        ``steps``: run only the first that many batches (without batch_size, the batch size
        is then ceil(samples / steps)). ``callbacks`` get the ``on_test_*`` hooks. Python
        iterables go to _trainer_stream.py."""
        if da.is_stream(x):
            if sample_weight is not None:
                raise ValueError("evaluate: `sample_weight` is not supported with a dataset, "
                                 "generator or other iterable: yield (x, y, sample_weight) "
                                 "batches instead.")
            return stream.evaluate(self, x, y, batch_size, verbose, return_dict, callbacks, steps)
        if self.optimizer is None:
            raise ValueError("You must call compile() before evaluate().")
        if x is None:
            raise ValueError("evaluate needs input data x (an array or a DataLoader).")
        level = checks.verbosity(verbose) if dist.rank() == 0 else 0  # rank 0 prints
        cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=level != 0)
        fa.check_steps(steps, "steps")
        loader = fa.refuse_weights_with_loader(x, sample_weight)
        p, batch, order, available = self._data(x, y, batch_size, "evaluate")
        batch_size, available = fa.steps_of(batch_size, batch, p.n, steps, available, loader)
        steps = fa.limit_steps(steps, available)
        weights = sw.sample_weights(self, sample_weight, p.n).core_arg()
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
        eager = EagerMetrics(self)  # custom metrics updated in Python per batch (rare)
        eager.reset()
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
                                            len(p.ys), weights)
            else:
                ls, ms, outs = self._core.test_step(x, y, idx, start, count) \
                    if weights is None else \
                    self._core.test_step(x, y, idx, start, count, sample_weight=weights)
            if eager:
                eager.update_rows(y, idx, start, count)
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

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None, steps=None):
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
        if da.is_stream(x) or steps is not None:  # Python iterables: _trainer_stream.py
            return stream.predict(self, x, batch_size, verbose, callbacks, steps)
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
    _initial_epoch = None  # set by BackupAndRestore when it resumes a fit

    def _single_io(self, core):
        if core.num_inputs == 1 and core.num_outputs == 1:
            self._fast_core = core
            return True
        return False
