"""UCI 8x8 handwritten digits, shipped with shenjing (no download needed)."""

import gzip
import hashlib
import os

import numpy as np

from shenjing.datasets import _files

_PATH = os.path.join(os.path.dirname(__file__), "data", "digits.csv.gz")
_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def load_data(test_split=0.2, seed=113):
    """Loads the UCI optical handwritten digits dataset (8x8 images).

    1797 images of the digits 0..9, each 8x8 pixels holding counts 0..16,
    the same data as scikit-learn's `load_digits()`. The file ships inside
    the shenjing package, so this works offline; it is a small stand-in for
    MNIST in examples and tests.

    Args:
        test_split: fraction of the data to reserve as test set, in
            `[0, 1)`. Defaults to 0.2 (1437 train, 360 test samples).
        seed: random seed for shuffling the data before the split (the same
            rule as `boston_housing.load_data`). Defaults to 113.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`;
        `x_*` are `uint8` of shape `(num_samples, 8, 8)` with values 0..16,
        `y_*` are `uint8` of shape `(num_samples,)` with labels 0..9.

    License: CC BY 4.0. E. Alpaydin and C. Kaynak, "Optical Recognition of
    Handwritten Digits", UCI Machine Learning Repository (1998),
    https://doi.org/10.24432/C50P49.
    """
    if not 0 <= test_split < 1:
        raise ValueError(f"test_split must be in [0, 1), got {test_split}.")
    data = _read()
    x = data[:, :64].reshape(-1, 8, 8)
    y = data[:, 64].copy()
    return _files.split(x, y, test_split, seed)


def _read():
    with open(_PATH, "rb") as f:
        raw = f.read()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != _SHA256:
        raise ValueError(f"Dataset file {_PATH} is corrupt: expected SHA-256 "
                         f"{_SHA256}, got {actual}. Reinstall shenjing.")
    data = np.loadtxt(gzip.decompress(raw).decode("ascii").splitlines(),
                      delimiter=",", dtype=np.uint8)
    if data.shape != (1797, 65) or data[:, :64].max() > 16 or data[:, 64].max() > 9:
        raise ValueError(f"Dataset file {_PATH} has unexpected contents.")
    return data
