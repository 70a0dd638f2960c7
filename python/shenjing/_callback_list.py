"""CallbackList (Keras 3's): calls every callback's hook in order with Keras-shaped logs, and
tells the training loops which per-batch hooks some callback actually overrides."""
import numpy as np

from shenjing.callbacks import Callback, History, ProgbarLogger, _is_default


def _pythonify(logs):
    """Keras's ``pythonify_logs``: a new dict, keys sorted, nested dicts flattened, values made
    Python floats where they convert (arrays such as predict outputs stay as they are)."""
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(_pythonify(value))
            continue
        if not (isinstance(value, np.ndarray) and value.size != 1):
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        result[key] = value
    return result


# The per-batch hooks, and the alias the base version of each forwards to.
_BATCH_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end",
                  "on_test_batch_begin": None, "on_test_batch_end": None,
                  "on_predict_batch_begin": None, "on_predict_batch_end": None}


class CallbackList(Callback):
    """Calls every callback in order, as Keras's ``CallbackList``.

    Args:
        callbacks: a list of ``Callback`` instances (or one).
        add_history: append a ``History`` unless the list has one.
        add_progbar: append a ``ProgbarLogger`` unless the list has one.
        model: the model the callbacks are used with.
        **params: passed to every callback's ``set_params`` (``verbose``, ``epochs``,
            ``steps``).
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        super().__init__()
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        elif not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of shenjing.callbacks.Callback, "
                            f"received {callbacks!r}.")
        for c in callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks must be shenjing.callbacks.Callback instances, "
                                f"received {c!r} of type {type(c).__name__}.")
        self.callbacks = list(callbacks)
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        self._progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.set_model(model)
        self.set_params(params)

    def set_params(self, params):
        self.params = params
        if params:
            for c in self.callbacks:
                c.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history:
            model.history = self._history
        for c in self.callbacks:
            c.set_model(model)

    def _batch_callbacks(self, hook, skip=None):
        """The callbacks whose per-batch ``hook`` (or its alias) is not the base no-op: the
        only ones a loop needs to call for each batch. ``skip``: one the loop handles itself
        (the progress bar, which fit redraws at most every 50 ms)."""
        alias = _BATCH_ALIASES[hook]
        out = []
        for c in self.callbacks:
            if c is skip:
                continue
            if isinstance(c, CallbackList):
                if c._batch_callbacks(hook):
                    out.append(c)
            elif not _is_default(getattr(c, hook)) or \
                    (alias and not _is_default(getattr(c, alias))):
                out.append(c)
        return out

    def _has(self, cls):
        """Whether a callback of this class is in the list (or a nested list)."""
        return any(c._has(cls) if isinstance(c, CallbackList) else isinstance(c, cls)
                   for c in self.callbacks)

    def _call(self, hook, *args):
        logs = _pythonify(args[-1] if args else None)
        for c in self.callbacks:
            getattr(c, hook)(*args[:-1], logs)

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_batch_end", batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)
