"""fit/evaluate/predict on Python iterables (``_data_adapters.Source``): the array loops of
trainer.py with batches that arrive one at a time. Each batch is checked and converted as the
array path checks a whole data set (``Trainer._arrays``/``_inputs``: shapes, dtypes, NaN),
then trained in one C++ call with the GIL released, while the Source's threads or processes
prepare the next batches. Callbacks, progress bar, History and stop_training behave as for
arrays; an error names the batch it is about."""
import math
import time

import numpy as np

from shenjing import _checks as checks, _data_adapters as da, _data_parallel as dp
from shenjing import _fit_args as fa, _multi_io as mio, _sample_weights as weights_mod
from shenjing import distribution as dist
from shenjing._metric_eager import EagerMetrics
from shenjing._prefetch import END
from shenjing.callbacks import CallbackList, ProgbarLogger, TerminateOnNaN, _pythonify


def _count(what, v, allow_none=False, positive=False):
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < int(positive):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{what} must be {'None or ' if allow_none else ''}{kind} integer, "
                         f"received {v!r}.")


def _refuse_parallel(what):
    if dp.active():
        raise ValueError(
            f"{what}: under a DataParallel distribution over {dist.world_size()} processes the "
            f"data must be arrays (each process takes its part of every global batch); a "
            f"Python iterable cannot be split between the processes.")


def _relabel(e, label, what):
    return type(e)(f"{what}: {label}: {e}")


def _convert(model, batch, what, y_shapes=None, class_weight=None):
    """(Prepared, sample weights or None) of one batch from the Source."""
    x, y, sw, label = batch
    if y is None:
        raise ValueError(f"{what}: {label} has no targets: a batch must be (inputs, targets) "
                         f"or (inputs, targets, sample_weights).")
    try:
        p = model._arrays(x, y, what)
        if class_weight is not None:
            weights_mod.check_class_weight_model(model)
        # Any form fit's sample_weight takes: per sample or step, per output.
        sw = weights_mod.sample_weights(model, sw, p.n).core_arg()
    except (ValueError, TypeError) as e:
        raise _relabel(e, label, what) from e
    if y_shapes is not None and [a.shape[1:] for a in p.ys] != y_shapes:
        raise ValueError(f"{what}: {label} has targets of shapes "
                         f"{[a.shape for a in p.ys]}, but the first batch's were "
                         f"{[(None,) + s for s in y_shapes]}: every batch needs the same "
                         f"per-sample target shape.")
    return p, sw


def _take(model, source, pending, what, y_shapes):
    """The batch to run next: the one converted ahead (``pending``) or the Source's next, as
    (Prepared, sample weights); END when the data ran out (with Keras's warning)."""
    if pending is not None:
        return pending
    batch = source.next()
    if batch is END:
        da.warn_ran_out()
        return END
    return _convert(model, batch, what, y_shapes)


def _step(fn, p, sw):
    x, y = p.core_args()
    if sw is None:
        return fn(x, y, None, 0, p.n)
    return fn(x, y, None, 0, p.n, sample_weight=sw)


def _first(source, what):
    batch = source.next()
    if batch is END:
        raise ValueError(f"When passing a {source.kind} to {what}(), it must yield at least one "
                         f"batch; received none.")
    return batch


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, class_weight, initial_epoch, steps_per_epoch, validation_steps,
        validation_batch_size=None, validation_freq=1):
    if model.optimizer is None:
        raise ValueError("You must call compile() before fit().")
    level = checks.verbosity(verbose) if dist.rank() == 0 else 0
    _count("epochs", epochs)
    _count("initial_epoch", initial_epoch)
    _count("steps_per_epoch", steps_per_epoch, allow_none=True, positive=True)
    _count("validation_steps", validation_steps, allow_none=True, positive=True)
    fa.check(validation_steps, validation_batch_size, validation_freq)
    if validation_split:
        raise ValueError(f"`validation_split` is only supported for Tensors or NumPy arrays. "
                         f"Found incompatible type in the input: {type(x)}. Pass "
                         f"validation_data instead.")
    _refuse_parallel("fit")
    da.check_args(x, "fit", y, class_weight, shuffle)
    val_stream = da.is_stream(validation_data)
    if val_stream:
        validation_source(validation_data, validation_steps, epochs - initial_epoch, False)
    elif validation_data is not None:
        fa.unpack_validation(validation_data)  # (x, y) or (x, y, sample_weight), checked now
    cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
        callbacks, add_history=True, add_progbar=level != 0)
    source = da.Source(x, "fit", steps_per_epoch, shuffle, class_weight,
                       model._shuffle_generator, epochs=epochs - initial_epoch)
    val, val_args = None, {}
    try:
        source.begin_epoch()
        # The first batch builds a model without shapes (then class_weight can be checked).
        pending = _convert(model, _first(source, "fit"), "fit", class_weight=class_weight)
        y_shapes = [a.shape[1:] for a in pending[0].ys]
        if val_stream:
            val = validation_source(validation_data, validation_steps, epochs - initial_epoch)
        elif validation_data is not None:  # arrays, evaluated as fit's array path does
            vx, vy, vsw = fa.unpack_validation(validation_data)
            val = model._arrays(vx, vy, "fit", prefix="validation ")
            val_args["sample_weight"] = weights_mod.sample_weights(
                model, vsw, val.n, "validation sample_weight")
            val_args["batch_size"] = validation_batch_size or batch_size
            val_args["steps"] = validation_steps
        model._resolve_metrics(pending[0].ys)
        _fit_epochs(model, source, pending, y_shapes, val, cbl, callbacks, verbose, epochs,
                    initial_epoch, validation_freq, val_args)
    finally:
        source.close()
        if isinstance(val, da.Source):
            val.close()
    return model.history


def validation_source(data, steps, n_epochs, make=True):
    """fit's validation_data as a Source kept over the epochs (checked first)."""
    _count("validation_steps", steps, allow_none=True, positive=True)
    da.check_args(data, "fit")
    if da._kind_name(data) == "generator" and steps is None and n_epochs > 1:
        raise ValueError(
            "validation_data is a generator, which is read once and never restarted: pass "
            "validation_steps (the batches of each evaluation, from an endless generator), or "
            "a PyDataset or re-iterable (e.g. a torch DataLoader) that starts over at each "
            "evaluation.")
    return da.Source(data, "evaluate", steps, epochs=n_epochs) if make else None


def _fit_epochs(model, source, pending, y_shapes, val, cbl, callbacks, verbose, epochs,
                initial_epoch, validation_freq, val_args):
    if cbl is not callbacks:
        cbl.set_model(model)
        cbl.set_params({"verbose": verbose, "epochs": epochs, "steps": source.epoch_steps})
    progbar = cbl._progbar if type(cbl._progbar) is ProgbarLogger else None
    begin_cbs = cbl._batch_callbacks("on_train_batch_begin")
    end_cbs = cbl._batch_callbacks("on_train_batch_end", skip=progbar)
    redraw_every = 0.05 if progbar and progbar.verbose == 1 else math.inf
    names, trackers = model._log_names, model._trackers
    eager = EagerMetrics(model)  # custom metrics updated in Python per batch (rare)
    model.stop_training = False
    cbl.on_train_begin()
    # As trainer.fit: BackupAndRestore's resume epoch, TerminateOnNaN, Python-side rates.
    initial_epoch, model._initial_epoch = model._initial_epoch or initial_epoch, None
    nan_stops = cbl._has(TerminateOnNaN)
    py_lr = model.optimizer._python_learning_rate()
    training_logs = None
    for epoch in range(initial_epoch, epochs):
        if pending is None and source.one_shot and source.exhausted():
            da.warn_ran_out()  # a generator is never restarted: nothing left to train on
            break
        cbl.on_epoch_begin(epoch)
        if eager:
            eager.reset()  # Keras resets the metrics at each epoch
        if pending is None:
            source.begin_epoch()  # after the callbacks' hook, as Keras's EpochIterator
        model.optimizer._push_learning_rate(model._core)
        loss_sum, sums, seen, b = 0.0, np.zeros(model._n_sums), 0, 0
        out_sums = np.zeros(len(y_shapes))
        next_draw, logs, drawn = time.perf_counter() + redraw_every, None, True
        target, ran_out = source.epoch_steps, False
        while target is None or b < target:
            item, pending = _take(model, source, pending, "fit", y_shapes), None
            if item is END:
                ran_out = True
                break
            p, sw = item
            for c in begin_cbs:
                c.on_train_batch_begin(b, {})
            if py_lr:
                model._core.learning_rate = model.optimizer.learning_rate
            ls, ms, outs = _step(model._core.train_step, p, sw)
            if eager:
                eager.update(p.ys, p.n)
            if not math.isfinite(ls) and not nan_stops:
                raise ValueError(
                    f"The loss became {ls / p.n} at epoch {epoch + 1}, batch {b + 1}: training "
                    "stopped (like Keras's TerminateOnNaN). Lower the learning rate, scale the "
                    "inputs, or check the targets.")
            loss_sum += ls
            sums += ms
            if trackers:
                out_sums += outs
            seen += p.n
            drawn = False
            if end_cbs or (progbar and time.perf_counter() >= next_draw):
                logs = _pythonify(model._logs(names, sums, loss_sum, seen, trackers, out_sums))
                for c in end_cbs:
                    c.on_train_batch_end(b, logs)
                if progbar and time.perf_counter() >= next_draw:
                    progbar.on_train_batch_end(b, logs)
                    next_draw, drawn = time.perf_counter() + redraw_every, True
            b += 1
            if model.stop_training:
                break
        source.end_epoch(ran_out)
        if seen == 0:  # nothing left to train on
            break
        epoch_logs = model._logs(names, sums, loss_sum, seen, trackers, out_sums)
        if progbar and not drawn:  # the bar counts the batches of an epoch of unknown length
            progbar.on_train_batch_end(b - 1, _pythonify(epoch_logs))
        validate = val is not None and fa.should_eval(epoch, validation_freq)
        if validate and isinstance(val, da.Source):
            vlogs = evaluate(model, val, callbacks=cbl, return_dict=True)
        elif validate:
            vlogs = model.evaluate(val, None, callbacks=cbl, return_dict=True, **val_args)
        if validate:
            epoch_logs.update({"val_" + k: v for k, v in vlogs.items()})
        cbl.on_epoch_end(epoch, epoch_logs)
        training_logs = epoch_logs
        if model.stop_training:
            break
    if epochs > 0:
        model.optimizer.finalize_variable_values()  # use_ema: the averages become weights
    cbl.on_train_end(training_logs)


def evaluate(model, x, y=None, batch_size=None, verbose="auto", return_dict=False,
             callbacks=None, steps=None):
    """Keras's evaluate over an iterable, or over fit's validation Source (kept between
    epochs: ``validation_steps`` continue it where the last evaluation stopped)."""
    if model.optimizer is None:
        raise ValueError("You must call compile() before evaluate().")
    level = checks.verbosity(verbose) if dist.rank() == 0 else 0
    _count("steps", steps, allow_none=True, positive=True)
    _refuse_parallel("evaluate")
    own = not isinstance(x, da.Source)
    if own:
        da.check_args(x, "evaluate", y)
    source = da.Source(x, "evaluate", steps) if own else x
    cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
        callbacks, add_progbar=level != 0)
    ran_out = False
    try:
        source.begin_epoch()
        first = source.next()
        if first is END:
            raise ValueError(
                f"evaluate: the {source.kind} has no batch left" + (
                    "" if own else " for this epoch's validation: a generator is never "
                    "restarted, so it needs at least validation_steps * epochs batches") + ".")
        pending = _convert(model, first, "evaluate")
        y_shapes = [a.shape[1:] for a in pending[0].ys]
        model._resolve_metrics(pending[0].ys)
        if cbl is not callbacks:
            cbl.set_model(model)
            cbl.set_params({"verbose": verbose, "epochs": 1, "steps": source.epoch_steps})
        quiet = cbl._progbar if type(cbl._progbar) is ProgbarLogger and \
            cbl._progbar._called_in_fit else None
        begin_cbs = cbl._batch_callbacks("on_test_batch_begin")
        end_cbs = cbl._batch_callbacks("on_test_batch_end", skip=quiet)
        names, trackers = model._log_names, model._trackers
        cbl.on_test_begin()
        eager = EagerMetrics(model)  # custom metrics updated in Python per batch (rare)
        eager.reset()
        loss_sum, sums, seen, b = 0.0, np.zeros(model._n_sums), 0, 0
        out_sums = np.zeros(len(y_shapes))
        target = source.epoch_steps
        while target is None or b < target:
            item, pending = _take(model, source, pending, "evaluate", y_shapes), None
            if item is END:
                ran_out = True
                break
            p, sw = item
            for c in begin_cbs:
                c.on_test_batch_begin(b, {})
            ls, ms, outs = _step(model._core.test_step, p, sw)
            if eager:
                eager.update(p.ys, p.n)
            loss_sum += ls
            sums += ms
            if trackers:
                out_sums += outs
            seen += p.n
            if end_cbs:
                logs = _pythonify(model._logs(names, sums, loss_sum, seen, trackers, out_sums))
                for c in end_cbs:
                    c.on_test_batch_end(b, logs)
            b += 1
    finally:
        source.end_epoch(ran_out)
        if own:
            source.close()
    logs = _pythonify(model._logs(names, sums, loss_sum, seen, trackers, out_sums))
    cbl.on_test_end(logs)
    if return_dict:
        return logs
    values = [logs[k] for k in model._eval_keys]
    return values[0] if len(values) == 1 else values


def predict(model, x, batch_size=None, verbose="auto", callbacks=None, steps=None):
    """Keras's predict over an iterable: the outputs of every batch, concatenated."""
    level = checks.verbosity(verbose) if dist.rank() == 0 else 0
    _count("steps", steps, allow_none=True, positive=True)
    _refuse_parallel("predict")
    if not da.is_stream(x):  # arrays with steps: read as batches
        x = da.array_batches(x, None, checks.check_batch_size(batch_size))
    da.check_args(x, "predict")
    source = da.Source(x, "predict", steps)
    cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
        callbacks, add_progbar=level != 0)
    ran_out, parts = False, None
    try:
        source.begin_epoch()
        batch = _first(source, "predict")
        target, b = source.epoch_steps, 0
        while True:
            cx, n = _predict_inputs(model, batch)
            if parts is None:  # the first batch built the model
                parts = [[] for _ in model._core.output_shapes]
                if cbl is not callbacks:
                    cbl.set_model(model)
                    cbl.set_params({"verbose": verbose, "epochs": 1, "steps": target})
                begin_cbs = cbl._batch_callbacks("on_predict_batch_begin")
                end_cbs = cbl._batch_callbacks("on_predict_batch_end")
                cbl.on_predict_begin()
            for c in begin_cbs:
                c.on_predict_batch_begin(b, {})
            outs = [np.empty((n,) + tuple(s), dtype=np.float32)
                    for s in model._core.output_shapes]
            model._core.predict(cx, outs[0] if len(outs) == 1 else outs, 0, n)
            for part, out in zip(parts, outs):
                part.append(out)
            if end_cbs:
                views = []
                for out in outs:
                    views.append(out[:])
                    views[-1].flags.writeable = False
                logs = {"outputs": mio.pack_outputs(model, views)}
                for c in end_cbs:
                    c.on_predict_batch_end(b, logs)
            b += 1
            if target is not None and b >= target:
                break
            batch = source.next()
            if batch is END:
                ran_out = True
                da.warn_ran_out()
                break
    finally:
        source.end_epoch(ran_out)
        source.close()
    cbl.on_predict_end()
    return mio.pack_outputs(model, [_concat(part, k) for k, part in enumerate(parts)])


def _predict_inputs(model, batch):
    x, _, _, label = batch
    try:
        xs, labels = model._inputs(x)
        for a, lab in zip(xs, labels):
            if a.dtype.kind == "f" and a.dtype != np.float32:
                checks.check_finite(a, lab)
    except (ValueError, TypeError) as e:
        raise _relabel(e, label, "predict") from e
    return (xs[0] if len(xs) == 1 else xs), len(xs[0])


def _concat(part, k):
    shapes = {a.shape[1:] for a in part}
    if len(shapes) > 1:
        raise ValueError(f"predict: the batches gave outputs of different shapes for output "
                         f"{k} ({sorted(shapes)}), which do not concatenate: predict each "
                         f"sequence length separately.")
    return part[0] if len(part) == 1 else np.concatenate(part)
