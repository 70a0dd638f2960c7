"""Core ops: conversion, casting, shapes, stop_gradient."""
import numpy as np

from shenjing.layers.node import KerasTensor
from shenjing.ops import _trace
from shenjing.ops import numpy as knp
from shenjing.ops._dispatch import array, symbolic

_KNOWN = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "bool")


def _dtype_name(dtype):
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name not in _KNOWN:
        raise ValueError(f"Invalid dtype: {dtype!r}. Known: {', '.join(_KNOWN)}.")
    return name


def is_tensor(x):
    return isinstance(x, (np.ndarray, KerasTensor))


def convert_to_tensor(x, dtype=None, sparse=None):
    if isinstance(x, KerasTensor):
        return x if dtype is None else cast(x, dtype)
    arr = array(x)
    return arr if dtype is None else arr.astype(_dtype_name(dtype))


def convert_to_numpy(x):
    if isinstance(x, KerasTensor):
        raise TypeError("A symbolic tensor has no values to convert to NumPy" +
                        _trace.scope_label() + ".")
    return np.array(array(x))


def cast(x, dtype):
    """x as ``dtype``: floats to ints truncate toward zero, anything to bool is x != 0."""
    dtype = _dtype_name(dtype)
    if not symbolic(x):
        return array(x).astype(dtype)
    t = _trace.as_tensor(x)
    src_float = t.dtype in ("float16", "bfloat16", "float32", "float64")
    if dtype == "bool":
        out = knp.not_equal(t, 0)
    elif src_float and dtype not in ("float16", "bfloat16", "float32", "float64"):
        out = knp.where(knp.less(t, 0), knp.ceil(t), knp.floor(t))
    else:
        out = _trace.record("identity", [t], None, dtype=dtype)
    out.dtype = dtype  # (a comparison or truncation made the values; the dtype is the cast's)
    return out


def shape(x):
    """The shape as a tuple (None for the batch axis of a symbolic tensor)."""
    return tuple(x.shape)


def stop_gradient(x):
    if not symbolic(x):
        return array(x)
    t = _trace.as_tensor(x)
    return _trace.record("stop_gradient", [t], None, dtype=t.dtype)
