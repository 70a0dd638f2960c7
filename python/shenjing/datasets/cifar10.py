"""CIFAR10 small images classification dataset."""
import numpy as np

from shenjing.datasets import _cifar, _files

_MEMBERS = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + \
    ["cifar-10-batches-py/test_batch"]


def load_data():
    """Loads the CIFAR10 dataset, as ``keras.datasets.cifar10.load_data()``.

    50,000 32x32 colour training images and 10,000 test images, labelled over 10 categories
    (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).

    The original archive ``cifar-10-python.tar.gz`` is looked up in ``$SHENJING_DATA/cifar10/``,
    then in the cache ``$SHENJING_HOME/datasets/cifar10/`` (default ``~/.shenjing``), and
    otherwise downloaded from https://www.cs.toronto.edu/~kriz/ into the cache; its SHA-256
    is checked (Keras's). The python batches inside are read without the pickle module.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``x`` uint8 of shape ``(n, 32, 32, 3)``
        (channels last), ``y`` uint8 of shape ``(n, 1)`` with labels 0..9.

    Raises:
        FileNotFoundError: (a ``DatasetNotFoundError``) the archive is neither on disk nor
            downloadable; the message says where to put it.
        ValueError: the archive does not match its checksum or is malformed.
    """
    (path,) = _files.get_files("cifar10", ["cifar-10-python.tar.gz"])
    batches = _cifar.load_batches(path, _MEMBERS, "labels")
    x_train = np.concatenate([b[0] for b in batches[:5]])
    y_train = np.concatenate([np.asarray(b[1], dtype=np.int64) for b in batches[:5]])
    x_test, y_test = batches[5][0], np.asarray(batches[5][1], dtype=np.int64)
    for y, what in ((y_train, "cifar10 training"), (y_test, "cifar10 test")):
        _cifar.check_labels(y, 10, what)
    return ((x_train.transpose(0, 2, 3, 1).copy(), y_train.astype(np.uint8).reshape(-1, 1)),
            (x_test.transpose(0, 2, 3, 1).copy(), y_test.astype(np.uint8).reshape(-1, 1)))
