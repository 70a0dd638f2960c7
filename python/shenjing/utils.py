"""Utilities with Keras names: to_categorical, set_random_seed, Progbar."""
import random

import numpy as np

from shenjing import _random
from shenjing._progbar import Progbar

__all__ = ["to_categorical", "set_random_seed", "Progbar"]


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
