"""Keras 3's other per-sample losses (keras/src/losses/losses.py): KL divergence, Poisson, the
hinges, log-cosh, cosine similarity, MAPE and MSLE. Training computes them in C++
(cpp/src/losses_extra.cpp, one LossKind each); these NumPy functions compute the same values
when a loss is called on arrays, with Keras's epsilons (backend.epsilon() = 1e-7).
Imported by losses.py (import that, not this: the classes need its Loss), which registers the
names ``losses.get`` knows."""
import numpy as np

from shenjing import losses as _losses

_EPS = 1e-7
_LOG2 = np.log(2.0)


def _arrays(y_true, y_pred):
    return _losses._arrays(y_true, y_pred)


def _hinge_labels(y_true):
    # Keras's convert_binary_labels_to_hinge: {0, 1} targets (the whole tensor) become {-1, 1}.
    return 2.0 * y_true - 1.0 if np.all((y_true == 0) | (y_true == 1)) else y_true


def _normalize(x, axis):
    # Keras's ops.normalize: x * min(rsqrt(sum x^2), 1 / epsilon).
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.sqrt(np.sum(np.square(x), axis=axis, keepdims=True))
    return x * np.minimum(inv, 1.0 / _EPS)


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    t, p = np.clip(y_true, _EPS, 1.0), np.clip(y_pred, _EPS, 1.0)
    return np.sum(t * np.log(t / p), axis=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    return np.mean(y_pred - y_true * np.log(y_pred + _EPS), axis=-1)


def hinge(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    return np.mean(np.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    return np.mean(np.square(np.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    pos = np.sum(y_true * y_pred, axis=-1)
    neg = np.max((1.0 - y_true) * y_pred, axis=-1)
    return np.maximum(neg - pos + 1.0, 0.0)


def log_cosh(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    x = y_pred - y_true
    return np.mean(x + np.logaddexp(0.0, -2.0 * x) - _LOG2, axis=-1)  # stable log(cosh(x))


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = _arrays(y_true, y_pred)
    return -np.sum(_normalize(y_true, axis) * _normalize(y_pred, axis), axis=axis)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    return 100.0 * np.mean(np.abs((y_true - y_pred) / np.maximum(np.abs(y_true), _EPS)),
                           axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    d = np.log(np.maximum(y_pred, _EPS) + 1.0) - np.log(np.maximum(y_true, _EPS) + 1.0)
    return np.mean(np.square(d), axis=-1)


def builtin_function(spec, functions, what):
    """The function a Keras function dict names: ``{"class_name": "function", "config": name}``
    is how Keras saves ``compile(loss=fn)`` / ``metrics=[fn]``. A built-in function of that
    name from ``functions``, else a registered custom one; ValueError otherwise."""
    name = spec.get("config")
    found = {f.__name__: f for f in functions}.get(name) if isinstance(name, str) else None
    if found is None and isinstance(name, str):
        from shenjing import _registry
        found = _registry.get_registered_object(spec.get("registered_name") or name) or \
            _registry.get_registered_object(name)
    if found is None:
        raise ValueError(f"Unknown {what} function {name!r:.80}.")
    return found


def check_axis(axis, out_shape, what):
    """ValueError unless ``axis`` is the last axis of outputs of ``out_shape`` (batched): the
    core computes every loss and metric over the last axis."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis!r} of type "
                         f"{type(axis)}")
    if out_shape is not None and axis not in (-1, len(out_shape) - 1):
        raise ValueError(f"{what}(axis={axis}) is not supported for an output of shape "
                         f"{tuple(out_shape)}: shenjing computes losses and metrics over the "
                         f"last axis only (axis=-1).")


class _Simple(_losses.Loss):
    """A loss with no options: Keras's signature (reduction, name, dtype)."""

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class KLDivergence(_Simple):
    _kind, _default_name, _fn = 7, "kl_divergence", kl_divergence


class Poisson(_Simple):
    _kind, _default_name, _fn = 8, "poisson", poisson


class Hinge(_Simple):
    _kind, _default_name, _fn = 9, "hinge", hinge


class SquaredHinge(_Simple):
    _kind, _default_name, _fn = 10, "squared_hinge", squared_hinge


class CategoricalHinge(_Simple):
    _kind, _default_name, _fn = 11, "categorical_hinge", categorical_hinge


class LogCosh(_Simple):
    _kind, _default_name, _fn = 12, "log_cosh", log_cosh


class CosineSimilarity(_losses.Loss):
    _kind, _default_name = 13, "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_axis(axis, None, "CosineSimilarity")
        self.axis = int(axis)

    def call(self, y_true, y_pred):
        return cosine_similarity(y_true, y_pred, axis=self.axis)

    def _options(self, out_shape=None):
        check_axis(self.axis, out_shape, "CosineSimilarity")
        return {}


class MeanAbsolutePercentageError(_Simple):
    _kind, _default_name = 14, "mean_absolute_percentage_error"
    _fn = mean_absolute_percentage_error


class MeanSquaredLogarithmicError(_Simple):
    _kind, _default_name = 15, "mean_squared_logarithmic_error"
    _fn = mean_squared_logarithmic_error


CLASSES = (KLDivergence, Poisson, Hinge, SquaredHinge, CategoricalHinge, LogCosh,
           CosineSimilarity, MeanAbsolutePercentageError, MeanSquaredLogarithmicError)
FUNCTIONS = {kl_divergence: KLDivergence, poisson: Poisson, hinge: Hinge,
             squared_hinge: SquaredHinge, categorical_hinge: CategoricalHinge,
             log_cosh: LogCosh, cosine_similarity: CosineSimilarity,
             mean_absolute_percentage_error: MeanAbsolutePercentageError,
             mean_squared_logarithmic_error: MeanSquaredLogarithmicError}
# The strings Keras 3's losses.get takes for them: function names, class names and its
# abbreviations (not Keras 2's "logcosh" or "kullback_leibler_divergence").
BY_NAME = {**{f.__name__: c for f, c in FUNCTIONS.items()},
           **{c.__name__: c for c in CLASSES},
           "kld": KLDivergence, "KLD": KLDivergence,
           "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
           "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError}
