"""MNIST handwritten digits dataset."""

from shenjing.datasets import _files


def load_data(path="mnist.npz"):
    """Loads the MNIST dataset.

    60,000 28x28 grayscale images of the 10 digits for training and 10,000
    for testing, as in `keras.datasets.mnist.load_data()`.

    The four original IDX files (`train-images-idx3-ubyte.gz`, ...) are
    looked up in `$SHENJING_DATA/mnist/`, then in the cache
    `$SHENJING_HOME/datasets/mnist/` (default `~/.shenjing/datasets/mnist/`),
    and otherwise downloaded into the cache. Every file is checked against
    its published SHA-256.

    Args:
        path: accepted for compatibility with Keras, whose cache holds a
            single `mnist.npz`; shenjing reads the IDX files and ignores it.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.
        `x_train` is `uint8` of shape `(60000, 28, 28)` with pixel values
        0..255, `y_train` is `uint8` of shape `(60000,)` with labels 0..9;
        `x_test` and `y_test` likewise with 10000 samples.

    Raises:
        FileNotFoundError: (a `DatasetNotFoundError`) the files are neither
            on disk nor downloadable; the message says where to put them.
        ValueError: a file does not match its checksum or is malformed.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = shenjing.datasets.mnist.load_data()
    assert x_train.shape == (60000, 28, 28)
    ```

    License: Yann LeCun and Corinna Cortes hold the copyright of MNIST, a
    derivative of the NIST databases, made available under the terms of the
    Creative Commons Attribution-Share Alike 3.0 license.
    """
    del path  # Keras compatibility only.
    return _files.load_idx_dataset("mnist")
