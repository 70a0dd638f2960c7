"""Sequential models with the Keras 3 API. Each batch of fit/evaluate/predict is one C++ call
(with the GIL released); Python only slices, counts and prints progress."""
import json
import math
import numbers
import os
import textwrap
import time
import warnings

import numpy as np

from shenjing import _config, _core, _random, losses as losses_mod, metrics as metrics_mod
from shenjing import optimizers as optimizers_mod, saving
from shenjing.callbacks import CallbackList, ProgbarLogger, _pythonify
from shenjing.data import DataLoader, Dataset
from shenjing.layers.base import Layer, _auto_name, _shape_tuple
from shenjing.layers.input import InputLayer

_SPARSE_CE = 5


def _check_batch_size(batch_size):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}.")
    return int(batch_size)


def _verbosity(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, received {verbose!r}.")
    return verbose


def _numeric(a, what):
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or \
            np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"{what} must be a numeric array, received dtype {a.dtype}.")
    if a.ndim == 0 or a.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {a.shape}): it needs at least one sample.")
    return a


# Input dtypes the core reads directly, converting each batch as it gathers it (so a uint8
# data set is never copied whole as float32); other dtypes are converted here, once.
_CORE_DTYPES = frozenset(np.dtype(t) for t in (
    np.float32, np.float64, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32,
    np.uint64, np.int64, np.bool_))
_F32_MAX = float(np.finfo(np.float32).max)


def _to_float32(a, what):
    """a as float32; values too large for float32 are refused instead of becoming inf."""
    if a.dtype == np.float32:
        return a
    _check_finite(a, what)
    return a.astype(np.float32)


def _check_finite(a, what):
    """ValueError when a floating array holds NaN/inf or values beyond float32's range.
    Checks in chunks, so a large float64 data set costs no full-size temporary."""
    if a.dtype == np.float32 and a.flags.c_contiguous:
        if not _core.all_finite(a):  # one parallel pass, no temporary array
            raise ValueError(f"{what} contains NaN or infinity; fix or drop those samples "
                             f"first.")
        return
    if not np.issubdtype(a.dtype, np.floating):
        return  # integers and booleans are always finite in float32
    step = max(1, (1 << 22) // max(1, a[:1].size))  # about 4M values per chunk
    for i in range(0, len(a), step):
        chunk = a[i:i + step]
        if not np.isfinite(chunk).all():
            raise ValueError(f"{what} contains NaN or infinity; fix or drop those samples "
                             f"first.")
        if a.dtype.itemsize > 4 and np.abs(chunk).max(initial=0.0) > _F32_MAX:
            raise ValueError(f"{what} has values too large for float32 (the largest is about "
                             f"3.4e38); scale them first.")


class Sequential:
    """A linear stack of layers.

    ``Sequential([layers.Input((784,)), layers.Dense(10)])``, ``model.add(layer)``, or a
    subclass that calls ``self.add`` in ``__init__``. The input shape comes from an ``Input``,
    from ``input_shape=``/``input_dim=`` on the first layer, or from the first data seen.
    """

    def __init__(self, layers=None, trainable=True, name=None):
        self.name = name or _auto_name("Sequential")
        self._layers = []
        self._trainable = bool(trainable)
        self._input_shape = None
        self._core = None
        self.optimizer = self.loss = None
        self._metric_ids = []
        self._metrics = None
        self.stop_training = False
        self.history = None
        self._shuffle_rng = None  # drawn from the package generator on first use
        layers = list(layers or [])
        # A failed construction leaves the given layers as they were (reusable elsewhere).
        self._rollback_on_error(lambda: [self.add(layer) for layer in layers], layers)

    def _rollback_on_error(self, change, new_layers=()):
        """Runs ``change()``; if it raises, puts the model, its layers (and ``new_layers``)
        and the optimizer's core link back exactly as they were, so a failed add, pop,
        build or compile changes nothing (the old C++ model is still referenced, untouched:
        a rebuild always fills a new one)."""
        model_vars, layers = dict(vars(self)), list(self._layers)
        layer_vars = [(layer, dict(vars(layer))) for layer in
                      list(self._layers) + [l for l in new_layers if isinstance(l, Layer)]]
        optimizer = self.optimizer
        optimizer_core = getattr(optimizer, "_model", None)
        try:
            return change()
        except BaseException:
            vars(self).clear()
            vars(self).update(model_vars)
            self._layers = layers
            for layer, saved in layer_vars:
                vars(layer).clear()
                vars(layer).update(saved)
            if optimizer is not None:
                optimizer._model = optimizer_core
            raise

    # -- structure -------------------------------------------------------------------------
    def add(self, layer):
        """Appends a layer (or sets the input shape when given ``Input(...)``). A layer the
        model cannot take raises and leaves the model as it was."""
        self._rollback_on_error(lambda: self._add(layer), [layer])

    def _add(self, layer):
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("Input must be the first layer of a Sequential model.")
            self._input_shape = layer.shape[1:]
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a shenjing layer, received {layer!r}.")
        if not self._layers and self._input_shape is None and layer._input_shape_arg:
            self._input_shape = layer._input_shape_arg
        self._layers.append(layer)
        if self._input_shape is not None:
            self._build()

    def pop(self):
        """Removes the last layer."""
        if not self._layers:
            raise ValueError("There are no layers to pop.")

        def pop():
            layer = self._layers.pop()
            if self._input_shape is not None:
                self._build()
            return layer
        return self._rollback_on_error(pop)

    @property
    def layers(self):
        return list(self._layers)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """As Keras: sets ``trainable`` on every layer; training sees it at the next compile()."""
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = bool(value)

    @property
    def built(self):
        return self._core is not None

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return (None,) + tuple(self._core.output_shape)

    def build(self, input_shape=None):
        """Builds the model for a batched ``input_shape`` such as ``(None, 784)``."""
        if input_shape is not None:
            if isinstance(input_shape, (str, bytes)) or not isinstance(
                    input_shape, (tuple, list)) or len(input_shape) < 2:
                raise TypeError(f"build() expects a batched input shape such as (None, 784), "
                                f"received {input_shape!r}.")
            input_shape = _shape_tuple(tuple(input_shape)[1:],
                                       "build(): the input shape after the batch dimension")
        elif self._input_shape is None:
            raise ValueError("build() needs an input shape, e.g. model.build((None, 784)).")

        def build():
            if input_shape is not None:
                self._input_shape = input_shape
            self._build()
        self._rollback_on_error(build)

    def _build(self, init=True, core=None):
        """(Re)creates the C++ model; weights of layers built before are kept, new ones are
        initialized (left at zero when not ``init``: a load sets them next). ``core``: a core
        model already holding these layers (from ``_core.Model.load``) to attach to. On
        failure the model and its layers are left as they were."""
        self._rollback_on_error(lambda: self._build_core(init, core))

    def _build_core(self, init, core):
        kept = [layer.get_weights() if layer.built and core is None else None
                for layer in self._layers]
        if core is not None and core.num_layers != len(self._layers):
            raise ValueError(f"the core model has {core.num_layers} layers, the config "
                             f"{len(self._layers)}.")
        adopt = core is not None
        core = core or _core.Model(list(self._input_shape))
        shape = tuple(self._input_shape)
        for i, layer in enumerate(self._layers):
            if not adopt:
                layer._add_to(core)
            fresh = kept[i] is None or [w.shape for w in kept[i]] != \
                [v.shape for _, v, _ in core.params(i)]
            layer._attach(core, i, shape, init=fresh and init and not adopt)
            if not fresh:
                layer.set_weights(kept[i])
            shape = layer.output_shape[1:]
        self._core = core
        self._input_shape = tuple(self._input_shape)
        self._output_tail = tuple(core.output_shape)
        if self.optimizer is not None:
            self._compile_core()

    def _require_built(self, what):
        if self._core is None:
            raise ValueError(f"This model has not yet been built, so {what} is not available. "
                             "Give the first layer an input_shape, start with Input(shape), "
                             "call build(), or fit it on data first.")

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
        for i, layer in enumerate(self._layers):
            self._core.set_trainable(i, bool(layer.trainable))
        kind, from_logits, delta = self.loss._spec()
        self._core.compile(kind, from_logits, delta, self.optimizer._spec(),
                           [m._code for m in self._metrics or []])
        self.optimizer._model = self._core

    def _resolve_metrics(self, y_shape):
        out_shape = self.output_shape
        metrics = [metrics_mod.get(m, y_shape, out_shape) for m in self._metric_ids]
        for m in metrics:
            metrics_mod.check_targets(m, y_shape, out_shape)
        if self._metrics is None or [m._code for m in metrics] != \
                [m._code for m in self._metrics]:
            self._metrics = metrics
            self._core.set_metrics([m._code for m in metrics])

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for m in self._metrics or []]

    # -- data ------------------------------------------------------------------------------
    def _as_input(self, x):
        """x as a C-contiguous float32 array of this model's input shape (converted once)."""
        x = _numeric(x, "x")
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
        if x.dtype not in _CORE_DTYPES:
            x = _to_float32(x, "x")
        return np.ascontiguousarray(x)

    def _as_target(self, y, n):
        """y as float32, checked against the output shape the way Keras checks it: targets
        shaped like the output (a trailing axis of 1 may be added or dropped), or for
        sparse_categorical_crossentropy one integer label per position of the output but its
        last axis (``(batch,)`` for ``(None, 10)``, ``(batch, time)`` for ``(None, time, 10)``)."""
        y = _numeric(y, "y")
        if y.shape[0] != n:
            raise ValueError(f"x and y must have the same number of samples: x has {n}, "
                             f"y has {y.shape[0]}.")
        _check_finite(y, "y")
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
            x = DataLoader(x, batch_size=_check_batch_size(batch_size))
        if isinstance(x, DataLoader):
            if y is not None:
                raise ValueError(f"{what}: pass y inside the DataLoader, not separately.")
            loader = x
            x, y = loader.dataset.x, loader.dataset.y
            batch_size, drop_last, order = loader.batch_size, loader.drop_last, loader.order
        else:
            batch_size = _check_batch_size(batch_size)
            order = None
        x = self._as_input(x)
        if y is None:
            raise ValueError(f"{what} needs targets y.")
        y = self._as_target(y, len(x))
        _check_finite(x, "x")
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
        level = _verbosity(verbose)
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
            x, y = _numeric(x, "x"), _numeric(y, "y")
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
            _check_finite(vx, "validation x")
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
                ls, ms = core.train_step(x, y, idx, start, count)
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
        level = _verbosity(verbose)
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
            ls, ms = self._core.test_step(x, y, idx, start, count)
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
        batch_size = _check_batch_size(batch_size)
        level = _verbosity(verbose)
        cbl = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=level != 0)
        x = self._as_input(x)
        if x.dtype.kind == "f" and x.dtype != np.float32:
            _check_finite(x, "x")  # a clear message for float64 beyond float32's range
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

    # -- configs and files -----------------------------------------------------------------
    def get_config(self):
        """Keras's Sequential config: name, trainable and the layer configs, the input first."""
        layers = []
        if self._input_shape is not None:
            layers.append({"module": "keras.layers", "class_name": "InputLayer",
                           "config": {"batch_shape": [None, *self._input_shape],
                                      "dtype": "float32", "sparse": False,
                                      "name": "input_layer"},
                           "registered_name": None})
        layers += [_config.serialize(layer) for layer in self._layers]
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32",
                "layers": layers}

    @classmethod
    def from_config(cls, config, custom_objects=None, _core=None):
        """A new model from ``get_config()`` output (weights freshly initialized)."""
        from shenjing import layers as layers_mod
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config needs a 'layers' list.")
        classes = {c.__name__: c for c in vars(layers_mod).values() if isinstance(c, type)
                   and issubclass(c, Layer) and c not in (Layer, InputLayer)}
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        specs = config["layers"]
        if specs and isinstance(specs[0], dict) and specs[0].get("class_name") == "InputLayer":
            cfg = specs[0].get("config") or {}
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if not isinstance(shape, list) or len(shape) < 2:
                raise ValueError("InputLayer: 'batch_shape' must be a list [null, d1, ...].")
            model.add(InputLayer(shape=shape[1:]))
            specs = specs[1:]
        model._layers = [_config.deserialize(s, classes, f"layer {i}")
                         for i, s in enumerate(specs)]
        if model._input_shape is None and model._layers:
            model._input_shape = model._layers[0]._input_shape_arg
        if model._input_shape is not None:
            model._build(core=_core)
        return model

    def to_json(self, **kwargs):
        """The architecture as Keras JSON (``shenjing.models.model_from_json`` reads it)."""
        spec = {"module": "keras", "class_name": "Sequential", "config": self.get_config(),
                "registered_name": None}
        if self._input_shape is not None:
            spec["build_config"] = {"input_shape": [None, *self._input_shape]}
        return json.dumps(spec, **kwargs)

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Saves architecture, weights and optimizer state to one file (safetensors, whatever
        the extension, e.g. ``model.keras``); ``shenjing.models.load_model`` restores it.
        The file is written beside the target and renamed into place, so a failed save leaves
        any previous file intact."""
        saving.save_model(self, filepath, overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Saves the weights alone (e.g. ``model.weights.h5``; the content is safetensors)."""
        saving.save_weights(self, filepath, overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Loads weights from ``save_weights`` or ``save`` output into this (built) model.

        Layers are matched by position; with ``skip_mismatch`` a layer whose weights are
        missing or shaped differently keeps its own."""
        self._require_built("load_weights()")
        path = os.fspath(filepath)
        _, tensors = saving.read(path)
        saving.assign_weights(self, tensors, path, skip_mismatch)

    def _compile_config(self):
        ms = [m if isinstance(m, str) else _config.serialize(m) if hasattr(m, "get_config")
              else m.__name__ for m in self._metric_ids]
        return {"optimizer": _config.serialize(self.optimizer),
                "loss": _config.serialize(self.loss), "metrics": ms, "loss_weights": None,
                "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
                "jit_compile": False}

    def _training_state(self):
        """What a resumed fit needs besides weights and optimizer: the random streams."""
        rng = self._shuffle_rng.bit_generator.state if self._shuffle_rng else None
        streams = {str(i): self._core.random_state(i) for i in range(len(self._layers))
                   if self._core.random_state(i) is not None}
        return {"shuffle_rng": rng, "random_states": streams}

    def _restore_training_state(self, state):
        if state.get("shuffle_rng") is not None:
            rng = np.random.default_rng()
            rng.bit_generator.state = state["shuffle_rng"]
            self._shuffle_rng = rng
        for i, v in (state.get("random_states") or {}).items():
            self._core.set_random_state(int(i), int(v))

    # -- export ------------------------------------------------------------------------------
    def export_onnx(self, filepath, opset=None):
        """Writes the model as an ONNX graph (needs the ``onnx`` package: ``pip install onnx``).

        The graph takes float32 input of shape ``(batch, *input_shape)`` named ``input`` and
        gives what ``predict`` gives, named ``output``. Returns ``filepath``.
        """
        from shenjing import _onnx
        self._require_built("export_onnx()")
        return _onnx.export(self, filepath, opset=opset)

    def export(self, filepath, format="onnx", verbose=True):
        """Keras 3's ``model.export``; only ``format='onnx'`` is available."""
        if format != "onnx":
            raise ValueError(f"export: format={format!r} is not supported; use 'onnx'.")
        return self.export_onnx(filepath)

    # -- weights and reporting ---------------------------------------------------------------
    def get_weights(self):
        """Copies of every weight array, layer by layer."""
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Sets every weight from a list shaped like ``get_weights()``."""
        self._require_built("set_weights")
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"set_weights expects {expected} arrays, received {len(weights)}.")
        i = 0
        for layer in self._layers:
            k = len(layer.weights)
            layer.set_weights(weights[i:i + k])
            i += k

    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def count_params(self):
        self._require_built("count_params()")
        return sum(layer.count_params() for layer in self._layers)

    def get_layer(self, name=None, index=None):
        """The layer called ``name`` or at position ``index`` (Keras's errors for neither,
        both or an index out of range)."""
        if index is not None and name is not None:
            raise ValueError(f"Provide only a layer name or a layer index. Received: "
                             f"index={index}, name={name}.")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"get_layer: index must be an integer, received {index!r}.")
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self._layers)} layers.")
            return self._layers[index]
        if name is None:
            raise ValueError("Provide either a layer name or layer index at `get_layer`.")
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}.")

    def summary(self, line_length=None, positions=None, print_fn=None):
        """Prints the layers, output shapes and parameter counts, as Keras does."""
        self._require_built("summary()")
        out = print_fn or print
        widths = (33, 24, 15)
        heavy = "━"

        def row(cells, left, mid, right, align=("<", "<", ">")):
            # A cell too long for its column wraps at spaces onto more lines, as Keras's does.
            wrapped = [textwrap.wrap(c, w - 2, break_on_hyphens=False) or [""]
                       for c, w in zip(cells, widths)]
            lines = []
            for k in range(max(len(c) for c in wrapped)):
                parts = [c[k] if k < len(c) else "" for c in wrapped]
                lines.append(left + mid.join(f" {c:{a}{w - 2}} " for c, w, a in
                                             zip(parts, widths, align)) + right)
            return "\n".join(lines)

        def rule(l, m, r, ch):
            return l + m.join(ch * w for w in widths) + r

        out(f'Model: "{self.name}"')
        out(rule("┏", "┳", "┓", heavy))
        out(row(("Layer (type)", "Output Shape", "Param #"), "┃", "┃", "┃"))
        out(rule("┡", "╇", "┩", heavy))
        for i, layer in enumerate(self._layers):
            for line in row((f"{layer.name} ({type(layer).__name__})", str(layer.output_shape),
                             f"{layer.count_params():,}"), "│", "│", "│").split("\n"):
                out(line)
            if i < len(self._layers) - 1:
                out(rule("├", "┼", "┤", "─"))
        out(rule("└", "┴", "┘", "─"))
        total = self.count_params()

        def size(n):
            b = n * 4
            for unit in ("B", "KB", "MB", "GB"):
                if b < 1024 or unit == "GB":
                    return f"{b:.2f} {unit}"
                b /= 1024

        trainable = int(sum(w.size for w in self.trainable_weights))
        out(f" Total params: {total:,} ({size(total)})")
        out(f" Trainable params: {trainable:,} ({size(trainable)})")
        out(f" Non-trainable params: {total - trainable:,} ({size(total - trainable)})")


Model = Sequential
load_model = saving.load_model
model_from_json = saving.model_from_json
