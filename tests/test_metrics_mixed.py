"""Mean, weighted and state metrics of several outputs in one model: each logged value sits
where the core put its sums (mean metrics, then weighted sums, then state vectors)."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import layers, metrics


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,), name="x")
    h = layers.Dense(8, activation="relu")(inp)
    a = layers.Dense(1, activation="sigmoid", name="a")(h)
    b = layers.Dense(3, activation="softmax", name="b")(h)
    return keras.Model(inp, [a, b])


def test_mean_weighted_and_state_metrics_together():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5)).astype(np.float32)
    ya = (x[:, 0] > 0).astype(np.float32)[:, None]
    yb = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 50)]
    w = rng.uniform(0.2, 2, 50).astype(np.float32)
    model = _model()
    model.compile(optimizer="sgd", loss=["binary_crossentropy", "categorical_crossentropy"],
                  metrics=[["accuracy", metrics.AUC(name="auc"), "mae"],
                           [metrics.TopKCategoricalAccuracy(k=2, name="top2"), "accuracy"]],
                  weighted_metrics=[["accuracy"], ["accuracy"]])
    logs = model.evaluate(x, [ya, yb], sample_weight=w, batch_size=7, verbose=0,
                          return_dict=True)
    pa, pb = model.predict(x, verbose=0)
    acc_a = ((pa > 0.5) == ya).astype(np.float64)[:, 0]
    acc_b = (pb.argmax(-1) == yb.argmax(-1)).astype(np.float64)
    top2 = (np.argsort(-pb, -1)[:, :2] == yb.argmax(-1)[:, None]).any(-1)
    assert logs["a_accuracy"] == pytest.approx(acc_a.mean())
    assert logs["a_weighted_accuracy"] == pytest.approx((acc_a * w).sum() / w.sum(), rel=1e-5)
    assert logs["b_weighted_accuracy"] == pytest.approx((acc_b * w).sum() / w.sum(), rel=1e-5)
    assert logs["a_mae"] == pytest.approx(np.abs(pa - ya).mean(), rel=1e-5)
    assert logs["b_top2"] == pytest.approx(top2.mean())
    auc = metrics.AUC()
    auc.update_state(ya, pa)
    assert logs["a_auc"] == pytest.approx(float(auc.result()), rel=1e-6)
    hist = model.fit(x, [ya, yb], sample_weight=w, epochs=2, batch_size=7, verbose=0)
    assert {"a_auc", "b_top2", "a_weighted_accuracy", "b_weighted_accuracy"} <= set(hist.history)


def test_outputs_without_a_loss_ignore_sample_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    ya = (x[:, :1] > 0).astype(np.float32)
    w = rng.uniform(0.2, 2, 30).astype(np.float32)
    model = _model()
    model.compile(optimizer="sgd", loss=["binary_crossentropy", None])
    one = model.evaluate(x, [ya, None], sample_weight=w, verbose=0)
    assert one == pytest.approx(model.evaluate(x, [ya, None], sample_weight=[w, None],
                                               verbose=0))
    assert one == pytest.approx(model.evaluate(x, {"a": ya}, sample_weight={"a": w},
                                               verbose=0))
    model.fit(x, {"a": ya}, sample_weight=w, epochs=1, verbose=0)


def test_weighted_metrics_the_core_cannot_weigh_are_refused():
    model = _model()
    with pytest.raises(ValueError, match="weighted_metrics: metric 'log_cosh_error' is not one"):
        model.compile(optimizer="sgd", loss=["mse", "mse"],
                      weighted_metrics=[["log_cosh_error"], []])


def test_a_subclass_of_a_state_metric_is_counted_by_the_core():
    class MyPrecision(metrics.Precision):
        def result(self):
            return super().result() * 1.0

    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    ya = (x[:, :1] > 0).astype(np.float32)
    model = _model()
    model.compile(optimizer="sgd", loss=["binary_crossentropy", None],
                  metrics=[[MyPrecision(name="p"), metrics.Precision(name="q")], []])
    logs = model.evaluate(x, [ya, None], verbose=0, return_dict=True)
    assert logs["a_p"] == logs["a_q"]


def test_metrics_of_an_output_without_a_loss_read_its_targets():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    ya = (x[:, :1] > 0).astype(np.float32)
    yb = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 30)]
    model = _model()
    model.compile(optimizer="sgd", loss=["binary_crossentropy", None],
                  metrics=[[], ["categorical_accuracy"]])
    logs = model.evaluate(x, [ya, yb], verbose=0, return_dict=True)
    pb = model.predict(x, verbose=0)[1]
    assert logs["b_categorical_accuracy"] == pytest.approx(
        float((pb.argmax(-1) == yb.argmax(-1)).mean()))
    with pytest.raises(ValueError, match="missing"):  # its metrics need its targets
        model.evaluate(x, {"a": ya}, verbose=0)


def test_weighted_state_metrics_weigh_each_sample():
    """weighted_metrics=[AUC(), Precision()]: each sample counts with its weight (Keras's
    sample_weight in update_state), beside the same metrics unweighted."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    ya = (x[:, :1] + rng.normal(size=(60, 1)) > 0).astype(np.float32)
    yb = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 60)]
    w = rng.uniform(0, 2, 60).astype(np.float32)
    model = _model()
    model.compile(optimizer="sgd", loss=["binary_crossentropy", "categorical_crossentropy"],
                  metrics=[[metrics.AUC(name="auc")], []],
                  weighted_metrics=[[metrics.AUC(name="auc"), metrics.Precision(name="p"),
                                     "accuracy"], ["accuracy"]])
    logs = model.evaluate(x, [ya, yb], sample_weight=w, batch_size=16, verbose=0,
                          return_dict=True)
    pa = model.predict(x, verbose=0)[0]
    for name, metric in (("a_auc", metrics.AUC()), ("a_weighted_auc", metrics.AUC()),
                         ("a_p", metrics.Precision())):
        metric.update_state(ya, pa, sample_weight=None if name == "a_auc" else w)
        assert logs[name] == pytest.approx(float(metric.result()), rel=1e-6), name
    assert logs["a_weighted_auc"] != pytest.approx(logs["a_auc"])
    acc = ((pa > 0.5) == ya)[:, 0]
    assert logs["a_accuracy"] == pytest.approx((acc * w).sum() / w.sum(), rel=1e-5)
