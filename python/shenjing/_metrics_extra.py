"""Keras 3's mean metrics of the other losses (keras/src/metrics/{probabilistic,regression,
hinge}_metrics.py): the mean over samples of the per-sample loss (a sample's value is the mean
over its positions). Counted in C++ per batch (MetricKind in cpp/src/losses_extra.cpp); the
functions are the losses' own, except the metric CosineSimilarity, which is +cos where the
loss is -cos. Imported by metrics.py, which registers the names ``metrics.get`` knows."""
import numpy as np

from shenjing import losses as _losses, metrics as _metrics  # noqa: F401 (loads _losses_extra)
from shenjing import _losses_extra as L

# Codes of the C++ MetricKind enum (after the five in metrics.py).
(_KLD, _POISSON, _HINGE, _SQUARED_HINGE, _CATEGORICAL_HINGE, _LOGCOSH, _COSINE, _MAPE, _MSLE,
 _COSINE_LOSS) = range(5, 15)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Keras's metric function (keras.src.metrics.regression_metrics): +cos."""
    return -L.cosine_similarity(y_true, y_pred, axis=axis)


class _MeanMetric(_metrics.Metric):
    """A metric with Keras's (name, dtype) signature."""

    def __init__(self, name=None, dtype=None):
        if dtype is not None and str(dtype) != "float32":
            raise ValueError(f"Metric dtype must be float32, received {dtype!r}.")
        super().__init__(name=name)


class KLDivergence(_MeanMetric):
    _code, _default_name, _fn = _KLD, "kl_divergence", L.kl_divergence


class Poisson(_MeanMetric):
    _code, _default_name, _fn = _POISSON, "poisson", L.poisson


class Hinge(_MeanMetric):
    _code, _default_name, _fn = _HINGE, "hinge", L.hinge


class SquaredHinge(_MeanMetric):
    _code, _default_name, _fn = _SQUARED_HINGE, "squared_hinge", L.squared_hinge


class CategoricalHinge(_MeanMetric):
    _code, _default_name, _fn = _CATEGORICAL_HINGE, "categorical_hinge", L.categorical_hinge
    _full_targets = True  # whole rows: one target cannot stand for a row


class LogCoshError(_MeanMetric):
    _code, _default_name, _fn = _LOGCOSH, "logcosh", L.log_cosh


class MeanAbsolutePercentageError(_MeanMetric):
    _code, _default_name = _MAPE, "mean_absolute_percentage_error"
    _fn = L.mean_absolute_percentage_error


class MeanSquaredLogarithmicError(_MeanMetric):
    _code, _default_name = _MSLE, "mean_squared_logarithmic_error"
    _fn = L.mean_squared_logarithmic_error


class CosineSimilarity(_MeanMetric):
    _code, _default_name = _COSINE, "cosine_similarity"
    _full_targets = True

    def __init__(self, name=None, dtype=None, axis=-1):
        super().__init__(name=name, dtype=dtype)
        L.check_axis(axis, None, "CosineSimilarity")
        self.axis = int(axis)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}

    def __call__(self, y_true, y_pred):
        return float(np.mean(cosine_similarity(y_true, y_pred, axis=self.axis)))

    def _check_output(self, y_pred_shape):
        L.check_axis(self.axis, y_pred_shape, "CosineSimilarity")


class _CosineSimilarityLoss(_MeanMetric):
    """``metrics=[losses.cosine_similarity]``: Keras wraps the loss function, -cos."""
    _code, _default_name, _fn = _COSINE_LOSS, "cosine_similarity", L.cosine_similarity
    _full_targets = True


CLASSES = (KLDivergence, Poisson, Hinge, SquaredHinge, CategoricalHinge, LogCoshError,
           CosineSimilarity, MeanAbsolutePercentageError, MeanSquaredLogarithmicError)
# Keras 3's metrics.get: class names, their snake_case, and mape/MAPE, msle/MSLE.
BY_NAME = {**{c.__name__: c for c in CLASSES},
           "kl_divergence": KLDivergence, "poisson": Poisson, "hinge": Hinge,
           "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
           "log_cosh_error": LogCoshError, "cosine_similarity": CosineSimilarity,
           "mean_absolute_percentage_error": MeanAbsolutePercentageError,
           "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
           "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
           "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError}
# Loss functions passed as metrics (Keras wraps them in a MeanMetricWrapper named after them).
BY_FUNCTION = {L.kl_divergence: KLDivergence, L.poisson: Poisson, L.hinge: Hinge,
               L.squared_hinge: SquaredHinge, L.categorical_hinge: CategoricalHinge,
               L.log_cosh: LogCoshError, L.cosine_similarity: _CosineSimilarityLoss,
               L.mean_absolute_percentage_error: MeanAbsolutePercentageError,
               L.mean_squared_logarithmic_error: MeanSquaredLogarithmicError}
