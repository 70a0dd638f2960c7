"""Boston housing price regression dataset."""

import numpy as np

from shenjing.datasets import _files


def load_data(path="boston_housing.npz", test_split=0.2, seed=113):
    """Loads the Boston Housing dataset.

    506 samples of 13 attributes of houses around Boston in the late 1970s;
    targets are median home values in k$. The train/test split is the same
    as `keras.datasets.boston_housing.load_data()` for the same arguments.

    **Warning:** this dataset has an ethical problem: its "B" attribute
    assumes that racial self-segregation affects house prices. Use it only
    to illustrate such problems.

    The Keras file is looked up in `$SHENJING_DATA/boston_housing/<path>`,
    then in the cache `~/.shenjing/datasets/boston_housing/<path>`, and
    otherwise downloaded there; it is checked against its SHA-256.

    Args:
        path: file name of the dataset in those folders. Defaults to
            `"boston_housing.npz"`.
        test_split: fraction of the data to reserve as test set, in
            `[0, 1)`. Defaults to 0.2 (404 train, 102 test samples).
        seed: random seed for shuffling the data before the split.
            Defaults to 113.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`;
        `x_*` are `float64` of shape `(num_samples, 13)`, `y_*` are
        `float64` of shape `(num_samples,)`.

    Raises:
        FileNotFoundError: (a `DatasetNotFoundError`) the file is neither on
            disk nor downloadable; the message says where to put it.
        ValueError: `test_split` is out of range, or the file does not match
            its checksum.
    """
    if not 0 <= test_split < 1:
        raise ValueError(f"test_split must be in [0, 1), got {test_split}.")
    (file,) = _files.get_files("boston_housing", ["boston_housing.npz"], [path])
    with np.load(file, allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    return _files.split(x, y, test_split, seed)
