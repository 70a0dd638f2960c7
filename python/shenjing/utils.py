"""Utilities with Keras names: to_categorical, pad_sequences, normalize, set_random_seed,
Progbar, PyDataset, the dataset builders (timeseries/image/text, split_dataset), get_file,
plot_model/model_to_dot and plot_history."""
import random

import numpy as np

from shenjing import _random
from shenjing._progbar import Progbar
from shenjing._py_dataset import PyDataset
from shenjing._get_file import get_file
from shenjing._image_dataset import image_dataset_from_directory
from shenjing._plot import model_to_dot, plot_history, plot_model
from shenjing._split_dataset import split_dataset
from shenjing._text_dataset import text_dataset_from_directory
from shenjing._timeseries import timeseries_dataset_from_array

Sequence = PyDataset  # Keras keeps the old name as an alias

__all__ = ["to_categorical", "pad_sequences", "normalize", "set_random_seed", "Progbar",
           "PyDataset", "Sequence", "timeseries_dataset_from_array",
           "image_dataset_from_directory", "text_dataset_from_directory", "split_dataset",
           "get_file", "plot_model", "model_to_dot", "plot_history"]


def to_categorical(x, num_classes=None):
    """Converts a class vector (integers) to a one-hot float32 matrix.

    Args:
        x: array-like of integer class labels in ``[0, num_classes)``.
        num_classes: number of classes; defaults to ``max(x) + 1``.

    Returns:
        A float32 array of shape ``x.shape + (num_classes,)`` (a trailing axis of size 1 in
        ``x`` is dropped first, as Keras does).
    """
    x = np.asarray(x)
    if x.size and not np.issubdtype(x.dtype, np.integer):
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise ValueError("to_categorical expects integer class labels.")
        x = x.astype(np.int64)
    x = x.astype(np.int64, copy=False)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(
            f"to_categorical: labels must be in [0, {num_classes}), "
            f"received values from {x.min()} to {x.max()}.")
    out = np.zeros(x.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


def normalize(x, axis=-1, order=2):
    """Keras's ``normalize``: ``x`` divided by its ``order``-norm along ``axis`` (a norm of
    0 counts as 1, so zero vectors stay zero). Unlike Keras's NumPy path, which turns
    ``axis=0`` into -1 (``axis or -1``), ``axis=0`` normalizes along axis 0."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("normalize expects an array with at least one axis.")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or \
            not -x.ndim <= axis < x.ndim:
        raise ValueError(f"`axis` must be an integer in [{-x.ndim}, {x.ndim}) for an input "
                         f"of rank {x.ndim}. Received: axis={axis!r}")
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Keras's ``pad_sequences``: a list of sequences (lists of ids, or arrays whose first
    axis is time) as one array of shape ``(len(sequences), maxlen, ...)``.

    Sequences longer than ``maxlen`` (the longest one's length when None) lose values at the
    start (``truncating='pre'``, the default) or the end ('post'); shorter ones get ``value``
    before them (``padding='pre'``, the default) or after ('post'). Padding with 0 and an
    ``Embedding(mask_zero=True)`` makes the padded steps masked.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    for what, v in (("padding", padding), ("truncating", truncating)):
        if v not in ("pre", "post"):
            raise ValueError(f'{what} type "{v}" not understood')
    lengths, sample_shape = [], ()
    for x in sequences:
        try:
            lengths.append(len(x))
        except TypeError as e:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: "
                             f"{x!r}") from e
        if len(x) and not sample_shape:
            sample_shape = np.asarray(x).shape[1:]
    if maxlen is None:
        maxlen = max(lengths, default=0)
    if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"maxlen must be None or a non-negative integer, received {maxlen!r}.")
    is_text = np.issubdtype(np.dtype(dtype), np.str_) or np.issubdtype(np.dtype(dtype),
                                                                       np.object_)
    if isinstance(value, str) and not is_text:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: "
                         f"{type(value)}\nYou should set `dtype=object` for variable length "
                         f"strings.")
    out = np.full((len(sequences), maxlen) + tuple(sample_shape), value, dtype=dtype)
    for i, x in enumerate(sequences):
        if not len(x) or not maxlen:
            continue
        trunc = np.asarray(x[-maxlen:] if truncating == "pre" else x[:maxlen], dtype=dtype)
        if trunc.shape[1:] != tuple(sample_shape):
            raise ValueError(f"Shape of sample {trunc.shape[1:]} of sequence at position {i} "
                             f"is different from expected shape {tuple(sample_shape)}")
        if padding == "post":
            out[i, :len(trunc)] = trunc
        else:
            out[i, -len(trunc):] = trunc
    return out


def set_random_seed(seed):
    """Seeds Python's ``random``, NumPy's global generator and shenjing's own generator.

    Weight initialisation, dropout masks and shuffling in ``fit`` then repeat exactly.
    """
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"set_random_seed expects an integer, received {seed!r}.")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _random.seed(int(seed))


def __getattr__(name):
    # keras.utils.register_keras_serializable and friends are saving's (Keras keeps aliases).
    if name in ("register_keras_serializable", "get_registered_name", "get_registered_object",
                "custom_object_scope"):
        from shenjing import _registry
        return getattr(_registry, name)
    raise AttributeError(f"module 'shenjing.utils' has no attribute '{name}'")
