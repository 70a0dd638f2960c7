"""Losses with Keras 3 names. Training computes them in C++ (fused with softmax/sigmoid);
calling a loss object on arrays computes the same value in NumPy."""
import numpy as np

from shenjing import _config

_EPS = 1e-7


def _arrays(y_true, y_pred):
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.float64)
    if y_true.shape != y_pred.shape and y_true.size == y_pred.size:
        y_true = y_true.reshape(y_pred.shape)
    return y_true, y_pred


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    return np.mean(np.square(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _arrays(y_true, y_pred)
    return np.mean(np.abs(y_pred - y_true), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _arrays(y_true, y_pred)
    e = np.abs(y_pred - y_true)
    return np.mean(np.where(e <= delta, 0.5 * e**2, delta * e - 0.5 * delta**2), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _arrays(y_true, y_pred)
    if label_smoothing:  # Keras: halfway towards 0.5 by label_smoothing
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        z = y_pred
        return np.mean(np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z))), axis=axis)
    p = np.clip(y_pred, _EPS, 1 - _EPS)
    return np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _arrays(y_true, y_pred)
    if label_smoothing:  # Keras: label_smoothing spread evenly over the classes
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[axis]
    if from_logits:
        z = y_pred - y_pred.max(axis=axis, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
    else:
        p = y_pred / y_pred.sum(axis=axis, keepdims=True)
        logp = np.log(np.clip(p, _EPS, 1 - _EPS))
    return -np.sum(y_true * logp, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Per-position losses; with ignore_class, 0 where the label is ignore_class (Keras also
    leaves those positions out of the mean: SparseCategoricalCrossentropy does)."""
    y_pred = np.moveaxis(np.asarray(y_pred, dtype=np.float64), axis, -1)
    labels = np.asarray(y_true).reshape(y_pred.shape[:-1]).astype(np.int64)
    keep = labels != ignore_class if ignore_class is not None else np.ones(labels.shape, bool)
    onehot = np.eye(y_pred.shape[-1])[np.where(keep, labels, 0)]
    return np.where(keep, categorical_crossentropy(onehot, y_pred, from_logits=from_logits), 0.0)


class Loss:
    """Base class: ``loss(y_true, y_pred)`` returns the batch mean, as Keras does."""

    _kind = None
    _fn = None
    _module = "keras.losses"

    def __init__(self, name=None, reduction="sum_over_batch_size", from_logits=False,
                 dtype=None):
        if reduction != "sum_over_batch_size":
            raise ValueError("Only reduction='sum_over_batch_size' (the Keras default) is "
                             "supported.")
        if dtype is not None and str(dtype) != "float32":
            raise ValueError(f"Loss dtype must be float32, received {dtype!r}.")
        import re
        self.name = name or getattr(self, "_default_name", None) or \
            re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()
        self.reduction = reduction
        self.from_logits = bool(from_logits)
        self.delta = 1.0

    def call(self, y_true, y_pred):
        """Per-sample losses (override in a subclass, written with ``shenjing.ops``: it is
        traced into the model's graph at build)."""
        if type(self)._fn is None:
            raise NotImplementedError(f"Loss {type(self).__name__} has no call() method.")
        return type(self)._fn(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        from shenjing import _loss_call  # eager on arrays, traced on symbolic tensors
        return _loss_call.call(self, y_true, y_pred, sample_weight)

    def _spec(self):
        return self._kind, self.from_logits, self.delta

    def _options(self, out_shape=None):
        """The core's options beyond _spec for outputs of ``out_shape`` (batched; ValueError
        when this loss cannot be computed on them)."""
        return {}

    def get_config(self):
        return _config.init_config(self)


class MeanSquaredError(Loss):
    _kind, _default_name, _fn = 0, "mean_squared_error", mean_squared_error

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)


class MeanAbsoluteError(Loss):
    _kind, _default_name, _fn = 1, "mean_absolute_error", mean_absolute_error

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)


class Huber(Loss):
    _kind, _default_name = 2, "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        if not delta > 0:
            raise ValueError(f"Huber: delta must be positive, received {delta!r}.")
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        return huber(y_true, y_pred, self.delta)


class _CrossEntropy(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, from_logits=from_logits, dtype=dtype)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be a number in [0, 1], received "
                             f"{label_smoothing!r}.")
        from shenjing._losses_extra import check_axis
        check_axis(axis, None, type(self).__name__)
        self.label_smoothing, self.axis = float(label_smoothing), int(axis)

    def call(self, y_true, y_pred):
        return type(self)._fn(y_true, y_pred, from_logits=self.from_logits,
                              label_smoothing=self.label_smoothing, axis=self.axis)

    def _options(self, out_shape=None):
        from shenjing._losses_extra import check_axis
        check_axis(self.axis, out_shape, type(self).__name__)
        return {"label_smoothing": self.label_smoothing}


class BinaryCrossentropy(_CrossEntropy):
    _kind, _default_name, _fn = 3, "binary_crossentropy", binary_crossentropy


class CategoricalCrossentropy(_CrossEntropy):
    _kind, _default_name, _fn = 4, "categorical_crossentropy", categorical_crossentropy


class SparseCategoricalCrossentropy(Loss):
    """Keras 3.15's: no label_smoothing; ignore_class leaves the positions with that label out
    of the loss (and of the mean)."""
    _kind, _default_name = 5, "sparse_categorical_crossentropy"
    _fn = sparse_categorical_crossentropy

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 axis=-1, name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, from_logits=from_logits, dtype=dtype)
        if ignore_class is not None and (isinstance(ignore_class, bool) or
                                         not isinstance(ignore_class, (int, np.integer))):
            raise ValueError(f"ignore_class must be an integer class or None, received "
                             f"{ignore_class!r}.")
        from shenjing._losses_extra import check_axis
        check_axis(axis, None, "SparseCategoricalCrossentropy")
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self.axis = int(axis)

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits,
                                               self.ignore_class, self.axis)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is None:
            return super().__call__(y_true, y_pred, sample_weight)
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported.")
        values = self.call(y_true, y_pred)
        valid = np.count_nonzero(np.asarray(y_true).reshape(values.shape) != self.ignore_class)
        return float(np.sum(values) / valid) if valid else 0.0  # Keras's divide_no_nan

    def _options(self, out_shape=None):
        from shenjing._losses_extra import check_axis
        check_axis(self.axis, out_shape, "SparseCategoricalCrossentropy")
        return {"ignore_class": self.ignore_class}


class LossFunctionWrapper(Loss):
    """A loss from a function ``fn(y_true, y_pred, **kwargs)`` of per-sample losses written with
    ``shenjing.ops`` (``compile(loss=fn)`` wraps it so); traced into the model's graph. As
    Keras, y_true of one rank less than y_pred (or one more, with a last axis of 1) is first
    brought to y_pred's rank."""

    _traced = True

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", None) or "loss",
                         reduction=reduction)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        from shenjing import ops
        rt, rp = len(y_true.shape), len(y_pred.shape)
        if rt == rp - 1 and y_pred.shape[-1] == 1:
            y_true = ops.expand_dims(y_true, -1)
        elif rt == rp + 1 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, -1)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction,
                "fn": getattr(self.fn, "__name__", repr(self.fn))}


mse, mae = mean_squared_error, mean_absolute_error
_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_BY_FUNCTION = {mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
                huber: Huber, binary_crossentropy: BinaryCrossentropy,
                categorical_crossentropy: CategoricalCrossentropy,
                sparse_categorical_crossentropy: SparseCategoricalCrossentropy}


# Keras 3's other losses (_losses_extra.py), and the names losses.get knows them by.
from shenjing._losses_extra import (  # noqa: E402  (they subclass Loss, defined above)
    CategoricalHinge, CosineSimilarity, Hinge, KLDivergence, LogCosh,
    MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Poisson, SquaredHinge,
    categorical_hinge, cosine_similarity, hinge, kl_divergence, log_cosh,
    mean_absolute_percentage_error, mean_squared_logarithmic_error, poisson, squared_hinge)
from shenjing import _losses_extra  # noqa: E402
_BY_NAME.update(_losses_extra.BY_NAME)
_BY_FUNCTION.update(_losses_extra.FUNCTIONS)
# Keras 3 also takes every class name, and these abbreviations.
_BY_NAME.update({c.__name__: c for c in set(_BY_NAME.values())}, bce=BinaryCrossentropy,
                BCE=BinaryCrossentropy, MSE=MeanSquaredError, MAE=MeanAbsoluteError)


def get(identifier):
    """A Loss from a name ('mse', 'sparse_categorical_crossentropy', ...), function, instance
    or Keras config dict."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") == "function":
        return get(_losses_extra.builtin_function(identifier, _BY_FUNCTION, "loss"))
    if isinstance(identifier, dict):
        return _config.deserialize(identifier, {c.__name__: c for c in _BY_NAME.values()},
                                   "loss")
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, str):
        from shenjing import _registry
        found = _registry.get_registered_object(identifier)  # a saved custom loss
        if found is not None:
            return get(found)
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    if callable(identifier) and not isinstance(identifier, type):
        return LossFunctionWrapper(identifier)  # user code, traced into the graph
    raise ValueError(f"Unknown loss {identifier!r}. Known losses: {', '.join(_BY_NAME)}.")
