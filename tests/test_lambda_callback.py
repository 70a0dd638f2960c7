"""LambdaCallback (Keras 3): the given functions run at their hooks, in fit, evaluate and
predict; unknown hooks and non-functions are refused."""
import numpy as np
import pytest

import shenjing
from shenjing import callbacks, layers


def test_hooks_run_with_their_arguments():
    seen = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(("train_begin", dict(logs))),
        on_epoch_end=lambda epoch, logs: seen.append(("epoch_end", epoch, round(logs["loss"], 6))),
        on_train_batch_end=lambda batch, logs: seen.append(("batch_end", batch)),
        on_test_end=lambda logs: seen.append(("test_end", sorted(logs))),
        on_predict_batch_begin=lambda batch, logs: seen.append(("predict_batch", batch)))
    model = shenjing.Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    hist = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[cb])
    assert seen[0] == ("train_begin", {})
    assert [s for s in seen if s[0] == "batch_end"] == [("batch_end", b) for b in (0, 1, 0, 1)]
    assert [s[1:] for s in seen if s[0] == "epoch_end"] == \
        [(e, round(v, 6)) for e, v in enumerate(hist.history["loss"])]
    model.evaluate(x, y, verbose=0, callbacks=[cb])
    assert seen[-1] == ("test_end", ["loss"])
    model.predict(x, batch_size=4, verbose=0, callbacks=[cb])
    assert seen[-2:] == [("predict_batch", 0), ("predict_batch", 1)]


def test_bad_hooks():
    with pytest.raises(TypeError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_finish=lambda e, l: None)
    with pytest.raises(TypeError, match="must be a function"):
        callbacks.LambdaCallback(on_epoch_end=3)
