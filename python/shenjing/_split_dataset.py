"""``utils.split_dataset`` (keras/src/utils/dataset_utils.py): a dataset cut into a left and a
right part, after an optional shuffle of its samples."""
import numbers
import random

import numpy as np

from shenjing import _dataset_utils as du
from shenjing._py_dataset import PyDataset


def _rescale_sizes(left_size, right_size, total):
    """Keras's _rescale_dataset_split_sizes: integer sizes, with Keras's checks and errors."""
    lt, rt = type(left_size), type(right_size)
    if left_size is not None and lt not in (int, float) and \
            right_size is not None and rt not in (int, float):
        raise TypeError(f"Invalid `left_size` and `right_size` Types. Expected: integer or "
                        f"float or None, Received: type(left_size)={lt} and "
                        f"type(right_size)={rt}")
    if left_size is not None and lt not in (int, float):
        raise TypeError(f"Invalid `left_size` Type. Expected: int or float or None, "
                        f"Received: type(left_size)={lt}.  ")
    if right_size is not None and rt not in (int, float):
        raise TypeError(f"Invalid `right_size` Type. Expected: int or float or None,"
                        f"Received: type(right_size)={rt}.")
    if left_size == 0 and right_size == 0:
        raise ValueError("Both `left_size` and `right_size` are zero. At least one of the "
                         "split sizes must be non-zero.")
    if (lt is int and (left_size <= 0 or left_size >= total)) or \
            (lt is float and (left_size <= 0 or left_size >= 1)):
        raise ValueError(f"`left_size` should be either a positive integer smaller than "
                         f"{total}, or a float within the range `[0, 1]`. Received: "
                         f"left_size={left_size}")
    if (rt is int and (right_size <= 0 or right_size >= total)) or \
            (rt is float and (right_size <= 0 or right_size >= 1)):
        raise ValueError(f"`right_size` should be either a positive integer and smaller than "
                         f"{total} or a float within the range `[0, 1]`. Received: "
                         f"right_size={right_size}")
    if lt is float and rt is float and left_size + right_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must "
                         "be less than or equal to 1.")
    left = round(left_size * total) if lt is float else left_size
    right = round(right_size * total) if rt is float else right_size
    if left is None:
        left = total - right
    elif right is None:
        right = total - left
    if left + right > total:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than the "
                         f"{total}. Received: left_size + right_size = {left + right}and "
                         f"total_length = {total}")
    for split, side in ((left, "left"), (right, "right")):
        if split == 0:
            raise ValueError(f"With `dataset` of length={total}, `left_size`={left} and "
                             f"`right_size`={right}.Resulting {side} side dataset split will "
                             f"be empty. Adjust any of the aforementioned parameters")
    return int(left), int(right)


def _take(structure, idx):
    if isinstance(structure, (tuple, list)):
        return type(structure)(_take(s, idx) for s in structure)
    if isinstance(structure, dict):
        return {k: _take(v, idx) for k, v in structure.items()}
    return structure[idx]


def _length(structure):
    lengths = set()

    def walk(s):
        if isinstance(s, (tuple, list)):
            for v in s:
                walk(v)
        elif isinstance(s, dict):
            for v in s.values():
                walk(v)
        else:
            lengths.add(len(s))
    walk(structure)
    if len(lengths) != 1:
        raise ValueError(f"The arrays of `dataset` must all have the same length (samples); "
                         f"received lengths {sorted(lengths)}.")
    return lengths.pop()


def _as_arrays(structure):
    if isinstance(structure, (tuple, list)):
        return type(structure)(_as_arrays(s) for s in structure)
    if isinstance(structure, dict):
        return {k: _as_arrays(v) for k, v in structure.items()}
    a = np.asarray(structure)
    if a.ndim == 0:
        raise TypeError(f"Each array of `dataset` needs a first (sample) axis; received a "
                        f"scalar {structure!r}.")
    return a


def _unbatch(dataset):
    """All the samples of a PyDataset of batches, concatenated: (structure of arrays, the
    size of its first batch)."""
    batches = [dataset[i] for i in range(len(dataset))]
    if not batches:
        raise ValueError("Cannot split an empty dataset.")
    first = batches[0]

    def concat(parts):
        if isinstance(parts[0], (tuple, list)):
            return type(parts[0])(concat([p[k] for p in parts]) for k in range(len(parts[0])))
        if isinstance(parts[0], dict):
            return {k: concat([p[k] for p in parts]) for k in parts[0]}
        return np.concatenate([np.asarray(p) for p in parts])
    return concat(batches), _length(_as_arrays(first))


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None,
                  preferred_backend=None):
    """Splits a dataset into a left and a right part (e.g. train and test), as Keras does.

    Args:
        dataset: a NumPy array, a tuple/list (or dict) of arrays with the same number of
            samples, or a ``utils.PyDataset`` of batches (such as the ``*_dataset_from_*``
            functions return).
        left_size, right_size: a float in (0, 1) (a fraction of the samples, rounded) or an
            int (a number of samples); None is the complement of the other.
        shuffle: shuffle the samples before splitting, with Python's ``random`` seeded by
            ``seed`` as Keras does (the same seed gives Keras's split), without touching the
            global ``random`` state.
        preferred_backend: accepted for Keras compatibility and ignored.

    Returns:
        ``(left, right)``: of the type given (arrays, or tuples/lists/dicts of arrays); for a
        PyDataset, two PyDatasets with its batch size and ``class_names``. The left part
        takes the first samples, the right part the last ones.
    """
    del preferred_backend
    if right_size is None and left_size is None:
        raise ValueError("At least one of the `left_size` or `right_size` must be specified. "
                         "Received: left_size=None and right_size=None")
    if isinstance(left_size, np.integer):
        left_size = int(left_size)
    if isinstance(right_size, np.integer):
        right_size = int(right_size)
    if isinstance(dataset, PyDataset):
        arrays, batch_size = _unbatch(dataset)
    elif isinstance(dataset, (np.ndarray, tuple, list, dict)):
        if isinstance(dataset, (tuple, list, dict)) and not len(dataset):
            raise ValueError("Cannot split an empty dataset.")
        if isinstance(dataset, list) and all(isinstance(v, numbers.Number) for v in dataset):
            dataset = np.asarray(dataset)
        arrays, batch_size = _as_arrays(dataset), None
    else:
        raise TypeError(f"The `dataset` argument must be either a `shenjing.utils.PyDataset` "
                        f"object, or a list/tuple of arrays. Received: dataset={dataset} of "
                        f"type {type(dataset)}")
    total = _length(arrays)
    order = list(range(total))
    if shuffle:
        if seed is None:
            seed = random.randint(0, int(1e6))
        # Keras calls random.seed(seed); random.shuffle(samples): the same permutation.
        random.Random(seed).shuffle(order)
    left, right = _rescale_sizes(left_size, right_size, total)
    order = np.asarray(order, dtype=np.int64)
    parts = (_take(arrays, order[:left]), _take(arrays, order[total - right:]))
    if batch_size is None:
        return parts
    out = []
    for part in parts:
        ds = du.SampleDataset(_length(part), lambda idx, p=part: _take(p, idx), batch_size)
        ds.class_names = getattr(dataset, "class_names", None)
        out.append(ds)
    return tuple(out)
