"""Batches prepared ahead on background threads while the core trains on the current one
(``core.train_step`` releases the GIL, so Python code in ``__getitem__`` or a generator runs
meanwhile). Results come back in position order whatever thread made them, so training sees
the same batches in the same order for any number of workers.

``Prefetcher(produce, workers, max_ahead)``: ``workers`` threads call ``produce(pos, k)``
(k: the thread's number) for positions 0, 1, 2, ... and keep at most ``max_ahead`` positions
handed out but not yet taken by ``get()``. ``produce`` raises ``Exhausted`` when position
``pos`` does not exist (a generator that ended). ``pause()`` lets the running calls finish
and stops the threads, keeping what they made; ``resume()`` starts them again from the next
position (PyDataset's ``on_epoch_end`` then never runs while ``__getitem__`` does)."""
import threading

END = object()  # get()'s answer past the last position


class Exhausted(Exception):
    """Raised by ``produce`` for a position past the end of the data."""


class Prefetcher:
    def __init__(self, produce, workers=1, max_ahead=10, length=None, on_start=None,
                 on_stop=None, name="shenjing-prefetch"):
        self._produce = produce
        self._workers = max(1, int(workers))
        self._max_ahead = max(1, int(max_ahead))
        self._end = length  # first position that does not exist (None: not known yet)
        self._on_start, self._on_stop = on_start, on_stop  # process workers' lifecycle
        self._name = name
        self._cv = threading.Condition()
        self._ready = {}  # position -> (kind, value): 'ok' batch, 'err' exception, 'end'
        self._next_task = 0  # next position handed to a thread
        self._next_out = 0  # next position get() returns
        self._stop = True
        self._threads = []

    @property
    def taken(self):
        """Positions returned by get() so far."""
        return self._next_out

    def resume(self):
        if self._threads:
            return
        if self._on_start is not None:
            self._on_start(self._workers)
        self._stop = False
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True,
                                          name=f"{self._name}-{k}")
                         for k in range(self._workers)]
        for t in self._threads:
            t.start()

    def pause(self):
        """Stops the threads once their running calls are done (their results are kept)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []
        if self._on_stop is not None:
            self._on_stop()

    close = pause

    def _run(self, k):
        cv = self._cv
        while True:
            with cv:
                while not self._stop and (
                        (self._end is not None and self._next_task >= self._end)
                        or self._next_task - self._next_out >= self._max_ahead):
                    cv.wait()
                if self._stop:
                    return
                pos = self._next_task
                self._next_task += 1
            try:
                item = ("ok", self._produce(pos, k))
            except Exhausted:
                item = ("end", None)
            except BaseException as e:  # reported to the consumer, in order
                item = ("err", e)
            with cv:
                self._ready[pos] = item
                if item[0] != "ok":  # nothing past an error or the end is asked for
                    last = pos + 1 if item[0] == "err" else pos
                    self._end = last if self._end is None else min(self._end, last)
                cv.notify_all()

    def get(self):
        """The batch at the next position, END past the last one; re-raises what ``produce``
        raised for that position."""
        cv = self._cv
        with cv:
            while self._next_out not in self._ready:
                if self._end is not None and self._next_out >= self._end:
                    return END
                if not self._threads:
                    raise RuntimeError("The data prefetcher is not running.")
                cv.wait()
            kind, value = self._ready.pop(self._next_out)
            if kind == "end":
                self._end = self._next_out
                return END
            self._next_out += 1
            cv.notify_all()
        if kind == "err":
            raise value
        return value

    def peek_end(self):
        """Whether get() would return END (waits for the next position to be made)."""
        cv = self._cv
        with cv:
            while self._next_out not in self._ready:
                if self._end is not None and self._next_out >= self._end:
                    return True
                if not self._threads:
                    return False
                cv.wait()
            return self._ready[self._next_out][0] == "end"


class Inline:
    """The Prefetcher's interface with no thread: ``produce`` runs in get() (PyDataset's
    ``workers=0``)."""

    def __init__(self, produce):
        self._produce = produce
        self._next_out = 0
        self._peeked = None

    @property
    def taken(self):
        return self._next_out

    def resume(self):
        pass

    def pause(self):
        pass

    close = pause

    def _fetch(self):
        if self._peeked is not None:
            item, self._peeked = self._peeked, None
            return item
        try:
            return self._produce(self._next_out, 0)
        except Exhausted:
            return END

    def get(self):
        item = self._fetch()
        if item is not END:
            self._next_out += 1
        return item

    def peek_end(self):
        if self._peeked is None:
            self._peeked = self._fetch()
        return self._peeked is END
