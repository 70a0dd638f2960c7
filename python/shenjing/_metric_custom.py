"""Custom stateful metrics: subclasses of ``keras.metrics.Metric`` with ``add_weight``,
``update_state`` and ``result`` (keras.io's "Training & evaluation with the built-in methods"
guide). On arrays they run eagerly. In fit/evaluate, ``update_state`` is traced once on
symbolic ``y_true``/``y_pred`` into the model's graph: each ``variable.assign_add(value)``
becomes a tensor the core returns per batch (its increment), Python adds the increments up,
and when logs are built sets the variables to ``reset_state()`` plus the sum and calls
``result()``. Anything else in ``update_state`` that would need Python per batch (assigning a
traced value, reading a variable, Python control flow on tensor values) is a ValueError."""
import numpy as np

from shenjing.layers.node import KerasTensor


class MetricVariable:
    """A metric's state variable (``Metric.add_weight``): a float32 NumPy value."""

    def __init__(self, metric, name, shape, initializer, dtype):
        from shenjing import initializers
        if dtype not in (None, "float32") and str(np.dtype(dtype)) != "float32":
            raise ValueError(f"Metric variable '{name}': only float32 is supported, received "
                             f"dtype={dtype!r}.")
        shape = () if shape is None else tuple(int(s) for s in shape)
        if any(s <= 0 for s in shape):
            raise ValueError(f"Metric variable '{name}': shape {shape} must have positive "
                             f"sizes.")
        self._value = np.array(initializers.get(initializer)(shape), dtype=np.float32)
        self._metric, self.name = metric, name or "variable"
        self.path = f"{metric.name}/{self.name}"

    shape = property(lambda self: self._value.shape)
    dtype = property(lambda self: "float32")
    value = property(lambda self: self._guard("read") or self._value)

    def numpy(self):
        self._guard("read")
        return np.array(self._value)

    def _guard(self, what):
        if self._metric._recording is not None:
            raise ValueError(
                f"Metric {type(self._metric).__name__}.update_state {what}s the variable "
                f"'{self.name}': in fit/evaluate update_state is traced once into the model "
                f"and may only add to its variables with assign_add(value) (or assign_sub); "
                f"compute values from y_true and y_pred, and read the variables in result().")

    def assign(self, value):
        self._guard("assign")
        value = np.asarray(value, dtype=np.float32)
        try:
            self._value = np.array(np.broadcast_to(value, self.shape), dtype=np.float32)
        except ValueError:
            raise ValueError(f"Metric variable '{self.path}' has shape {self.shape}; cannot "
                             f"assign a value of shape {value.shape}.") from None
        return self

    def assign_add(self, value, _sign=1.0):
        recording = self._metric._recording
        if recording is None:
            return self.assign(self._value + _sign * np.asarray(value, dtype=np.float32))
        from shenjing import ops
        from shenjing.ops import _trace
        t = _trace.as_tensor(value)
        if _sign < 0:
            t = ops.negative(t)
        if t.shape and t.shape[0] is None:
            raise ValueError(
                f"Metric {type(self._metric).__name__}: '{self.name}'.assign_add received a "
                f"value with a batch axis (shape {t.shape}); reduce it over the batch first "
                f"(e.g. ops.sum(values)), as the variable's shape is {self.shape}.")
        if tuple(t.shape) != self.shape:
            t = ops.broadcast_to(t, self.shape)
        recording.append((self, t))
        return self

    def assign_sub(self, value):
        return self.assign_add(value, _sign=-1.0)

    def __array__(self, dtype=None, copy=None):
        self._guard("read")
        return np.array(self._value, dtype=dtype) if copy else np.asarray(self._value, dtype)

    def __repr__(self):
        return f"<MetricVariable path={self.path}, shape={self.shape}, value={self._value!r}>"


def _binary(name, reflected=False):
    def method(self, other):
        self._guard("read")
        a, b = (other, self._value) if reflected else (self._value, other)
        return getattr(np, name)(a, np.asarray(b) if not isinstance(b, KerasTensor) else b)
    return method


for _n, _f in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
               ("truediv", "divide"), ("pow", "power")]:
    setattr(MetricVariable, f"__{_n}__", _binary(_f))
    setattr(MetricVariable, f"__r{_n}__", _binary(_f, reflected=True))
MetricVariable.__neg__ = lambda self: -np.asarray(self)
MetricVariable.__float__ = lambda self: float(np.asarray(self))


class CustomMetricAPI:
    """Keras's Metric methods for subclasses (a base of shenjing.metrics.Metric)."""

    _recording = None  # a list while update_state is being traced

    def add_weight(self, shape=(), initializer="zeros", dtype=None, name=None, **kwargs):
        v = MetricVariable(self, name, shape, initializer, dtype)
        self.__dict__.setdefault("_metric_variables", []).append(v)
        return v

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype, name=name)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def variables(self):
        return list(self.__dict__.get("_metric_variables", []))

    def reset_state(self):
        """Keras's default: every variable back to zeros."""
        for v in self.variables:
            v.assign(np.zeros(v.shape, np.float32))


def _elementwise_eq(a, b):
    from shenjing import ops
    if isinstance(a, KerasTensor) or isinstance(b, KerasTensor):
        return ops.equal(a, b)
    return NotImplemented


def trace_update(metric, y_true, y_pred):
    """Runs ``metric.update_state`` on symbolic tensors; returns [(variable, increment)]."""
    if metric._recording is not None:
        raise ValueError(f"Metric {metric.name}: update_state is already being traced.")
    metric._recording = []
    # On eager backend tensors ``a == b`` compares elementwise; Keras's own KerasTensor has
    # no such __eq__ (identity), so the guide's metric relies on eager tensors. Here the
    # trace stands in for them: == and != record ops.equal / ops.not_equal meanwhile.
    saved = KerasTensor.__eq__, KerasTensor.__ne__, KerasTensor.__hash__
    KerasTensor.__eq__ = _elementwise_eq
    KerasTensor.__ne__ = lambda a, b: _ne(a, b)
    KerasTensor.__hash__ = saved[2]
    try:
        metric.update_state(y_true, y_pred)
        recorded = metric._recording
    finally:
        KerasTensor.__eq__, KerasTensor.__ne__, KerasTensor.__hash__ = saved
        metric._recording = None
    if not recorded:
        raise ValueError(f"Metric {type(metric).__name__}.update_state added nothing to its "
                         f"variables (no assign_add): nothing to count in fit/evaluate.")
    return recorded


def _ne(a, b):
    from shenjing import ops
    return ops.not_equal(a, b)


def sizes(increments):
    return [int(np.prod(v.shape, dtype=np.int64)) for v, _ in increments]


def result_from(metric, increments, state):
    """The metric's result for the summed increments ``state`` (in increments' order):
    Keras's state after reset_state() and every batch's update_state."""
    metric.reset_state()
    pos = 0
    for v, _ in increments:
        n = int(np.prod(v.shape, dtype=np.int64))
        v.assign(v._value + np.asarray(state[pos:pos + n], np.float32).reshape(v.shape))
        pos += n
    out = np.asarray(metric.result(), dtype=np.float32)
    return out[()] if out.ndim == 0 else out
