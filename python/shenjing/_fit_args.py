"""fit's validation arguments and the step counts of array data, as Keras 3 reads them
(``backend/*/trainer.py`` fit, ``Trainer._should_eval``, ``ArrayDataAdapter``)."""
import math
import warnings

import numpy as np


def check_steps(v, what):
    _positive_or_none(v, what)


def refuse_weights_with_loader(x, sample_weight):
    """Whether x is a DataLoader/Dataset; with sample_weight too, Keras's ValueError."""
    from shenjing.data import DataLoader, Dataset
    loader = isinstance(x, (DataLoader, Dataset))
    if loader and sample_weight is not None:
        raise ValueError("`sample_weight` argument is not supported when using a DataLoader: "
                         "put the weights in the data instead.")
    return loader


def steps_of(user_batch_size, batch_size, n, steps, available, loader):
    """(batch size, batches in the data) for array data given steps (steps_per_epoch or
    evaluate's steps): without a batch size, Keras's ceil(samples / steps)."""
    if user_batch_size is None and steps and not loader:
        batch_size = max(1, int(math.ceil(n / steps)))
        available = -(-n // batch_size)
    return batch_size, available


def _positive_or_none(v, what):
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                          or v <= 0):
        raise ValueError(f"{what} must be None or a positive integer, received {v!r}.")
    return None if v is None else int(v)


def check(validation_steps, validation_batch_size, validation_freq):
    """Checked before fit changes anything."""
    _positive_or_none(validation_steps, "validation_steps")
    _positive_or_none(validation_batch_size, "validation_batch_size")
    if isinstance(validation_freq, list):
        if not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool)
                   for e in validation_freq):
            raise ValueError(f"validation_freq as a list must hold epoch numbers (integers, "
                             f"counted from 1), received {validation_freq!r}.")
    elif isinstance(validation_freq, bool) or not isinstance(validation_freq,
                                                             (int, np.integer)):
        raise ValueError("Expected `validation_freq` to be a list or int. Received: "
                         f"validation_freq={validation_freq} of the type "
                         f"{type(validation_freq)}.")
    elif validation_freq <= 0:
        raise ValueError(f"validation_freq must be a positive integer (validate every that "
                         f"many epochs), received {validation_freq}.")


def should_eval(epoch, validation_freq):
    """Keras's ``_should_eval``: epoch is 0-based here, 1-based in validation_freq."""
    epoch += 1
    if isinstance(validation_freq, list):
        return epoch in validation_freq
    return epoch % validation_freq == 0


def unpack_validation(validation_data):
    """(x_val, y_val, val_sample_weight) of a validation_data tuple."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                         "val_sample_weight).")
    vx, vy = validation_data[0], validation_data[1]
    return vx, vy, validation_data[2] if len(validation_data) == 3 else None


def limit_steps(steps, available):
    """evaluate(steps=...): at most the batches there are, warning (as Keras) when asked for
    more."""
    if steps is None:
        return available
    if steps > available:
        warnings.warn("Your input ran out of data; interrupting training. Make sure that your "
                      "dataset or generator can generate at least `steps_per_epoch * epochs` "
                      "batches.", stacklevel=3)
        return available
    return steps
