"""The pieces shared by ``timeseries_dataset_from_array``, ``image_dataset_from_directory``,
``text_dataset_from_directory`` and ``split_dataset``: a PyDataset over samples that a loader
turns into whole batches, and Keras's directory indexing (keras/src/utils/dataset_utils.py).

shenjing has no tf.data, so what Keras returns as a ``tf.data.Dataset`` is here a
``utils.PyDataset``: ``len(ds)`` batches, ``ds[i]`` the i-th batch as NumPy arrays, iterable,
and ``on_epoch_end`` drawing a new order when the dataset shuffles (tf.data's
``reshuffle_each_iteration``).
"""
import os

import numpy as np

from shenjing._py_dataset import PyDataset


def check_positive_int(value, what, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{what}` must be a positive integer{' or None' if allow_none else ''}"
                         f". Received: {what}={value!r}")
    return int(value)


def check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer or None. Received: "
                         f"seed={seed!r}")
    return int(seed)


class SampleDataset(PyDataset):
    """A PyDataset of ``num_samples`` samples, batched in the current order.

    ``load(indices)`` returns the batch of those samples (an array, or a tuple ``(x, y)``);
    with ``batch_size=None`` each item is one sample (``load`` of one index, without the batch
    axis), as an unbatched tf.data dataset yields. With ``shuffle``, the first pass keeps the
    order given (which the caller already drew as Keras does) and each ``on_epoch_end``
    draws a new one from a generator seeded by ``seed`` (same seed, same sequence of orders).
    """

    def __init__(self, num_samples, load, batch_size, shuffle=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._num_samples = int(num_samples)
        self._load = load
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self._order = np.arange(self._num_samples)
        self._rng = np.random.default_rng(seed) if shuffle else None

    @property
    def num_samples(self):
        return self._num_samples

    def __len__(self):
        if self.batch_size is None:
            return self._num_samples
        return -(-self._num_samples // self.batch_size)

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers, received "
                            f"{index!r}.")
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"batch index {index} out of range for {n} batches.")
        if self.batch_size is None:
            batch = self._load(self._order[index:index + 1])
            return _first(batch)
        start = index * self.batch_size
        return self._load(self._order[start:start + self.batch_size])

    def __iter__(self):
        """One pass over the batches; a complete pass then reshuffles (tf.data draws a new
        order each time a shuffling dataset is iterated)."""
        for i in range(len(self)):
            yield self[i]
        self.on_epoch_end()

    def on_epoch_end(self):
        if self.shuffle and self._num_samples > 1:
            self._order = self._rng.permutation(self._num_samples)


def _first(batch):
    """The only sample of a batch of one (the structure kept, the batch axis dropped)."""
    if isinstance(batch, tuple):
        return tuple(_first(b) for b in batch)
    return batch[0]


def encode_labels(labels, label_mode, num_classes):
    """Keras's label encodings: int -> int32 (n,), categorical -> float32 one-hot (n, C),
    binary -> float32 (n, 1)."""
    labels = np.asarray(labels, dtype=np.int64)
    if label_mode == "int":
        return labels.astype(np.int32)
    if label_mode == "binary":
        return labels.astype(np.float32).reshape(-1, 1)
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


# -- directories (keras/src/utils/dataset_utils.py) ------------------------------------------
def check_validation_split_arg(validation_split, subset, shuffle, seed):
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: "
                         f"{validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'`subset` must be either "training", "validation" or "both", '
                         f'received: {subset}')
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must "
                         "provide a `seed` argument, to make sure that there is no overlap "
                         "between the training and validation subset.")


def check_labels_args(labels, label_mode, class_names):
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError(
                "`labels` argument should be a list/tuple of integer labels, of the same "
                "size as the number of files in the target directory. If you wish to infer "
                "the labels from the subdirectory names in the target directory, pass "
                '`labels="inferred"`. If you wish to get a dataset that only contains the '
                f"samples (no labels), pass `labels=None`. Received: labels={labels}")
        if class_names:
            raise ValueError(f'You can only pass `class_names` if `labels="inferred"`. '
                             f"Received: labels={labels}, and class_names={class_names}")
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0
               for v in labels):
            raise ValueError("`labels` must be non-negative integers.")
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError('`label_mode` argument must be one of "int", "categorical", '
                         f'"binary", or None. Received: label_mode={label_mode}')


def _valid_files(directory, follow_links, formats):
    """(root, name) of the files with an allowed extension under ``directory``, sorted by
    folder then name (Keras's iter_valid_files)."""
    walk = sorted(os.walk(directory, followlinks=follow_links), key=lambda x: x[0])
    for root, _, files in walk:
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                yield root, fname


def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None,
                    follow_links=False, verbose=True):
    """Keras's index_directory: (file_paths, labels or None, class_names or None), the files
    in the order Keras lists them and shuffled with ``RandomState(seed)`` as Keras does (the
    same seed gives Keras's file order)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"`directory` must be an existing folder. Received: "
                         f"directory={directory!r}")
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError(
                    "The `class_names` passed did not match the names of the subdirectories "
                    f"of the target directory. Expected: {subdirs} (or a subset of it), but "
                    f"received: class_names={class_names}")
            subdirs = list(class_names)
    else:
        if class_names is not None:
            if labels is None:
                raise ValueError("When `labels=None` (no labels), argument `class_names` "
                                 "cannot be specified.")
            raise ValueError("When argument `labels` is specified, argument `class_names` "
                             "cannot be specified (the `class_names` will be the sorted list "
                             "of labels).")
        subdirs = [""]
    filenames, label_list = [], []
    for index, subdir in enumerate(subdirs):
        folder = os.path.join(directory, subdir)
        dirname = os.path.basename(folder)
        for root, fname in _valid_files(folder, follow_links, formats):
            filenames.append(os.path.join(dirname, os.path.relpath(os.path.join(root, fname),
                                                                   folder)))
            label_list.append(index)
    if labels == "inferred":
        class_names = list(subdirs)
        labels = np.asarray(label_list, dtype=np.int32)
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError(
                "Expected the lengths of `labels` to match the number of files in the target "
                f"directory. len(labels) is {len(labels)} while we found {len(filenames)} "
                f"files in directory {directory}.")
        class_names = [str(label) for label in sorted(set(labels))]
        labels = np.asarray(labels, dtype=np.int32)
    if verbose:
        if labels is None:
            print(f"Found {len(filenames)} files.")
        else:
            print(f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, f) for f in filenames]
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


def training_or_validation_split(samples, labels, validation_split, subset, verbose=True):
    """The last ``int(validation_split * n)`` samples are the validation subset, the rest the
    training subset (Keras's get_training_or_validation_split)."""
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    if subset == "training":
        if verbose:
            print(f"Using {len(samples) - num_val} files for training.")
        end = len(samples) - num_val
        return samples[:end], None if labels is None else labels[:end]
    if verbose:
        print(f"Using {num_val} files for validation.")
    start = len(samples) - num_val
    return samples[start:], None if labels is None else labels[start:]


def subsets(file_paths, labels, validation_split, subset, verbose):
    """[(paths, labels, is_training)] for one subset, or training and validation for 'both'."""
    if subset == "both":
        return [training_or_validation_split(file_paths, labels, validation_split, s, verbose)
                + (s == "training",) for s in ("training", "validation")]
    return [training_or_validation_split(file_paths, labels, validation_split, subset,
                                         verbose) + (True,)]
