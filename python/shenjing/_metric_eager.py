"""Custom stateful metrics whose ``update_state`` cannot be traced into the model's graph
(keras.io's ``CategoricalTruePositives`` compares labels shaped (batch,) with predictions
shaped (batch, 1), which Keras broadcasts to (batch, batch): every label against every
prediction of the batch, a computation across samples that the per-sample graph cannot hold).

Such a metric runs as Keras runs every metric: ``update_state`` on each batch's targets and
predictions, eagerly in NumPy, the predictions copied from the core's last forward
(``Model::last_output``). That is Python per batch, so fit warns once per metric, naming
what could not be traced; every other metric stays in the core."""
import warnings

import numpy as np

from shenjing.layers.node import KerasTensor


def is_eager(metric):
    return bool(getattr(metric, "_eager", None))


def decide(model, metrics, ys, out_shapes):
    """Tries to trace each custom stateful metric's update_state once (on placeholders, into
    nothing); one that cannot be traced is marked to run per batch."""
    from shenjing import _data_parallel as dp, _metric_custom
    from shenjing.metrics import _stateful
    from shenjing.ops import _trace
    for k, ms in enumerate(metrics):
        for m in ms:
            if not _stateful(m) or hasattr(m, "_eager"):
                continue
            t_true = KerasTensor((None,) + tuple(ys[k].shape[1:]), "float32", name="y_true")
            t_pred = KerasTensor(tuple(out_shapes[k]), "float32", name="y_pred")  # (None, ...)
            _trace._scopes.append(m)
            try:
                _metric_custom.trace_update(m, t_true, t_pred)
                m._eager = None
            except (ValueError, TypeError) as e:
                m._eager = str(e)
            finally:
                _trace._scopes.pop()
            if m._eager:
                if dp.active():
                    raise ValueError(f"Metric {m.name}: update_state cannot be traced into the "
                                     f"model ({m._eager}), and under a distribution it cannot "
                                     f"run per batch in Python either.")
                warnings.warn(
                    f"Metric '{m.name}' ({type(m).__name__}): update_state could not be traced "
                    f"into the model's graph, so it runs in Python on every batch, as in Keras "
                    f"(slower). Reason: {m._eager}", stacklevel=4)


class EagerMetrics:
    """The per-batch updates of a model's eager metrics during one fit/evaluate/batch call."""

    def __init__(self, model):
        self.core = model._core
        self.items = [(k, m) for k, ms in enumerate(model._metrics or [])
                      for m in ms if is_eager(m)]

    def __bool__(self):
        return bool(self.items)

    def reset(self):
        for _, m in self.items:
            m.reset_state()

    def update(self, ys, n):
        """After a batch call of n rows: each metric's update_state(y_true, y_pred) of that
        batch (``ys``: the batch's targets per output)."""
        for k, m in self.items:
            m.update_state(ys[k], self.core.last_output(k, n))

    def update_rows(self, y, idx, start, n):
        """update() for rows ``idx[start:start + n]`` (or start..start+n) of the targets ``y``
        (one array, or a list per output), as the array loops pass them to the core."""
        rows = slice(start, start + n) if idx is None else idx[start:start + n]
        ys = [y] if isinstance(y, np.ndarray) else list(y)
        self.update([a[rows] for a in ys], n)


def result(metric):
    out = np.asarray(metric.result(), dtype=np.float32)
    return float(out) if out.ndim == 0 else out
