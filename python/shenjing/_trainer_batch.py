"""Keras 3's single-batch calls (``train_on_batch``, ``test_on_batch``, ``predict_on_batch``)
and ``model(x)`` on arrays: each one C++ call on the whole batch. As in Keras 3, the metrics
are reset at every call, so the values returned are this batch's."""
import numpy as np

from shenjing import _data_parallel as dp, _metric_custom, _metric_eager, _multi_io as mio
from shenjing import _sample_weights as sw
from shenjing.callbacks import _pythonify


class TrainerBatch:
    """Mixed into ``Trainer``."""

    def _logs(self, names, sums, loss_sum, seen, trackers=(), out_sums=None):
        """Keras's logs: 'loss' (the total), the compiled metrics and, with several outputs,
        each output's unweighted loss (``<output>_loss``), all means over the samples seen;
        a state metric's result comes from its state summed over the batches (_metric_slices);
        weighted metrics are divided by their output's weight sum (0 when it is 0, Keras's
        divide_no_nan)."""
        logs = {"loss": loss_sum / seen}
        slices = self._metric_slices
        for name, (a, b, m, width) in zip(names, slices):
            if m is None:
                logs[name] = float(sums[a] / seen)
            elif _metric_eager.is_eager(m):  # updated per batch in Python (_metric_eager.py)
                logs[name] = _metric_eager.result(m)
            elif not getattr(m, "_state", False):  # a custom stateful metric
                logs[name] = _metric_custom.result_from(m, self._metric_increments[id(m)],
                                                        sums[a:b])
            else:  # the metric object holds the state too, as a Keras metric after fit does
                m._total, m._width = np.array(sums[a:b]), width
                logs[name] = m.result()
        for name, where in zip(names[len(slices):], self._weighted_slices):
            if len(where) == 2:  # (weighted sum, weight sum) of a mean metric
                v, d = where
                logs[name] = float(sums[v] / sums[d]) if sums[d] != 0 else 0.0
            else:  # a weighted state metric: its state, as above
                a, b, m, width = where
                m._total, m._width = np.array(sums[a:b]), width
                logs[name] = m.result()
        for name, k in trackers:
            logs[name] = float(out_sums[k] / seen)
        return logs

    def _batch_logs(self, stats, n, return_dict):
        ls, ms, outs = stats
        logs = _pythonify(self._logs(self._log_names, list(ms), ls, n, self._trackers,
                                     list(outs)))
        if return_dict:
            return logs
        values = [logs[k] for k in self._eval_keys]  # Keras's _flatten_metrics_in_order
        return values[0] if len(values) == 1 else values

    def _one_batch(self, x, y, what):
        if self.optimizer is None:
            raise ValueError(f"You must call compile() before {what}().")
        if x is None:
            raise ValueError(f"{what} needs input data x.")
        p = self._arrays(x, y, what)
        if p.n == 0:
            raise ValueError(f"{what}: the batch has no samples.")
        return p

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One gradient update on the batch (x, y) (optionally weighted: ``sample_weight``, or
        ``class_weight`` a dict class -> weight). Returns the batch's loss, or ``[loss,
        metrics...]`` in ``metrics_names`` order (a dict when ``return_dict``)."""
        if class_weight is not None and sample_weight is not None:
            raise ValueError(
                "Arguments `sample_weight` and `class_weight` cannot be specified at the same "
                f"time. Received: sample_weight={sample_weight}, class_weight={class_weight}")
        p = self._one_batch(x, y, "train_on_batch")
        weights = sw.resolve(self, p, sample_weight, class_weight).core_arg()
        self._resolve_metrics(p.ys)
        cx, cy = p.core_args()
        core = self._core
        self.optimizer._push_learning_rate(core)  # a schedule stays a schedule
        if dp.active():
            dp.prepare(self)
            stats = dp.train_step(self, core, cx, cy, None, 0, p.n, weights)
        else:
            stats = core.train_step(cx, cy, None, 0, p.n, sample_weight=weights)
        self._eager_batch(p)
        return self._batch_logs(stats, p.n, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (and metrics) of the batch (x, y) at inference behaviour, as
        ``train_on_batch`` returns them, without updating."""
        p = self._one_batch(x, y, "test_on_batch")
        weights = sw.sample_weights(self, sample_weight, p.n).core_arg()
        self._resolve_metrics(p.ys)
        cx, cy = p.core_args()
        if dp.active():
            stats = dp.test_step(self._core, cx, cy, None, 0, p.n, self._n_sums,
                                 len(p.ys), weights)
        else:
            stats = self._core.test_step(cx, cy, None, 0, p.n, sample_weight=weights)
        self._eager_batch(p)
        return self._batch_logs(stats, p.n, return_dict)

    def _eager_batch(self, p):
        """Metrics reset at every single-batch call (Keras 3): an eager metric sees this batch."""
        eager = _metric_eager.EagerMetrics(self)
        if eager:
            eager.reset()
            eager.update(p.ys, p.n)

    def predict_on_batch(self, x):
        """The outputs for the batch x (as ``predict`` returns them), in one call."""
        return self._call_on_arrays(x)

    def _call_on_arrays(self, x, training=None):
        """``model(x)`` on arrays: predict over every sample in one batch. With
        training=True only for a model whose layers all compute the same in training (no
        Dropout, trainable BatchNormalization or recurrent dropout), else a clear error."""
        if training:
            layer = _differs_in_training(self)
            if layer is not None:
                raise ValueError(
                    f"model(x, training=True) on arrays is not supported for a model holding "
                    f"{type(layer).__name__} layer '{layer.name}', which behaves differently in "
                    f"training (shenjing runs training behaviour only inside fit and "
                    f"train_on_batch). Call model(x) for inference, or train with "
                    f"train_on_batch.")
        names, _ = mio.input_structure(self)
        first = mio.flatten(x, names, False, "x", "input")[0] if not isinstance(x, dict) \
            else next(iter(x.values()), [])
        n = len(first) if hasattr(first, "__len__") else 1
        return self.predict(x, batch_size=max(1, n), verbose=0)


def _differs_in_training(model):
    """The first layer whose training behaviour differs from inference (Dropout, a trainable
    BatchNormalization, a recurrent layer with dropout), or None."""
    from shenjing.layers.core import Dropout
    from shenjing.layers.normalization import BatchNormalization
    for layer in model._sublayers():
        if isinstance(layer, Dropout) or (isinstance(layer, BatchNormalization) and
                                          layer.trainable):
            return layer
        if getattr(layer, "dropout", 0) or getattr(layer, "recurrent_dropout", 0):
            return layer
    return None
