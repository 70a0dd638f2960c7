"""Dataset and DataLoader: in-memory samples, batched and shuffled with a seed.

``fit``, ``evaluate`` and ``predict`` accept a DataLoader directly; they then read the
loader's arrays in C++ by index, so batching costs no Python copies."""
import numpy as np

from shenjing import _random


class Dataset:
    """Pairs of samples ``(x[i], y[i])`` (``y`` optional) held as NumPy arrays."""

    def __init__(self, x, y=None):
        self.x = np.asarray(x)
        self.y = None if y is None else np.asarray(y)
        if self.x.ndim == 0 or len(self.x) == 0:
            raise ValueError("Dataset: x must be a non-empty array of samples.")
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"Dataset: x has {len(self.x)} samples but y has {len(self.y)}.")

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] if self.y is None else (self.x[i], self.y[i])


class DataLoader:
    """Iterates over a Dataset in batches.

    Args:
        dataset: a ``Dataset`` (or a tuple ``(x, y)`` / an array ``x``).
        batch_size: samples per batch (32).
        shuffle: reshuffle the order at every pass (False).
        drop_last: drop the last incomplete batch (False).
        seed: seed of the shuffling; the package generator (``set_random_seed``) when None.
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, drop_last=False, seed=None):
        if not isinstance(dataset, Dataset):
            dataset = Dataset(*dataset) if isinstance(dataset, tuple) else Dataset(dataset)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}.")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self):
        """The sample order of one pass (a new permutation each call when shuffling)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = self._rng if self._rng is not None else _random.generator()
        return rng.permutation(n).astype(np.int64)

    def __iter__(self):
        idx = self.order()
        for b in range(len(self)):
            sel = idx[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.dataset[sel]
