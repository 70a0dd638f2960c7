"""Callbacks as Keras 3: every hook fires in Keras's order with Keras's logs, in fit, evaluate
and predict; per-batch hooks cost nothing unless a callback overrides them; CallbackList."""
import numpy as np
import pytest

import shenjing
from shenjing import callbacks, layers


# --- hook order, logs and cost ----------------------------------------------------------------
class Recorder(callbacks.Callback):
    """Records every hook call with a copy of its logs."""

    def __init__(self):
        super().__init__()
        self.calls = []


for _hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
              "on_predict_begin", "on_predict_end"):
    setattr(Recorder, _hook, lambda self, logs=None, _h=_hook:
            self.calls.append((_h, None, dict(logs))))
for _hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
              "on_predict_batch_end"):
    setattr(Recorder, _hook, lambda self, i, logs=None, _h=_hook:
            self.calls.append((_h, i, dict(logs))))


def _regressor():
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def _xy(n=10):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 2)).astype(
        np.float32)


def test_fit_hook_order_and_logs_with_validation():
    x, y = _xy(10)
    model = _regressor()
    rec = Recorder()
    h = model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x[:6], y[:6]),
                  callbacks=[rec])
    names = [(c[0], c[1]) for c in rec.calls]
    epoch = lambda e: ([("on_epoch_begin", e)]
                       + [p for b in range(3) for p in (("on_train_batch_begin", b),
                                                        ("on_train_batch_end", b))]
                       + [("on_test_begin", None)]
                       + [p for b in range(2) for p in (("on_test_batch_begin", b),
                                                        ("on_test_batch_end", b))]
                       + [("on_test_end", None), ("on_epoch_end", e)])
    assert names == [("on_train_begin", None)] + epoch(0) + epoch(1) + [("on_train_end", None)]
    logs = {(c[0], c[1]): c[2] for c in rec.calls}
    assert logs[("on_train_begin", None)] == {} and logs[("on_epoch_begin", 1)] == {}
    assert logs[("on_train_batch_begin", 2)] == {} and logs[("on_test_batch_begin", 1)] == {}
    assert list(logs[("on_train_batch_end", 0)]) == ["loss", "mae"]
    # The last batch's running means are the epoch's values; the epoch logs are sorted.
    assert list(logs[("on_epoch_end", 1)]) == ["loss", "mae", "val_loss", "val_mae"]
    assert logs[("on_train_batch_end", 2)]["loss"] == h.history["loss"][1]
    assert logs[("on_test_end", None)]["loss"] == h.history["val_loss"][1]
    assert logs[("on_train_end", None)] == logs[("on_epoch_end", 1)]
    assert all(isinstance(v, float) for v in logs[("on_train_batch_end", 0)].values())
    assert rec.params == {"verbose": 0, "epochs": 2, "steps": 3} and rec.model is model


def test_running_means_match_per_batch_evaluation():
    x, y = _xy(12)
    model = _regressor()
    rec = Recorder()
    result = model.evaluate(x, y, batch_size=5, verbose=0, callbacks=[rec])
    ends = [c[2] for c in rec.calls if c[0] == "on_test_batch_end"]
    first = model.evaluate(x[:5], y[:5], batch_size=5, verbose=0)
    two = model.evaluate(x[:10], y[:10], batch_size=10, verbose=0)
    assert ends[0]["loss"] == pytest.approx(first[0], rel=1e-5)
    assert ends[1]["mae"] == pytest.approx(two[1], rel=1e-5)
    assert ends[2] == {"loss": pytest.approx(result[0]), "mae": pytest.approx(result[1])}
    assert [c[0] for c in rec.calls][0] == "on_test_begin"
    assert rec.calls[-1] == ("on_test_end", None, ends[2])
    assert rec.params == {"verbose": 0, "epochs": 1, "steps": 3}


def test_predict_hooks_get_the_outputs():
    x, _ = _xy(10)
    model = _regressor()
    rec = Recorder()
    out = model.predict(x, batch_size=4, verbose=0, callbacks=[rec])
    assert [c[0] for c in rec.calls] == (["on_predict_begin"] + [
        h for _ in range(3) for h in ("on_predict_batch_begin", "on_predict_batch_end")]
        + ["on_predict_end"])
    got = [c[2]["outputs"] for c in rec.calls if c[0] == "on_predict_batch_end"]
    np.testing.assert_array_equal(np.concatenate(got), out)
    assert [len(g) for g in got] == [4, 4, 2]
    assert rec.calls[0][2] == {} and rec.calls[-1][2] == {}


def test_logs_argument_is_always_a_dict_even_without_default():
    """``def on_train_begin(self, logs):`` (no default) works as in Keras."""
    seen = []

    class NoDefaults(callbacks.Callback):
        def on_train_begin(self, logs):
            seen.append(("train_begin", logs))

        def on_epoch_begin(self, epoch, logs):
            seen.append(("epoch_begin", logs))

        def on_test_begin(self, logs):
            seen.append(("test_begin", logs))

        def on_predict_begin(self, logs):
            seen.append(("predict_begin", logs))

        def on_predict_end(self, logs):
            seen.append(("predict_end", logs))

    x, y = _xy(8)
    model = _regressor()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[NoDefaults()])
    model.evaluate(x, y, verbose=0, callbacks=[NoDefaults()])
    model.predict(x, verbose=0, callbacks=[NoDefaults()])
    assert seen == [("train_begin", {}), ("epoch_begin", {}), ("test_begin", {}),
                    ("predict_begin", {}), ("predict_end", {})]


def test_on_batch_aliases_are_called_in_fit_only():
    calls = []

    class Alias(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch, dict(logs)))

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch, sorted(logs)))

    x, y = _xy(8)
    model = _regressor()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Alias()])
    model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[Alias()])
    model.predict(x, batch_size=4, verbose=0, callbacks=[Alias()])
    assert calls == [("begin", 0, {}), ("end", 0, ["loss", "mae"]),
                     ("begin", 1, {}), ("end", 1, ["loss", "mae"])]


def test_per_batch_hooks_not_overridden_are_never_called(monkeypatch):
    """The loops call a per-batch hook only on callbacks that override it: the base versions
    (here replaced by counters that still look like the base no-ops) are never called."""
    counts = {}
    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                 "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
                 "on_batch_begin", "on_batch_end"):
        def counter(self, batch, logs=None, _h=hook):
            counts[_h] = counts.get(_h, 0) + 1
        counter._is_default = True
        monkeypatch.setattr(callbacks.Callback, hook, counter)

    class EpochOnly(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            counts["epoch_end"] = counts.get("epoch_end", 0) + 1

    x, y = _xy(40)
    model = _regressor()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_split=0.5,
              callbacks=[EpochOnly()])
    model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[EpochOnly()])
    model.predict(x, batch_size=4, verbose=0, callbacks=[EpochOnly()])
    assert counts == {"epoch_end": 2}


def test_stop_training_in_a_batch_hook_stops_within_the_epoch():
    class StopAt(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    x, y = _xy(40)
    model = _regressor()
    rec = Recorder()
    h = model.fit(x, y, batch_size=4, epochs=5, verbose=0, callbacks=[StopAt(), rec])
    assert len(h.history["loss"]) == 1
    assert [c[1] for c in rec.calls if c[0] == "on_train_batch_end"] == [0, 1]


def test_callback_list_as_keras():
    x, y = _xy(8)
    model = _regressor()
    rec = Recorder()
    cbl = callbacks.CallbackList([rec], add_history=True, add_progbar=False, model=model,
                                 verbose=0, epochs=1, steps=2)
    assert isinstance(cbl, callbacks.Callback)
    assert isinstance(cbl.callbacks[-1], callbacks.History)
    assert model.history is cbl.callbacks[-1] and rec.model is model
    assert rec.params == {"verbose": 0, "epochs": 1, "steps": 2}
    cbl.on_train_begin()
    cbl.on_epoch_end(0, {"b": np.float32(2), "a": 1})
    assert rec.calls == [("on_train_begin", None, {}), ("on_epoch_end", 0, {"a": 1.0, "b": 2.0})]
    assert list(rec.calls[1][2]) == ["a", "b"]
    # fit uses a CallbackList as given: no second History, no progress bar.
    rec.calls.clear()
    h = model.fit(x, y, batch_size=4, epochs=1, verbose=1, callbacks=cbl)
    assert h is cbl.callbacks[-1] and len(h.history["loss"]) == 1
    assert [c[0] for c in rec.calls][:2] == ["on_train_begin", "on_epoch_begin"]


def test_bad_callbacks_raise_type_error_and_change_nothing():
    model = shenjing.Sequential([layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = _xy(8)
    for bad in (object(), [object()], "history", [callbacks.Callback, 3]):
        with pytest.raises(TypeError, match="callbacks"):
            model.fit(x, y, verbose=0, callbacks=bad)
        assert not model.built
    model.build((None, 3))
    for call in (lambda: model.evaluate(x, y, verbose=0, callbacks=[1]),
                 lambda: model.predict(x, verbose=0, callbacks=1)):
        with pytest.raises(TypeError, match="callbacks"):
            call()


def test_progress_bar_is_silent_during_validation(capsys):
    x, y = _xy(40)
    model = _regressor()
    model.fit(x, y, batch_size=4, epochs=2, verbose=2, validation_split=0.25)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2" and len(out) == 4
    assert out[1].startswith("8/8 - ") and "val_loss" in out[1]
    model.evaluate(x, y, batch_size=8, verbose=2)
    model.predict(x, batch_size=8, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("5/5 - ") and "loss" in out[0]
    assert out[1].startswith("5/5 - ") and "loss" not in out[1]
