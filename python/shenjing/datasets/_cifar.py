"""Reading the CIFAR python batches straight from the original archives
(cifar-10-python.tar.gz, cifar-100-python.tar.gz), as Keras's ``load_batch`` does, but through
the plain-data pickle reader (_safe_pickle.py) instead of the pickle module."""
import tarfile
import zlib

import numpy as np

from shenjing.datasets import _safe_pickle


def load_batches(archive, members, label_key):
    """[(data uint8 (n, 3, 32, 32), labels list)] of the named members of ``archive``."""
    out = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in members:
                try:
                    f = tar.extractfile(name)
                except KeyError:
                    f = None
                if f is None:
                    raise ValueError(f"CIFAR archive {archive} has no file {name}.")
                out.append(_batch(f.read(), f"{archive}:{name}", label_key))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ValueError(f"CIFAR archive {archive} is not a valid tar.gz file: {e}") from e
    return out


def _batch(raw, what, label_key):
    try:
        d, _ = _safe_pickle.loads(raw)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{what} is not a CIFAR batch (a dict).")
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in d.items()}
    data, labels = d.get("data"), d.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or \
            data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{what}: 'data' is not a uint8 array of shape (n, 3072).")
    if not isinstance(labels, list) or len(labels) != len(data) or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise ValueError(f"{what}: '{label_key}' is not a list of {len(data)} integers.")
    return data.reshape(data.shape[0], 3, 32, 32), labels


def check_labels(y, num_classes, what):
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{what} has labels outside 0..{num_classes - 1}.")
