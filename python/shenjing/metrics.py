"""Metrics with Keras 3 names. During fit/evaluate they are counted in C++ per batch; the
functions here compute the same per-sample values in NumPy."""
import numpy as np

from shenjing import _config
from shenjing._metric_custom import CustomMetricAPI
from shenjing.layers.base import _auto_name

# Codes of the C++ MetricKind enum.
_BINARY_ACC, _CATEGORICAL_ACC, _SPARSE_ACC, _MSE, _MAE = range(5)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true).reshape(y_pred.shape)
    return np.mean((y_pred > threshold).astype(np.float32) == y_true, axis=-1)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, -1) == np.argmax(y_pred, -1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    labels = np.asarray(y_true).reshape(y_pred.shape[:-1])
    return (labels == np.argmax(y_pred, -1)).astype(np.float32)


def mean_squared_error(y_true, y_pred):
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return np.mean(np.square(y_pred - np.asarray(y_true).reshape(y_pred.shape)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return np.mean(np.abs(y_pred - np.asarray(y_true).reshape(y_pred.shape)), axis=-1)


class Metric(CustomMetricAPI):
    """A metric computed in the C++ train/test steps; ``name`` is the key in logs/History.
    Subclasses with ``update_state``/``result`` are custom stateful metrics
    (_metric_custom.py)."""

    _code = None
    _fn = None
    _module = "keras.metrics"

    def __init__(self, name=None, dtype=None):
        self.name = name or getattr(self, "_default_name", None) or \
            _auto_name(type(self).__name__)
        self.dtype = "float32"

    def get_config(self):
        return {"name": self.name}

    def __call__(self, y_true, y_pred, sample_weight=None):
        if _stateful(self):  # Keras: update the state, return the result
            self.update_state(y_true, y_pred, sample_weight=sample_weight)
            return self.result()
        return float(np.mean(type(self)._fn(y_true, y_pred)))


class BinaryAccuracy(Metric):
    _code, _default_name, _fn = _BINARY_ACC, "binary_accuracy", binary_accuracy


class CategoricalAccuracy(Metric):
    _code, _default_name, _fn = _CATEGORICAL_ACC, "categorical_accuracy", categorical_accuracy


class SparseCategoricalAccuracy(Metric):
    _code, _default_name = _SPARSE_ACC, "sparse_categorical_accuracy"
    _fn = sparse_categorical_accuracy


class MeanSquaredError(Metric):
    _code, _default_name, _fn = _MSE, "mean_squared_error", mean_squared_error


class MeanAbsoluteError(Metric):
    _code, _default_name, _fn = _MAE, "mean_absolute_error", mean_absolute_error


mse, mae = mean_squared_error, mean_absolute_error
_BY_NAME = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}
_BY_FUNCTION = {binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
                sparse_categorical_accuracy: SparseCategoricalAccuracy,
                mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError}


class MeanMetricWrapper(Metric):
    """A metric from a function ``fn(y_true, y_pred)`` of per-sample values written with
    ``shenjing.ops`` (``metrics=[fn]``): traced into the model's graph; logs the mean of its
    values over the samples seen (Keras's MeanMetricWrapper)."""

    _traced = True

    def __init__(self, fn, name=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", None) or "metric")
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def __call__(self, y_true, y_pred):
        return float(np.mean(np.asarray(self.call(y_true, y_pred), dtype=np.float64)))


def _stateful(identifier):
    """A user's Metric subclass with its own update_state/result, traced (_metric_custom.py);
    a subclass of a built-in state metric (AUC, Precision, ...) stays counted by the core."""
    cls = identifier if isinstance(identifier, type) else type(identifier)
    return issubclass(cls, Metric) and not cls.__module__.startswith("shenjing.") and \
        not getattr(cls, "_state", False) and \
        any(k in vars(c) for c in cls.__mro__ if not c.__module__.startswith("shenjing.")
            for k in ("update_state", "result"))


def get(identifier, y_true_shape, y_pred_shape):
    """Resolves a metric identifier; 'accuracy'/'acc' picks binary, sparse or categorical
    accuracy from the shapes of the targets and predictions, as Keras 3 does."""
    if _stateful(identifier):  # traced into the graph at fit/evaluate (_metric_custom.py)
        return identifier() if isinstance(identifier, type) else identifier
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") == "function":
        from shenjing._losses_extra import builtin_function
        return get(builtin_function(identifier, _BY_FUNCTION, "metric"), y_true_shape,
                   y_pred_shape)
    if isinstance(identifier, dict):
        return _config.deserialize(identifier, {c.__name__: c for c in _BY_NAME.values()},
                                   "metric")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        if y_pred_shape[-1] == 1:
            cls = BinaryAccuracy
        elif len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
            cls = SparseCategoricalAccuracy
        else:
            cls = CategoricalAccuracy
        return cls(name=identifier)
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier](name=identifier)
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier](name=identifier.__name__)
    if callable(identifier) and not isinstance(identifier, type):
        return MeanMetricWrapper(identifier)  # user code, traced into the graph
    if isinstance(identifier, str):
        from shenjing import _registry
        found = _registry.get_registered_object(identifier)  # a saved custom metric
        if found is not None:
            return get(found, y_true_shape, y_pred_shape)
    known = ["accuracy"] + list(_BY_NAME)
    raise ValueError(f"Unknown metric {identifier!r}. Known metrics: {', '.join(known)}.")


def check_targets(metric, y_true_shape, y_pred_shape):
    """ValueError unless targets of ``y_true_shape`` suit ``metric`` for predictions of
    ``y_pred_shape`` (both batched). Metrics compare along the output's last axis at every
    other position: categorical accuracy needs one-hot targets shaped like the output, sparse
    accuracy one class index per position, and the elementwise metrics (binary accuracy, mse,
    mae) either, broadcasting a single target over the last axis as Keras does."""
    positions = int(np.prod(y_pred_shape[1:-1], dtype=np.int64))
    width = y_pred_shape[-1]
    per = int(np.prod(y_true_shape[1:], dtype=np.int64)) // max(1, positions)
    if getattr(metric, "_traced", False):
        return  # its traced ops check the shapes
    if hasattr(metric, "_check_output"):
        metric._check_output(y_pred_shape)  # an axis it cannot compute over
    if getattr(metric, "_state", False):
        return metric._check_targets(y_true_shape, y_pred_shape)
    if metric._code == _CATEGORICAL_ACC:
        ok, need = per == width, f"one-hot targets shaped like the output {y_pred_shape}"
        alt = " For integer labels use 'sparse_categorical_accuracy' (or 'accuracy')."
    elif metric._code == _SPARSE_ACC:
        ok, need = per == 1, (f"one integer label per position, shaped "
                              f"{(None,) + tuple(y_pred_shape[1:-1])}")
        alt = " For one-hot targets use 'categorical_accuracy' (or 'accuracy')."
    else:
        # Row metrics (cosine similarity, categorical hinge) need whole rows of targets.
        ok = per == width or (per == 1 and not getattr(metric, "_full_targets", False))
        need, alt = f"targets shaped like the output {y_pred_shape}", ""
    if not ok:
        raise ValueError(f"Metric '{metric.name}' needs {need}; received y with shape "
                         f"{(None,) + tuple(y_true_shape[1:])}.{alt}")


# Keras's mean metrics of the other losses (_metrics_extra.py); keras.metrics also exports the
# loss functions they average.
from shenjing._metrics_extra import (  # noqa: E402,F401  (they subclass Metric, above)
    CategoricalHinge, CosineSimilarity, Hinge, KLDivergence, LogCoshError,
    MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Poisson, SquaredHinge)
from shenjing._losses_extra import (  # noqa: E402,F401
    categorical_hinge, hinge, kl_divergence, log_cosh, mean_absolute_percentage_error,
    mean_squared_logarithmic_error, poisson, squared_hinge)
from shenjing import _metrics_extra  # noqa: E402
_BY_NAME.update(_metrics_extra.BY_NAME)
_BY_FUNCTION.update(_metrics_extra.BY_FUNCTION)
# State metrics (confusion counts, AUC, R2, F-scores, top-k, RMSE): see _metrics_state.py.
from shenjing._metrics_state import (  # noqa: E402
    F1Score, FBetaScore, R2Score, RootMeanSquaredError, SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy)
from shenjing._metrics_confusion import (  # noqa: E402
    AUC, FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives, TruePositives)
import re as _re  # noqa: E402


def _snake(name):  # Keras's to_snake_case
    name = _re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return _re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


for _cls in (AUC, FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives,
             TruePositives, F1Score, FBetaScore, R2Score, RootMeanSquaredError,
             SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy):
    # Keras's metrics.get takes the class name and its snake_case ("auc", "f_beta_score").
    _BY_NAME[_cls.__name__] = _BY_NAME[_snake(_cls.__name__)] = _cls
