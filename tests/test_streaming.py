"""fit/evaluate/predict on Python iterables as Keras 3 takes them: generators, PyDataset (worker
threads and processes), torch DataLoader; the same results as the array path for the same
batches; Keras's epoch semantics; errors that name the batch; workers that stop."""
import warnings

import numpy as np
import pytest

import shenjing
from shenjing import callbacks, layers
from shenjing._progbar import Progbar

BATCH = 8


def _data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.normal(size=(n, 2)).astype(
        np.float32)


def _model(metrics=("mae",), optimizer="adam"):
    shenjing.utils.set_random_seed(0)
    m = shenjing.Sequential([layers.Input((5,)), layers.Dense(7, activation="tanh"),
                             layers.Dense(2)])
    m.compile(optimizer=optimizer, loss="mse", metrics=list(metrics))
    return m


def _batches(x, y=None, size=BATCH):
    for s in range(0, len(x), size):
        yield (x[s:s + size],) if y is None else (x[s:s + size], y[s:s + size])


class Batches(shenjing.utils.PyDataset):
    """Batch i of arrays x, y; records the indices asked for and the epoch hooks."""

    def __init__(self, x, y, size=BATCH, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.size = x, y, size
        self.asked, self.hooks = [], []

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        self.asked.append(i)
        s = slice(i * self.size, (i + 1) * self.size)
        return self.x[s], self.y[s]

    def on_epoch_begin(self):
        self.hooks.append("begin")

    def on_epoch_end(self):
        self.hooks.append("end")


def _weights(m):
    return [w.copy() for w in m.get_weights()]


def _same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- the same results as the array path ---------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda x, y: _batches(x, y),
    lambda x, y: Batches(x, y, workers=0),
    lambda x, y: Batches(x, y, workers=1),
    lambda x, y: Batches(x, y, workers=3, max_queue_size=2),
    lambda x, y: Batches(x, y, workers=2, use_multiprocessing=True),
], ids=["generator", "pydataset-0", "pydataset-1", "pydataset-3", "pydataset-processes"])
def test_one_epoch_equals_the_array_path_bit_for_bit(make, quiet):
    x, y = _data(44)  # a last batch of 4
    ref = _model()
    h_ref = ref.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    m = _model()
    h = m.fit(make(x, y), epochs=1, shuffle=False, verbose=0)
    assert _same_weights(_weights(m), _weights(ref))
    assert h.history == h_ref.history


def test_pydataset_epochs_equal_the_array_path_and_hooks_run_once_per_epoch():
    x, y = _data(40)
    ref = _model()
    h_ref = ref.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)
    ds = Batches(x, y, workers=2)
    m = _model()
    h = m.fit(ds, epochs=3, shuffle=False, verbose=0)
    assert _same_weights(_weights(m), _weights(ref)) and h.history == h_ref.history
    assert ds.hooks == ["begin", "end"] * 3
    assert ds.asked == list(range(5)) * 3  # workers=2, yet asked in order


def test_shuffle_permutes_the_batch_order_each_epoch_with_the_seed():
    x, y = _data(64)
    orders = []
    for _ in range(2):
        ds = Batches(x, y, workers=0)
        _model().fit(ds, epochs=3, shuffle=True, verbose=0)
        orders.append(ds.asked)
    assert orders[0] == orders[1]  # same seed, same order
    epochs = [orders[0][k * 8:(k + 1) * 8] for k in range(3)]
    assert all(sorted(e) == list(range(8)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1 and epochs[0] != list(range(8))


# --- Keras's epoch semantics ----------------------------------------------------------------
def test_steps_per_epoch_continues_an_endless_generator_without_restarting_it(quiet):
    x, y = _data(96)
    taken = []

    def endless():
        i = 0
        while True:
            taken.append(i)
            s = slice((i % 12) * BATCH, (i % 12 + 1) * BATCH)
            yield x[s], y[s]
            i += 1

    m = _model()
    h = m.fit(endless(), epochs=3, steps_per_epoch=4, verbose=0)
    ref = _model()
    ref.fit(x, y, batch_size=BATCH, epochs=3, steps_per_epoch=4, shuffle=False, verbose=0)
    assert _same_weights(_weights(m), _weights(ref))
    # read no further than the 12 batches fit uses: the rest is left for the next call
    assert len(h.history["loss"]) == 3 and taken == list(range(12))


def test_a_generator_that_runs_out_warns_and_is_not_restarted():
    x, y = _data(40)
    m = _model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(_batches(x, y), epochs=3, steps_per_epoch=3, shuffle=False, verbose=0)
    assert len(h.history["loss"]) == 2  # 3 batches, then 2, then nothing left: stopped


def test_steps_per_epoch_over_a_pydataset_continues_the_pass_and_warns_at_its_end():
    x, y = _data(40)
    ds = Batches(x, y, workers=1)
    m, ref = _model(), _model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(ds, epochs=3, steps_per_epoch=3, shuffle=False, verbose=0)
    with pytest.warns(UserWarning, match="ran out of data"):
        h_ref = ref.fit(x, y, batch_size=BATCH, epochs=3, steps_per_epoch=3, shuffle=False,
                        verbose=0)
    # batches 0-2, then 3-4 (the pass ends early), then 0-2 of a new pass; the workers read
    # ahead within a pass only
    assert h.history == h_ref.history and _same_weights(_weights(m), _weights(ref))
    assert ds.asked[:8] == [0, 1, 2, 3, 4, 0, 1, 2] and max(ds.asked[8:], default=0) < 5
    assert ds.hooks == ["begin", "end"] * 3


class Endless(shenjing.utils.PyDataset):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.asked = []

    @property
    def num_batches(self):
        return None

    def __getitem__(self, i):
        self.asked.append(i)
        x, y = _data(BATCH, seed=i)
        return x, y


def test_an_infinite_pydataset_needs_steps_and_continues_its_indices():
    with pytest.raises(ValueError, match="infinite.*steps_per_epoch"):
        _model().fit(Endless(), epochs=1, verbose=0, shuffle=False)
    ds = Endless(workers=0)
    _model().fit(ds, epochs=2, steps_per_epoch=3, verbose=0, shuffle=False)
    assert ds.asked == list(range(6))


def test_unknown_length_shows_unknown_and_the_count_after_the_first_epoch(capsys, quiet):
    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    out = Tty()
    Progbar(None, stream=out).update(3)
    assert "      3/Unknown" in out.text
    x, y = _data(40)
    _model().fit(_batches(x, y), epochs=1, verbose=1)
    assert "5/5" in capsys.readouterr().out


# --- validation, evaluate, predict ----------------------------------------------------------
def test_validation_data_as_pydataset_generator_and_validation_steps(quiet):
    x, y = _data(40)
    xv, yv = _data(24, seed=3)
    m = _model()
    vds = Batches(xv, yv)
    h = m.fit(Batches(x, y), validation_data=vds, epochs=2, verbose=0)
    assert vds.hooks == ["begin", "end"] * 2
    assert h.history["val_loss"][-1] == pytest.approx(
        m.evaluate(xv, yv, batch_size=BATCH, verbose=0)[0], rel=1e-6)
    m = _model()
    h = m.fit(x, y, validation_data=_batches(xv, yv), epochs=1, verbose=0)  # arrays + generator
    assert h.history["val_loss"][0] == pytest.approx(
        m.evaluate(xv, yv, batch_size=BATCH, verbose=0)[0], rel=1e-6)
    with pytest.raises(ValueError, match="validation_steps"):
        _model().fit(x, y, validation_data=_batches(xv, yv), epochs=2, verbose=0)

    def endless():
        while True:
            yield from _batches(xv, yv)

    m = _model()
    h = m.fit(Batches(x, y), validation_data=endless(), validation_steps=3, epochs=2, verbose=0)
    assert len(h.history["val_loss"]) == 2


def test_evaluate_and_predict_on_iterables_equal_the_array_path(quiet):
    x, y = _data(44)
    m = _model()
    m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    ev = m.evaluate(x, y, batch_size=BATCH, verbose=0)
    pr = m.predict(x, batch_size=BATCH, verbose=0)
    for data in (_batches(x, y), Batches(x, y, workers=2)):
        assert m.evaluate(data, verbose=0) == pytest.approx(ev, rel=1e-6)
    for data in (_batches(x), _batches(x, y), Batches(x, y, workers=2),
                 Batches(x, y, workers=2, use_multiprocessing=True)):
        np.testing.assert_array_equal(m.predict(data, verbose=0), pr)
    # steps: the first batches only, as Keras, for iterables and arrays alike
    np.testing.assert_array_equal(m.predict(_batches(x), steps=2, verbose=0), pr[:16])
    np.testing.assert_array_equal(m.predict(x, batch_size=BATCH, steps=2, verbose=0), pr[:16])
    assert m.evaluate(x, y, batch_size=BATCH, steps=2, verbose=0) == pytest.approx(
        m.evaluate(x[:16], y[:16], batch_size=BATCH, verbose=0), rel=1e-6)


def test_multi_input_output_dicts(quiet):
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(32, 3)).astype("f"), rng.normal(size=(32, 4)).astype("f")
    ya, yb = rng.normal(size=(32, 1)).astype("f"), rng.integers(0, 3, 32)

    def build():
        shenjing.utils.set_random_seed(0)
        a, b = layers.Input((3,), name="a"), layers.Input((4,), name="b")
        h = layers.Concatenate()([layers.Dense(5)(a), layers.Dense(5)(b)])
        m = shenjing.Model({"a": a, "b": b}, {"reg": layers.Dense(1, name="reg")(h),
                                              "cls": layers.Dense(3, name="cls")(h)})
        m.compile("sgd", {"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  metrics={"cls": "accuracy"})
        return m

    def gen():
        for s in range(0, 32, BATCH):
            sl = slice(s, s + BATCH)
            yield {"a": xa[sl], "b": xb[sl]}, {"reg": ya[sl], "cls": yb[sl]}

    ref = build()
    h_ref = ref.fit({"a": xa, "b": xb}, {"reg": ya, "cls": yb}, batch_size=BATCH,
                    shuffle=False, verbose=0)
    m = build()
    h = m.fit(gen(), verbose=0)
    assert _same_weights(_weights(m), _weights(ref)) and h.history == h_ref.history
    out = m.predict(gen(), verbose=0)
    assert set(out) == {"reg", "cls"} and out["cls"].shape == (32, 3)


def test_torch_dataloader_fit_validation_predict():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset
    x, y = _data(44)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                        batch_size=BATCH)
    ref = _model()
    h_ref = ref.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                    validation_data=(x, y))
    m = _model()
    h = m.fit(loader, validation_data=loader, epochs=2, shuffle=False, verbose=0)
    assert _same_weights(_weights(m), _weights(ref))
    assert h.history["loss"] == h_ref.history["loss"]
    assert h.history["val_loss"] == pytest.approx(h_ref.history["val_loss"], rel=1e-6)
    np.testing.assert_array_equal(m.predict(loader, verbose=0),
                                  m.predict(x, batch_size=BATCH, verbose=0))
    with pytest.warns(UserWarning, match="shuffle=True.*torch DataLoader"):
        m.fit(loader, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        m.fit(loader, class_weight={0: 1.0}, verbose=0)


def test_a_sequential_without_input_shape_builds_from_the_first_batch(quiet):
    x, y = _data(16)
    shenjing.utils.set_random_seed(0)
    m = shenjing.Sequential([layers.Dense(2)])
    m.compile("sgd", "mse")
    m.fit(_batches(x, y), verbose=0)
    assert m.predict(_batches(x), verbose=0).shape == (16, 2)


# --- callbacks ------------------------------------------------------------------------------
class Log(callbacks.Callback):
    def __init__(self, stop_at=None):
        super().__init__()
        self.calls, self.stop_at = [], stop_at

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("train_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("train_end", batch, round(logs["loss"], 6)))
        if batch == self.stop_at:
            self.model.stop_training = True

    def on_test_batch_end(self, batch, logs=None):
        self.calls.append(("test_end", batch))


def test_batch_callbacks_stop_training_and_early_stopping(quiet):
    x, y = _data(40)
    log_ref, log = Log(), Log()
    _model().fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                 validation_data=(x[:16], y[:16]), callbacks=[log_ref])

    def endless():
        while True:
            yield from _batches(x[:16], y[:16])

    _model().fit(Batches(x, y), epochs=2, shuffle=False, verbose=0,
                 validation_data=endless(), validation_steps=2, callbacks=[log])
    assert log.calls == log_ref.calls
    stop = Log(stop_at=2)
    h = _model().fit(_batches(x, y), epochs=3, verbose=0, callbacks=[stop])
    assert len(h.history["loss"]) == 1 and stop.calls[-1][:2] == ("train_end", 2)
    es = callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    h = _model().fit(Batches(x, y), epochs=5, verbose=0, callbacks=[es])
    assert len(h.history["loss"]) == 2
