"""fit on Python iterables, the workers' side: an error in a batch (a bad shape, NaN, a wrong
structure, an exception in ``__getitem__``, a worker process that dies) is raised naming the
batch and leaves no thread or process behind; Keras's refusals; batches prepared in parallel
within the queue bound."""
import multiprocessing
import threading
import time
import warnings

import numpy as np
import pytest

import shenjing
from shenjing import _data_convert, callbacks
from test_streaming import BATCH, Batches, _batches, _data, _model, _weights


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- errors ---------------------------------------------------------------------------------
class Broken(Batches):
    def __init__(self, x, y, bad, what, **kwargs):
        super().__init__(x, y, **kwargs)
        self.bad, self.what = bad, what

    def __getitem__(self, i):
        bx, by = super().__getitem__(i)
        if i != self.bad:
            return bx, by
        if self.what == "raise":
            raise KeyError(f"no file for batch {i}")
        if self.what == "shape":
            return bx[:, :3], by
        if self.what == "nan":
            bx = bx.copy()
            bx[0, 0] = np.nan
            return bx, by
        return "not a batch"


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("shenjing-")]


@pytest.mark.parametrize("what,err,match", [
    ("shape", ValueError, r"PyDataset.__getitem__\(3\).*expected shape \(None, 5\)"),
    ("nan", ValueError, r"PyDataset.__getitem__\(3\).*NaN"),
    ("type", ValueError, r"PyDataset.__getitem__\(3\) must be a tuple"),
    ("raise", KeyError, "no file for batch 3"),
])
@pytest.mark.parametrize("kw", [dict(workers=0), dict(workers=3),
                                dict(workers=2, use_multiprocessing=True)],
                         ids=["inline", "threads", "processes"])
def test_a_bad_batch_raises_naming_it_and_the_workers_stop(what, err, match, kw):
    x, y = _data(64)
    m = _model()
    before = _weights(m)
    with pytest.raises(err, match=match):
        m.fit(Broken(x, y, 3, what, **kw), epochs=1, shuffle=False, verbose=0)
    assert not _prefetch_threads() and not multiprocessing.active_children()
    assert not np.array_equal(before[0], _weights(m)[0])  # batches 0-2 were trained


class Dies(Batches):
    def __getitem__(self, i):
        if i == 2:
            import os
            os._exit(3)
        return super().__getitem__(i)


def test_a_worker_process_that_dies_is_reported():
    x, y = _data(64)
    with pytest.raises(RuntimeError, match="worker process.*died.*exit code 3"):
        _model().fit(Dies(x, y, workers=2, use_multiprocessing=True), shuffle=False, verbose=0)
    assert not multiprocessing.active_children()


def test_steps_with_shenjing_dataloader():
    x, y = _data(40)
    m = _model()
    loader = shenjing.data.DataLoader((x, y), batch_size=BATCH)
    np.testing.assert_array_equal(m.predict(loader, steps=2, verbose=0),
                                  m.predict(x[:16], verbose=0))
    assert m.evaluate(loader, steps=2, verbose=0) == pytest.approx(
        m.evaluate(x[:16], y[:16], batch_size=BATCH, verbose=0), rel=1e-6)


def test_generator_errors_name_the_batch():
    x, y = _data(32)

    def gen():
        yield from _batches(x[:16], y[:16])
        yield x[:8, :4], y[:8]

    with pytest.raises(ValueError, match=r"Batch 2 of the generator.*shape"):
        _model().fit(gen(), verbose=0, shuffle=False)

    def no_targets():
        yield (x[:8],)

    with pytest.raises(ValueError, match="Batch 0 of the generator has no targets"):
        _model().fit(no_targets(), verbose=0, shuffle=False)
    with pytest.raises(ValueError, match="at least one batch"):
        _model().fit(iter([]), verbose=0, shuffle=False)
    assert not _prefetch_threads()


def test_keras_refusals():
    x, y = _data(16)
    m = _model()
    with pytest.raises(ValueError, match="`y` should not be passed"):
        m.fit(_batches(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="class_weight.*not supported for Python generator"):
        m.fit(_batches(x, y), class_weight={0: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(Batches(x, y), validation_split=0.2, verbose=0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m.fit(_batches(x, y), verbose=0)
    assert [str(e.message)[:30] for e in w] == [  # as Keras
        "`shuffle=True` was passed, but", "Your input ran out of data; in"]
    with pytest.raises(ValueError, match="cannot specify `class_weight` and `sample_weight`"):
        m.fit(Batches3(x, y), class_weight={0: 2.0}, verbose=0)


class Batches3(Batches):
    def __getitem__(self, i):
        bx, by = super().__getitem__(i)
        return bx, by, np.ones(len(bx), "f")


def test_iterables_are_refused_under_a_multi_process_distribution(monkeypatch):
    from shenjing import _data_parallel
    monkeypatch.setattr(_data_parallel, "active", lambda: True)
    x, y = _data(16)
    with pytest.raises(ValueError, match="DataParallel.*Python iterable"):
        _model().fit(_batches(x, y), verbose=0)


def test_class_weight_to_sample_weights_as_keras():
    cw = {0: 0.5, 2: 3.0}
    f = _data_convert.class_weight_to_sample_weights
    np.testing.assert_array_equal(f(np.array([0, 1, 2, 2]), cw), [0.5, 1.0, 3.0, 3.0])
    np.testing.assert_array_equal(f(np.array([[2], [0]]), cw), [3.0, 0.5])
    np.testing.assert_array_equal(f(np.eye(3, dtype="f")[[2, 1]], cw), [3.0, 1.0])


# --- the point: batches prepared while the core trains -------------------------------------
class Slow(Batches):
    def __getitem__(self, i):
        time.sleep(0.06)  # a slow disk
        return super().__getitem__(i)


def test_workers_prepare_batches_in_parallel_within_the_queue_bound(quiet):
    x, y = _data(96)  # 12 batches of 60 ms each: 0.72 s one after the other
    m = _model()
    m.fit(Slow(x, y, workers=0), verbose=0)
    t = time.perf_counter()
    m.fit(Slow(x, y, workers=6, max_queue_size=6), verbose=0)
    assert time.perf_counter() - t < 0.45

    class Lead(callbacks.Callback):
        lead = 0

        def on_train_batch_begin(self, batch, logs=None):
            Lead.lead = max(Lead.lead, max(ds.asked) - batch)

    ds = Slow(x, y, workers=3, max_queue_size=2)
    m.fit(ds, verbose=0, shuffle=False, callbacks=[Lead()])
    assert Lead.lead <= 2  # at most max_queue_size batches asked for ahead
