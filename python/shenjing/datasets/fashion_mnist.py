"""Fashion-MNIST dataset of Zalando article images."""

from shenjing.datasets import _files


def load_data():
    """Loads the Fashion-MNIST dataset.

    60,000 28x28 grayscale images of 10 fashion categories for training and
    10,000 for testing, as in `keras.datasets.fashion_mnist.load_data()`.
    Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat,
    5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

    The four original IDX files are looked up in
    `$SHENJING_DATA/fashion-mnist/`, then in the cache
    `$SHENJING_HOME/datasets/fashion-mnist/` (default
    `~/.shenjing/datasets/fashion-mnist/`), and otherwise downloaded into the
    cache. Every file is checked against its published SHA-256.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.
        `x_train` is `uint8` of shape `(60000, 28, 28)` with pixel values
        0..255, `y_train` is `uint8` of shape `(60000,)` with labels 0..9;
        `x_test` and `y_test` likewise with 10000 samples.

    Raises:
        FileNotFoundError: (a `DatasetNotFoundError`) the files are neither
            on disk nor downloadable; the message says where to put them.
        ValueError: a file does not match its checksum or is malformed.

    License: MIT, Copyright (c) 2017 Zalando SE.
    """
    return _files.load_idx_dataset("fashion-mnist")
