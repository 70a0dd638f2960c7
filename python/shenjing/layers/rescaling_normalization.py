"""Keras's preprocessing layers Rescaling and Normalization (computed in C++:
layers/activation_layers.cpp and layers/normalization_stats.cpp). ``Normalization.adapt``
computes its statistics here with NumPy, once, and writes them into the core's weights."""
import itertools
import math
import numbers

import numpy as np

from shenjing.layers.base import Layer


def _array_arg(cls, what, value):
    """A number, nested list or array of finite numbers (or Keras's serialized NumPy array)."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        value = np.asarray((value.get("config") or {}).get("value"))
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{cls}: {what} must be a number or an array of numbers, received "
                         f"{value!r:.80}.")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{cls}: {what} must be a number or an array of numbers, received "
                         f"{value!r:.80}.") from None
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > 3.4e38) or arr.ndim > 8 or \
            0 in arr.shape:
        raise ValueError(f"{cls}: {what} must hold finite float32 numbers (at most 8 axes), "
                         f"received {value!r:.80}.")
    return arr


def _serialize(value):
    """As Keras's serialize_keras_object writes a scale/offset: numbers and lists as they are,
    NumPy arrays as {"class_name": "__numpy__", ...}."""
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(),
                                                      "dtype": str(value.dtype)}}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


class Rescaling(Layer):
    """``x * scale + offset``; scale and offset are numbers or arrays broadcast against the
    input (one value per channel: shape (channels,))."""

    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        _array_arg("Rescaling", "scale", scale)
        _array_arg("Rescaling", "offset", offset)
        if isinstance(scale, dict):
            scale = _array_arg("Rescaling", "scale", scale).astype(np.float32)
        if isinstance(offset, dict):
            offset = _array_arg("Rescaling", "offset", offset).astype(np.float32)
        self.scale = scale
        self.offset = offset

    def get_config(self):
        base = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        return {**base, "scale": _serialize(self.scale), "offset": _serialize(self.offset)}


class Normalization(Layer):
    """Keras's Normalization: ``(x - mean) / max(sqrt(variance), 1e-7)`` per position of the
    kept ``axis`` (an int, a tuple of ints counting the batch axis, or None for one mean and
    variance over everything); ``invert=True`` undoes it.

    The statistics are either given (``mean`` and ``variance``, constants of the config) or
    computed by ``adapt(data)``; then they are the layer's non-trainable weights ``mean``,
    ``variance`` and ``count`` (Keras's names; ``count`` stays 0 as in Keras 3, and is a
    float32 scalar here where Keras keeps an int64), saved with the model.
    """

    supports_masking = True

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        cls = "Normalization"

        def is_int(v):
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)
        if axis is None:
            axis = ()
        elif is_int(axis):
            axis = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(is_int(a) for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise ValueError(f"{cls}: axis must be None, an integer or a tuple of integers, "
                             f"received {axis!r}.")
        if len(axis) > 9:
            raise ValueError(f"{cls}: axis names at most 9 axes, received {axis!r}.")
        self.axis = axis
        if (mean is not None) != (variance is not None):
            raise ValueError(f"When setting values directly, both `mean` and `variance` must "
                             f"be set. Received: mean={mean} and variance={variance}")
        if mean is not None:
            m = _array_arg(cls, "mean", mean)
            v = _array_arg(cls, "variance", variance)
            if m.shape != v.shape:
                raise ValueError(f"When setting values directly, `mean` and `variance` must "
                                 f"have the same shape. Received: mean shape {m.shape} and "
                                 f"variance shape {v.shape}")
            if np.any(v < 0):
                raise ValueError(f"{cls}: variance must be non-negative, received "
                                 f"{variance!r:.80}.")
            if m.ndim > len(self.axis):
                raise ValueError(f"The rank of `mean` must be less than or equal to the number "
                                 f"of axes ({len(self.axis)}). Received: mean shape {m.shape} "
                                 f"for axis {self.axis}")
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self._adapted = None  # (mean, variance) from adapt() before the layer has weights

    def get_config(self):
        base = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        return {**base, "axis": list(self.axis), "invert": self.invert,
                "mean": np.array(self.input_mean).tolist(),
                "variance": np.array(self.input_variance).tolist()}

    def _initial_values(self, name, shape):
        if name == "mean":
            return self._adapted[0] if self._adapted is not None else np.zeros(shape)
        if name == "variance":
            return self._adapted[1] if self._adapted is not None else np.ones(shape)
        return np.zeros(shape)  # count

    def _axes(self, ndim):
        """(kept axes, reduced axes) over data of rank ndim, as Keras's build."""
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"All `axis` values must be in the range [-ndim, ndim). Received "
                             f"inputs with ndim={ndim}, while axis={self.axis}")
        keep = tuple(sorted({a % ndim for a in self.axis}))
        if 0 in keep:
            raise ValueError(f"Normalization '{self.name}': the batch axis (0) cannot be kept.")
        return keep, tuple(d for d in range(ndim) if d not in keep)

    def adapt(self, data, batch_size=None, steps=None):
        """Computes the mean and variance of ``data`` per position of the kept axes: a NumPy
        array (the whole of it at once), or an iterable of batches (arrays, or (x, y) tuples
        whose x is used: a list, a generator, a ``utils.PyDataset``), combined as Keras
        combines them; ``steps`` limits the batches read. ``batch_size`` is accepted
        for Keras 2 code; it does not change the statistics."""
        if self.input_mean is not None:
            raise ValueError(f"Normalization '{self.name}' was given mean and variance; "
                             f"adapt() computes them only for a layer created without.")
        if steps is not None and (isinstance(steps, bool) or not isinstance(
                steps, numbers.Integral) or steps < 1):
            raise ValueError(f"adapt: steps must be a positive integer, received {steps!r}.")
        if hasattr(data, "shape") and hasattr(data, "__array__"):
            arr = self._check(np.asarray(data, dtype=np.float64))
            keep, reduce_ = self._axes(arr.ndim)
            mean, var = arr.mean(axis=reduce_), arr.var(axis=reduce_)
        elif hasattr(data, "__iter__") or hasattr(data, "__getitem__"):
            if hasattr(data, "__len__") and hasattr(data, "__getitem__") and \
                    not isinstance(data, (list, tuple)):  # a PyDataset: batches by index
                batches = (data[i] for i in range(len(data)))
            else:
                batches = iter(data)
            if steps is not None:
                batches = itertools.islice(batches, steps)
            mean = var = None
            total = 0
            for batch in batches:
                if isinstance(batch, tuple):  # (x, y) pairs: Keras adapts on x
                    batch = batch[0]
                b = self._check(np.asarray(batch, dtype=np.float64))
                keep, reduce_ = self._axes(b.ndim)
                bm, bv = b.mean(axis=reduce_), b.var(axis=reduce_)
                if mean is None:
                    mean, var = np.zeros_like(bm), np.zeros_like(bv)
                elif bm.shape != mean.shape:
                    raise ValueError(f"adapt() yielded a batch with incompatible shape "
                                     f"{b.shape}.")
                count = math.prod(b.shape[d] for d in reduce_)
                total += count
                w = count / total
                new_mean = mean * (1 - w) + bm * w
                var = (var + (mean - new_mean) ** 2) * (1 - w) + (bv + (bm - new_mean) ** 2) * w
                mean = new_mean
            if mean is None:
                raise ValueError("adapt() received an empty iterable (no batches). Expected at "
                                 "least one batch.")
        else:
            raise TypeError(f"Unsupported data type: {type(data)}. `adapt` supports NumPy "
                            f"arrays and iterables of batches (e.g. a list or a generator).")
        mean, var = mean.astype(np.float32), var.astype(np.float32)
        if self._views:
            for pname, view, _ in self._views:
                if pname in ("mean", "variance") and view.shape != mean.shape:
                    raise ValueError(f"Normalization '{self.name}' was built for statistics of "
                                     f"shape {view.shape}; adapt() data gives {mean.shape}.")
            for pname, view, _ in self._views:
                if pname == "mean":
                    view[...] = mean
                elif pname == "variance":
                    view[...] = var
        self._adapted = (mean, var)

    def _check(self, arr):
        if arr.ndim < 1 or arr.size == 0:
            raise ValueError(f"adapt: expected a non-empty batch of data, received shape "
                             f"{arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError("adapt: the data contains NaN or infinity.")
        return arr
