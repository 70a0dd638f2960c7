"""``keras.utils.PyDataset``: the base class of a dataset written in Python that yields whole
batches (``__getitem__(i)`` -> ``(x, y)`` or ``(x, y, sample_weight)``, ``__len__`` -> number
of batches). fit/evaluate/predict read it through the streaming data path, which prepares the
next batches on ``workers`` threads while the core trains on the current one."""
import warnings


class PyDataset:
    """Base class for a dataset in Python code: implement ``__getitem__`` (a complete batch)
    and ``__len__`` (the number of batches); optionally ``on_epoch_begin``/``on_epoch_end``.

    Args:
        workers: threads (or processes) preparing batches ahead while the model trains.
        use_multiprocessing: prepare batches in processes instead of threads.
        max_queue_size: most batches prepared ahead (10).
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self):
        missing = [k for k in ("_workers", "_use_multiprocessing", "_max_queue_size")
                   if not hasattr(self, k)]
        if missing:
            self._workers = getattr(self, "_workers", 1)
            self._use_multiprocessing = getattr(self, "_use_multiprocessing", False)
            self._max_queue_size = getattr(self, "_max_queue_size", 10)
            warnings.warn(
                "Your `PyDataset` class should call `super().__init__(**kwargs)` in its "
                "constructor. `**kwargs` can include `workers`, `use_multiprocessing`, "
                "`max_queue_size`. Do not pass these arguments to `fit()`, as they will be "
                "ignored.", stacklevel=3)

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position ``index``."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__().")

    def __len__(self):
        """The number of batches (when ``num_batches`` is not overridden)."""
        raise NotImplementedError(f"{type(self).__name__} must implement __len__().")

    @property
    def num_batches(self):
        """Batches per epoch, or None for an endless dataset (Keras 3's contract)."""
        if hasattr(self, "__len__"):
            return len(self)
        return None

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""
