"""State metrics (Keras 3's stateful metrics): the core adds a small float64 state vector per
batch (counts per threshold, sums per class; cpp/src/metrics_state.cpp), Python adds the
vectors up and computes ``result()`` from the total only when logs are built. Eager use
(``update_state``/``result``/``reset_state``/``m(y_true, y_pred)``) runs the same C++ code on
arrays. This file: the base class and the metrics that are not confusion counts (RMSE, R2Score,
F1Score/FBetaScore, the top-k accuracies); _metrics_confusion.py has the others."""
import numbers

import numpy as np

from shenjing.layers.base import _auto_name
from shenjing.metrics import Metric

# Codes of the C++ StateMetricKind enum.
_CONFUSION, _TOP_K, _SPARSE_TOP_K, _SQUARED_ERROR, _R2, _FSCORE = range(6)
EPSILON = 1e-7  # Keras's backend.epsilon()


def _core():
    from shenjing import _core as core  # the extension; imported late (docs build without it)
    return core


def divide_no_nan(a, b):
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return np.divide(a, b, out=np.zeros(a.shape), where=b != 0)


def _int_arg(value, what, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"Argument `{what}` must be an integer >= {low}. Received: "
                         f"{what}={value!r}")
    return int(value)


class StateMetric(Metric):
    """A metric whose result comes from a state accumulated over batches."""

    _state = True
    _kind = None
    _ndim = None  # the rank y_pred must have (R2Score, FBetaScore: 2), None: any
    _expands_y_true = False  # R2Score: y_true (n,) for y_pred (n, 1), as Keras expands it

    def __init__(self, name=None, dtype=None):
        # Keras names an instance made without a name from its class, numbered per process
        # ("precision", "precision_1", ...), as layers are named.
        self.name = name if name is not None else _auto_name(type(self).__name__)
        if dtype not in (None, "float32"):
            raise ValueError(f"{type(self).__name__}: shenjing computes metrics in float32; "
                             f"received dtype={dtype!r}.")
        self.dtype = "float32"
        self._total = None
        self._width = None

    # -- what the core computes ---------------------------------------------------------
    def _spec(self):
        return {"kind": self._kind}

    def _state_size(self, width):
        raise NotImplementedError

    def _check_width(self, width):
        """ValueError when predictions of ``width`` values per row do not suit the metric."""

    def _check_targets(self, y_true_shape, y_pred_shape):
        """compile/fit: ValueError unless the model's targets suit this metric."""
        if self._ndim is not None and len(y_pred_shape) != self._ndim:
            raise ValueError(f"{type(self).__name__} expects 2D inputs with shape (batch_size, "
                             f"output_dim). Received input shapes: y_pred.shape="
                             f"{tuple(y_pred_shape)} and y_true.shape={tuple(y_true_shape)}.")
        self._check_width(int(y_pred_shape[-1]) if len(y_pred_shape) > 1 else 1)

    def _result_from(self, state, width):
        """Keras's result() from an accumulated state vector."""
        raise NotImplementedError

    # -- Keras's Metric API on arrays ---------------------------------------------------
    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.ascontiguousarray(y_pred, dtype=np.float32)
        y_true = np.ascontiguousarray(y_true, dtype=np.float32)
        if y_pred.ndim == 0 or y_pred.size == 0:
            raise ValueError(f"{type(self).__name__}: y_pred must hold a batch of predictions, "
                             f"received shape {y_pred.shape}.")
        if self._ndim is not None and (y_pred.ndim != self._ndim or y_true.ndim != self._ndim) \
                and not (self._expands_y_true and y_pred.ndim == 2 and y_true.ndim == 1):
            raise ValueError(f"{type(self).__name__} expects 2D inputs with shape (batch_size, "
                             f"output_dim). Received input shapes: y_pred.shape="
                             f"{y_pred.shape} and y_true.shape={y_true.shape}.")
        samples = y_pred.shape[0]
        width = y_pred.shape[-1] if y_pred.ndim > 1 else 1
        positions = int(np.prod(y_pred.shape[1:-1], dtype=np.int64)) if y_pred.ndim > 1 else 1
        if y_true.size % (samples * positions):
            raise ValueError(f"{type(self).__name__}: y_true of shape {y_true.shape} does not "
                             f"match y_pred of shape {y_pred.shape}.")
        if self._width is not None and width != self._width:
            raise ValueError(f"{type(self).__name__} was built for predictions of "
                             f"{self._width} values per row; received shape {y_pred.shape}.")
        self._check_width(width)
        sw = None
        if sample_weight is not None:
            # A weight per sample (repeated over its positions) or per position (Keras's
            # temporal weights, shaped like y_pred without its last axis).
            sw = np.asarray(sample_weight, dtype=np.float32)
            rows = y_pred.shape[:-1] if y_pred.ndim > 1 else y_pred.shape
            if sw.ndim == 0:
                sw = np.full(samples, sw, np.float32)
            if sw.shape in ((samples,), (samples, 1)):
                sw = np.repeat(sw.reshape(samples), positions)
            elif sw.shape != rows:
                raise ValueError(f"{type(self).__name__}: sample_weight must be a scalar, hold "
                                 f"one weight per sample ({samples},) or be shaped {rows}; "
                                 f"received shape {sw.shape}.")
            sw = np.ascontiguousarray(sw.reshape(-1), dtype=np.float32)
        delta = _core().state_metric_update(self._spec(), y_true, y_pred, sw, samples,
                                            positions)
        self._width = width
        self._total = delta if self._total is None else self._total + delta

    def result(self):
        width = self._width or 1
        state = self._total if self._total is not None else np.zeros(self._state_size(width))
        return self._result_from(state, width)

    def reset_state(self):
        self._total = None

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _f32(value):
    value = np.asarray(value, dtype=np.float32)
    return value[()] if value.ndim == 0 else value


class _MeanState(StateMetric):
    """[weighted sum of per-sample values, sum of weights]: Keras's Mean."""

    def _state_size(self, width):
        return 2

    def _result_from(self, state, width):
        return _f32(divide_no_nan(state[0], state[1]))


class TopKCategoricalAccuracy(_MeanState):
    """Keras's top_k_categorical_accuracy: the true class (argmax of one-hot targets) is among
    the k largest predictions; ties with the k-th largest count as hits (ops.in_top_k)."""

    _kind = _TOP_K

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.k = _int_arg(k, "k", 1)

    def _spec(self):
        return {"kind": self._kind, "k": self.k}

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """The same with integer class labels (one per position)."""

    _kind = _SPARSE_TOP_K

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        if from_sorted_ids:
            raise ValueError("SparseTopKCategoricalAccuracy(from_sorted_ids=True) is not "
                             "supported: model outputs are scores, not sorted class ids.")
        super().__init__(k=k, name=name, dtype=dtype)


class RootMeanSquaredError(_MeanState):
    """sqrt of the mean over samples of each sample's mean squared error (Keras's Mean)."""

    _kind = _SQUARED_ERROR

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _result_from(self, state, width):
        return _f32(np.sqrt(divide_no_nan(state[0], state[1])))


class R2Score(StateMetric):
    """Keras's R2Score: per-class sums of y, y^2, squared residuals and weights."""

    _kind = _R2
    _ndim = 2
    _expands_y_true = True

    def __init__(self, class_aggregation="uniform_average", num_regressors=0,
                 name="r2_score", dtype=None):
        valid = (None, "uniform_average", "variance_weighted_average")
        if class_aggregation not in valid:
            raise ValueError("Invalid value for argument `class_aggregation`. Expected one of "
                             f"{valid}. Received: class_aggregation={class_aggregation}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors,
                                                               numbers.Integral) \
                or num_regressors < 0:
            raise ValueError("Invalid value for argument `num_regressors`. Expected a value "
                             f">= 0. Received: num_regressors={num_regressors!r}")
        super().__init__(name=name, dtype=dtype)
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)

    def _state_size(self, width):
        return 4 * width + 1

    def _result_from(self, state, width):
        import warnings
        total_sum, squared_sum, total_mse, count = state[:4 * width].reshape(4, width)
        num_samples = state[4 * width]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total_sum / count
            total = squared_sum - total_sum * mean
            raw = 1 - total_mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            r2 = np.mean(raw)
        elif self.class_aggregation == "variance_weighted_average":
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = np.sum(total * raw) / np.sum(total)
        else:
            r2 = raw
        if self.num_regressors != 0:
            if self.num_regressors > num_samples - 1:
                warnings.warn("More independent predictors than datapoints in adjusted R2 "
                              "score. Falling back to standard R2 score.", stacklevel=2)
            elif self.num_regressors == num_samples - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to "
                              "standard R2 score.", stacklevel=2)
            else:
                n, p = num_samples, self.num_regressors
                r2 = 1.0 - (1.0 - r2) * (n - 1.0) / (n - p - 1.0)
        return _f32(r2)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype,
                "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


class FBetaScore(StateMetric):
    """Keras's FBetaScore: per-class true/false positives, false negatives and supports."""

    _kind = _FSCORE
    _ndim = 2

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score",
                 dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, "
                             f"'micro', 'macro', 'weighted'}}. Received: average={average}")
        if not isinstance(beta, float):
            raise ValueError("Invalid `beta` argument value. It should be a Python float. "
                             f"Received: beta={beta} of type '{type(beta)}'")
        if not beta > 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: "
                             f"beta={beta}")
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError("Invalid `threshold` argument value. It should be a Python "
                                 f"float. Received: threshold={threshold} of type "
                                 f"'{type(threshold)}'")
            if not 0.0 < threshold <= 1.0:
                raise ValueError("Invalid `threshold` argument value. It should verify 0 < "
                                 f"threshold <= 1. Received: threshold={threshold}")
        super().__init__(name=name, dtype=dtype)
        self.average, self.beta, self.threshold = average, beta, threshold

    def _spec(self):
        return {"kind": self._kind, "has_threshold": self.threshold is not None,
                "threshold": 0.5 if self.threshold is None else self.threshold}

    def _state_size(self, width):
        return 4 * width

    def _result_from(self, state, width):
        tp, fp, fn, weights = state.reshape(4, width)
        if self.average == "micro":  # Keras sums over every class before dividing
            tp, fp, fn, weights = tp.sum(), fp.sum(), fn.sum(), weights.sum()
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            f = np.sum(f * weights / (np.sum(weights) + EPSILON))
        elif self.average is not None:
            f = np.mean(f)
        return _f32(f)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "average": self.average,
                "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """FBetaScore with beta = 1."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name,
                         dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config
