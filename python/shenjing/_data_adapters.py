"""Python iterables as fit/evaluate/predict data (Keras 3's data adapters and EpochIterator):
``shenjing.utils.PyDataset``, torch ``DataLoader`` and other re-iterable objects, generators and
other iterators. A ``Source`` hands out one batch at a time as NumPy ``(x, y, sample_weight)``,
made ahead on background threads (``_prefetch.py``) or PyDataset worker processes
(``_mp_workers.py``) while the core trains on the current batch.

Passes (Keras's semantics): a PyDataset (shuffled per pass when ``shuffle``) and a re-iterable
start a new pass when the last one is used up; with ``steps_per_epoch`` an epoch continues the
pass where the last epoch stopped. A generator or iterator is one pass for the whole call: it
is never restarted."""
import os
import sys
import warnings

import numpy as np

from shenjing import _data_convert as conv, _mp_workers, _prefetch
from shenjing._multi_io import Prepared
from shenjing._py_dataset import PyDataset
from shenjing.data import DataLoader, Dataset

GENERATOR_QUEUE = 10  # batches a generator or DataLoader is read ahead
_warned_no_fork = False
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_stacklevel():
    """warnings.warn's stacklevel of the first caller outside shenjing (the user's fit)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(
            os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR:
        frame, level = frame.f_back, level + 1
    return level


def is_torch_dataloader(x):
    return any(c.__name__ == "DataLoader" and c.__module__.startswith("torch.utils.data")
               for c in type(x).__mro__)


def is_stream(x):
    """Whether x is data this module reads (anything iterable that is not an array, a list,
    a dict or shenjing's in-memory Dataset/DataLoader)."""
    if isinstance(x, (PyDataset, Source)):
        return True
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes, Dataset,
                                   DataLoader, Prepared)):
        return False
    if hasattr(x, "__array__") or hasattr(x, "shape"):
        return False  # tensors and data frames are arrays
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def _kind_name(x):
    if isinstance(x, PyDataset):
        return "PyDataset"
    if is_torch_dataloader(x):
        return "torch DataLoader"
    if hasattr(x, "__next__"):
        return "generator"
    return "iterable"


def check_args(x, what, y=None, class_weight=None, shuffle=False):
    """Keras's refusals and warnings for arguments that a data type carries itself."""
    kind = _kind_name(x)
    if y is not None:
        raise ValueError(f"When providing `x` as a {kind}, `y` should not be passed. Instead, "
                         f"the targets should be included as part of the {kind}.")
    if class_weight is not None:
        if kind == "torch DataLoader":
            raise ValueError(
                "Argument `class_weight` is not supported for torch DataLoader inputs. You can "
                "modify your `__getitem__ ` method to return input tensor, label and "
                f"class_weight. Received: class_weight={class_weight}")
        if kind != "PyDataset":
            raise ValueError(f"Argument `class_weight` is not supported for Python {kind} "
                             f"inputs. Received: class_weight={class_weight}")
        conv.check_class_weight(class_weight)
    if shuffle and kind != "PyDataset":
        warnings.warn(f"`shuffle=True` was passed, but will be ignored since the data `x` was "
                      f"provided as a {kind}. The {kind} is expected to yield already-shuffled "
                      f"data.", stacklevel=user_stacklevel())


class Source:
    """Batches of x for one fit/evaluate/predict call (or for fit's validation, kept over
    the epochs). ``steps``: batches per epoch (``steps_per_epoch``) or None."""

    def __init__(self, x, what, steps=None, shuffle=False, class_weight=None, rng=None,
                 epochs=1):
        self.data, self.what, self.steps = x, what, steps
        # A generator is read ahead no further than the call can use: what is left of it
        # stays there for the next call, as with Keras's unbuffered reads.
        self._budget = steps * epochs if steps is not None else None
        self.kind = _kind_name(x)
        self._class_weight = class_weight
        self._shuffle, self._rng = shuffle, rng
        self._pass = None  # the Prefetcher of the current pass
        self.one_shot = self.kind == "generator"
        self.num_batches = None
        if self.kind == "PyDataset":
            self.num_batches = x.num_batches
            self.workers = int(x.workers)
            self.use_multiprocessing = bool(x.use_multiprocessing)
            self.queue = int(x.max_queue_size)
            if self.workers < 0 or self.queue < 1:
                raise ValueError(f"PyDataset: workers must be >= 0 and max_queue_size >= 1, "
                                 f"received workers={self.workers}, max_queue_size="
                                 f"{self.queue}.")
            if self.num_batches is None and shuffle:
                warnings.warn("`shuffle=True` was passed, but will be ignored since the data "
                              "`x` was provided as an infinite PyDataset. The PyDataset is "
                              "expected to already be shuffled.", stacklevel=user_stacklevel())
        elif not self.one_shot:
            try:
                self.num_batches = len(x)
            except TypeError:
                self.num_batches = None
        if self.num_batches is None and steps is None and self.kind == "PyDataset":
            raise ValueError(f"{what}: the PyDataset is infinite (num_batches is None): pass "
                             f"steps{'_per_epoch' if what == 'fit' else ''} to say how many "
                             f"batches to read.")
        if self.num_batches == 0:
            raise ValueError(f"{what}: the {self.kind} has no batches (length 0).")

    @property
    def epoch_steps(self):
        """Batches in the coming epoch (None: until the data runs out)."""
        return self.steps or self.num_batches

    # -- one batch ------------------------------------------------------------------------
    def _standardize(self, batch, label):
        """(x, y, sample_weight, label): label names the batch in error messages."""
        x, y, sw = conv.map_arrays(conv.unpack(batch, label))
        if self._class_weight is not None and y is not None:
            if sw is not None:
                raise ValueError("You cannot specify `class_weight` and `sample_weight` at the "
                                 "same time.")
            if isinstance(y, (list, tuple, dict)):
                raise ValueError("`class_weight` is only supported for Models with a single "
                                 "output.")
            sw = conv.class_weight_to_sample_weights(y, self._class_weight)
        return x, y, sw, label

    def _new_pass(self):
        x, n = self.data, self.num_batches
        if self.kind == "PyDataset":
            order = None
            if self._shuffle and n is not None:
                order = self._rng().permutation(n)
            workers = None
            if self.use_multiprocessing and self.workers > 0:
                if _mp_workers.available():
                    workers = _mp_workers.Workers(x)
                else:
                    _warn_no_fork()

            def produce(pos, k):
                index = int(order[pos]) if order is not None else pos
                batch = workers.fetch(k, index) if workers is not None else x[index]
                return self._standardize(batch, f"PyDataset.__getitem__({index})")

            if self.workers == 0:
                return _prefetch.Inline(produce)
            return _prefetch.Prefetcher(
                produce, self.workers, self.queue, length=n,
                on_start=workers.start if workers else None,
                on_stop=workers.stop if workers else None, name="shenjing-pydataset")
        it = iter(x)  # in this thread: a torch DataLoader may start its workers here

        def produce(pos, k):
            try:
                batch = next(it)
            except StopIteration:
                raise _prefetch.Exhausted() from None
            return self._standardize(batch, f"Batch {pos} of the {self.kind}")

        return _prefetch.Prefetcher(produce, 1, GENERATOR_QUEUE, name="shenjing-iterable",
                                    length=self._budget if self.one_shot else None)

    # -- epochs ---------------------------------------------------------------------------
    def begin_epoch(self):
        if self.kind == "PyDataset":
            self.data.on_epoch_begin()
        if self._pass is None:
            self._pass = self._new_pass()
        self._pass.resume()

    def next(self):
        """(x, y, sample_weight, label) of the next batch, or END when the pass has none
        left."""
        return self._pass.get()

    def exhausted(self):
        """For a generator: whether it has nothing left (it is never restarted)."""
        if self._pass is None:
            self._pass = self._new_pass()
        self._pass.resume()
        return self._pass.peek_end()

    def end_epoch(self, ran_out):
        """After an epoch: stops the workers; a pass used up (or that ran out) is over."""
        p = self._pass
        if p is None:
            return
        p.pause()
        done = ran_out or (self.num_batches is not None and p.taken >= self.num_batches)
        if self.kind == "PyDataset":
            self.data.on_epoch_end()
        if done and not self.one_shot:
            if self.num_batches is None:
                self.num_batches = p.taken  # learnt, as Keras does, for the progress bar
            self._pass = None

    def close(self):
        if self._pass is not None:
            self._pass.pause()


def array_batches(x, y, batch_size):
    """evaluate/predict with ``steps`` on arrays or shenjing's in-memory Dataset/DataLoader."""
    if isinstance(x, Dataset):
        x, y = x.x, x.y
    elif isinstance(x, DataLoader):
        x, y, batch_size = x.dataset.x, x.dataset.y, x.batch_size
    return ArrayBatches(x, y, batch_size)


class ArrayBatches:
    """Arrays (in any structure fit takes) as a re-iterable of ``(x, y)`` slices of
    ``batch_size`` rows: evaluate/predict with ``steps`` on arrays read this way."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size
        first = _first_leaf(x)
        if first is None or not hasattr(first, "__len__"):
            raise ValueError("x must be an array (or a list/dict of arrays).")
        self.n = len(first)

    def __len__(self):
        return -(-self.n // self.batch_size)

    def __iter__(self):
        for start in range(0, self.n, self.batch_size):
            s = slice(start, start + self.batch_size)
            yield (_slice(self.x, s), _slice(self.y, s))


def _first_leaf(v):
    if isinstance(v, dict):
        return next(iter(v.values()), None)
    if isinstance(v, (list, tuple)):
        return v[0] if v and hasattr(v[0], "shape") else np.asarray(v)
    return v


def _slice(v, s):
    if v is None:
        return None
    if isinstance(v, dict):
        return {k: _slice(a, s) for k, a in v.items()}
    if isinstance(v, (list, tuple)) and v and hasattr(v[0], "shape"):
        return [a[s] for a in v]
    return np.asarray(v)[s] if isinstance(v, (list, tuple)) else v[s]


def _warn_no_fork():
    global _warned_no_fork
    if not _warned_no_fork:
        _warned_no_fork = True
        warnings.warn("PyDataset: use_multiprocessing=True needs fork(), which this platform "
                      "does not have (shenjing hands the dataset to worker processes by fork, "
                      "never by pickle): using threads instead.", stacklevel=user_stacklevel())


def warn_ran_out():
    warnings.warn("Your input ran out of data; interrupting training. Make sure that your "
                  "dataset or generator can generate at least `steps_per_epoch * epochs` "
                  "batches.", stacklevel=user_stacklevel())
