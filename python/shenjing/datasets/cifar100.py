"""CIFAR100 small images classification dataset."""
import numpy as np

from shenjing.datasets import _cifar, _files


def load_data(label_mode="fine"):
    """Loads the CIFAR100 dataset, as ``keras.datasets.cifar100.load_data()``.

    50,000 32x32 colour training images and 10,000 test images, labelled over 100 fine
    classes grouped into 20 coarse ones.

    The original archive ``cifar-100-python.tar.gz`` is looked up in
    ``$SHENJING_DATA/cifar100/``, then in the cache ``$SHENJING_HOME/datasets/cifar100/``,
    and otherwise downloaded into the cache; its SHA-256 is checked (Keras's).

    Args:
        label_mode: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``x`` uint8 of shape ``(n, 32, 32, 3)``,
        ``y`` int64 of shape ``(n, 1)`` (Keras's dtype here).
    """
    if label_mode not in ["fine", "coarse"]:
        raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: '
                         f"label_mode={label_mode}.")
    (path,) = _files.get_files("cifar100", ["cifar-100-python.tar.gz"])
    (x_train, y_train), (x_test, y_test) = _cifar.load_batches(
        path, ["cifar-100-python/train", "cifar-100-python/test"], f"{label_mode}_labels")
    out = []
    for x, y, what in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        y = np.asarray(y, dtype=np.int64).reshape(-1, 1)
        _cifar.check_labels(y, 100 if label_mode == "fine" else 20, f"cifar100 {what}")
        out.append((x.transpose(0, 2, 3, 1).copy(), y))
    return tuple(out)
