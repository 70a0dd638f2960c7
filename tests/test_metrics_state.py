"""R2Score, F1Score/FBetaScore, RootMeanSquaredError and the top-k accuracies
(shenjing/_metrics_state.py): NumPy versions of Keras 3's formulas, numbers from Keras 3.15,
scikit-learn where installed, accumulation in fit/evaluate, configs and saved models."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import metrics


@pytest.fixture
def data():
    # The arrays of tests/test_metrics_confusion.py's Keras numbers, then regression data.
    rng = np.random.default_rng(0)
    yt = (rng.random((50, 3)) > 0.5).astype("float32")
    yp = rng.random((50, 3)).astype("float32")
    sw = rng.random(50).astype("float32")
    y = rng.random((50, 3)).astype("float32")
    p = y + 0.3 * rng.random((50, 3)).astype("float32")
    return yt, yp, sw, y, p


def test_keras_numbers(data):
    # From Keras 3.15 (KERAS_BACKEND=torch) on the same arrays, e.g.
    #   metrics.R2Score()(y, p), metrics.F1Score()(yt, yp), ...
    yt, yp, sw, y, p = data
    assert metrics.R2Score()(y, p) == pytest.approx(0.6123672723770142, abs=1e-6)
    np.testing.assert_allclose(metrics.R2Score(class_aggregation=None)(y, p),
                               [0.64284587, 0.6379106, 0.55634534], atol=1e-6)
    assert metrics.R2Score(num_regressors=2, class_aggregation="variance_weighted_average")(
        y, p, sample_weight=sw) == pytest.approx(0.6152579188346863, abs=1e-6)
    assert metrics.RootMeanSquaredError()(y, p) == pytest.approx(0.16735784709453583, abs=1e-6)
    assert metrics.RootMeanSquaredError()(y, p, sample_weight=sw) == pytest.approx(
        0.16726641356945038, abs=1e-6)
    np.testing.assert_allclose(metrics.F1Score()(yt, yp), [0.47619042, 0.51063824, 0.40909088],
                               atol=1e-6)
    assert metrics.F1Score(average="micro", threshold=0.5)(yt, yp) == pytest.approx(
        0.6060605645179749, abs=1e-6)
    assert metrics.FBetaScore(average="weighted", beta=2.0, threshold=0.4)(
        yt, yp, sample_weight=sw) == pytest.approx(0.6557080745697021, abs=1e-6)
    assert metrics.F1Score(average="macro")(yt, yp) == pytest.approx(0.46530652046203613,
                                                                     abs=1e-6)


def test_sklearn(data):
    sk = pytest.importorskip("sklearn.metrics")
    yt, yp, sw, y, p = data
    assert metrics.R2Score()(y, p) == pytest.approx(sk.r2_score(y, p), abs=1e-6)
    assert metrics.R2Score(class_aggregation="variance_weighted_average")(
        y, p, sample_weight=sw) == pytest.approx(
            sk.r2_score(y, p, sample_weight=sw, multioutput="variance_weighted"), abs=1e-5)
    pred = (yp > 0.5).astype(int)
    for avg in ("micro", "macro", "weighted", None):
        np.testing.assert_allclose(
            metrics.F1Score(average=avg, threshold=0.5)(yt, yp, sample_weight=sw),
            sk.f1_score(yt, pred, average=avg, sample_weight=sw), atol=1e-5)
    labels = np.argmax(yp + yt, axis=1)  # some hits, some misses
    for k in (1, 2):
        assert metrics.SparseTopKCategoricalAccuracy(k=k)(labels, yp) == pytest.approx(
            sk.top_k_accuracy_score(labels, yp, k=k, labels=[0, 1, 2]))


def test_top_k_ties_and_positions():
    # Keras's in_top_k: a target tied with the k-th largest prediction is a hit.
    yt = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], "float32")
    yp = np.array([[0.3, 0.3, 0.3, 0.1], [0.2, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4]], "float32")
    assert metrics.TopKCategoricalAccuracy(k=1)(yt, yp) == pytest.approx(2 / 3)
    assert metrics.SparseTopKCategoricalAccuracy(k=1)(np.argmax(yt, 1), yp) == \
        pytest.approx(2 / 3)
    assert metrics.TopKCategoricalAccuracy(k=4)(yt, yp) == 1.0
    assert metrics.TopKCategoricalAccuracy()(yt, yp) == 1.0  # k=5 > classes: all hits
    # (batch, T, C): the mean over each sample's positions, then over samples (Keras's Mean).
    rng = np.random.default_rng(2)
    p3 = rng.random((6, 4, 5)).astype("float32")
    lab = rng.integers(0, 5, size=(6, 4))
    hits = np.sum(p3 > np.take_along_axis(p3, lab[..., None], -1), -1) < 2
    w = rng.random(6).astype("float32")
    ref = np.sum(hits.mean(1) * w) / np.sum(w)
    assert metrics.SparseTopKCategoricalAccuracy(k=2)(lab, p3, sample_weight=w) == \
        pytest.approx(ref, rel=1e-6)
    # Per-position weights (Keras's reduce_to_samplewise_values): each sample's mean of
    # hit * weight over the sum of its mean weights.
    wt = rng.random((6, 4)).astype("float32")
    ref = np.sum((hits * wt).mean(1)) / np.sum(wt.mean(1))
    assert metrics.SparseTopKCategoricalAccuracy(k=2)(lab, p3, sample_weight=wt) == \
        pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.SparseTopKCategoricalAccuracy(k=2)(lab, p3, sample_weight=wt[:, :3])


def test_accumulation_and_reset(data):
    yt, yp, sw, y, p = data
    for make, a, b in ((lambda: metrics.R2Score(class_aggregation=None), y, p),
                       (lambda: metrics.FBetaScore(beta=0.5, average="weighted"), yt, yp),
                       (metrics.RootMeanSquaredError, y, p),
                       (lambda: metrics.TopKCategoricalAccuracy(k=2), yt, yp)):
        whole, parts = make(), make()
        whole.update_state(a, b, sample_weight=sw)
        for i in range(0, 50, 20):
            parts.update_state(a[i:i + 20], b[i:i + 20], sample_weight=sw[i:i + 20])
        np.testing.assert_allclose(parts.result(), whole.result(), rtol=1e-6)
        parts.reset_state()
        parts.update_state(a, b, sample_weight=sw)
        np.testing.assert_allclose(parts.result(), whole.result(), rtol=1e-6)


def test_fit_evaluate_equal_one_pass():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 6)).astype("float32")
    labels = rng.integers(0, 4, size=90)
    onehot = np.eye(4, dtype="float32")[labels]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", "categorical_crossentropy",
                  metrics=["accuracy", "top_k_categorical_accuracy",
                           metrics.TopKCategoricalAccuracy(k=2, name="top2"),
                           metrics.F1Score(average="macro"), "r2_score",
                           metrics.RootMeanSquaredError(), metrics.AUC(multi_label=True)])
    hist = model.fit(x, onehot, batch_size=32, epochs=2, verbose=0)
    assert list(hist.history)[:3] == ["accuracy", "auc", "f1_score"] or "top2" in hist.history
    logs = model.evaluate(x, onehot, batch_size=25, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0)
    for name, m in (("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy()),
                    ("top2", metrics.TopKCategoricalAccuracy(k=2)),
                    ("f1_score", metrics.F1Score(average="macro")),
                    ("r2_score", metrics.R2Score()),
                    ("root_mean_squared_error", metrics.RootMeanSquaredError())):
        assert logs[name] == pytest.approx(float(m(onehot, pred)), abs=2e-6), name
    assert logs["top2"] >= logs["accuracy"]
    auc_name = [k for k in logs if k.startswith("auc")][0]
    assert logs[auc_name] == pytest.approx(float(metrics.AUC(multi_label=True)(onehot, pred)),
                                           abs=2e-6)
    # Sparse labels through the core.
    model2 = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    model2.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=[metrics.SparseTopKCategoricalAccuracy(k=2)])
    got = model2.evaluate(x, labels, batch_size=7, verbose=0)[1]
    ref = metrics.SparseTopKCategoricalAccuracy(k=2)(labels, model2.predict(x, verbose=0))
    assert got == pytest.approx(float(ref), abs=1e-6)


def test_save_load_compiled(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 5)).astype("float32")
    y = (rng.random((40, 2)) > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy",
                  metrics=["auc", metrics.Precision(thresholds=[0.3, 0.6], name="p"),
                           metrics.F1Score(threshold=0.5, average="micro"),
                           metrics.AUC(multi_label=True, label_weights=[1.0, 3.0], name="ml")])
    model.fit(x, y, epochs=1, verbose=0)
    before = model.evaluate(x, y, return_dict=True, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded.evaluate(x, y, return_dict=True, verbose=0)
    assert set(after) == set(before)
    for k in before:
        np.testing.assert_allclose(after[k], before[k], atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: metrics.R2Score(class_aggregation="median"),
    lambda: metrics.R2Score(num_regressors=-1),
    lambda: metrics.FBetaScore(beta=1),
    lambda: metrics.FBetaScore(beta=-1.0),
    lambda: metrics.F1Score(average="samples"),
    lambda: metrics.F1Score(threshold=1.5),
    lambda: metrics.F1Score(threshold=1),
    lambda: metrics.TopKCategoricalAccuracy(k=0),
    lambda: metrics.RootMeanSquaredError(dtype="float16"),
])
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_bad_inputs(data):
    yt, yp, sw, y, p = data
    with pytest.raises(ValueError, match="2D"):
        metrics.R2Score()(y.ravel(), p.ravel())
    # Keras expands y_true (n,) to (n, 1) for R2Score, and nothing else.
    assert metrics.R2Score()(y[:, 0], p[:, :1]) == metrics.R2Score()(y[:, :1], p[:, :1])
    with pytest.raises(ValueError):
        metrics.R2Score()(y[:, 0], p)
    with pytest.raises(ValueError, match="2D"):
        metrics.F1Score()(yt[:, None], yp[:, None])
    with pytest.raises(ValueError, match="label"):
        metrics.SparseTopKCategoricalAccuracy()(np.full(50, 7), yp)
    with pytest.raises(ValueError):
        metrics.TopKCategoricalAccuracy()(yt[:, :2], yp)
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(3)])
    model.compile("sgd", "mse", metrics=[metrics.R2Score()])
    with pytest.raises(ValueError, match="2D"):
        model.evaluate(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), verbose=0)


def test_several_outputs_and_metric_objects():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 4)).astype("float32")
    ya = (rng.random((30, 1)) > 0.5).astype("float32")
    yb = rng.normal(size=(30, 2)).astype("float32")
    inp = keras.Input((4,))
    a = keras.layers.Dense(1, activation="sigmoid", name="a")(inp)
    b = keras.layers.Dense(2, name="b")(inp)
    model = keras.Model(inp, [a, b])
    auc, r2 = metrics.AUC(name="auc"), metrics.R2Score()
    model.compile("sgd", ["binary_crossentropy", "mse"],
                  metrics=[["accuracy", auc], ["mae", r2, metrics.RootMeanSquaredError()]])
    logs = model.evaluate(x, [ya, yb], batch_size=8, return_dict=True, verbose=0)
    pa, pb = model.predict(x, verbose=0)
    assert logs["a_auc"] == pytest.approx(float(metrics.AUC()(ya, pa)), abs=1e-6)
    assert logs["b_r2_score"] == pytest.approx(float(metrics.R2Score()(yb, pb)), abs=1e-6)
    assert logs["b_root_mean_squared_error"] == pytest.approx(
        float(np.sqrt(np.mean((pb - yb) ** 2))), rel=1e-5)
    assert logs["a_accuracy"] == pytest.approx(np.mean((pa > 0.5) == ya))
    # After evaluate the metric objects hold its state, as Keras's do.
    assert auc.result() == pytest.approx(logs["a_auc"])
    assert r2.result() == pytest.approx(logs["b_r2_score"])
