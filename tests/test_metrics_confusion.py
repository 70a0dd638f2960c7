"""Precision, Recall, AUC and the confusion counts (shenjing/_metrics_confusion.py): against a
brute-force NumPy version of Keras 3's formulas (every threshold compared with every
prediction, as Keras's unoptimized update does), against numbers from Keras 3.15 itself, and
against scikit-learn where it computes the same quantity."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import metrics

EPS = 1e-7


def counts(y_true, y_pred, thresholds, sample_weight=None, multi_label=False,
           label_weights=None):
    """tp, fp, tn, fn per threshold: pred > threshold in float32, y_true cast to bool."""
    y_pred = np.asarray(y_pred, np.float32)
    y_true = np.asarray(y_true).reshape(y_pred.shape) != 0
    w = np.ones(y_pred.shape) if sample_weight is None else np.broadcast_to(
        np.asarray(sample_weight, np.float64).reshape((-1,) + (1,) * (y_pred.ndim - 1)),
        y_pred.shape)
    if label_weights is not None:
        w = w * np.asarray(label_weights)
    axis = 0 if multi_label else None
    out = []
    for t in np.asarray(thresholds, np.float32):
        pos = y_pred > t
        out.append([np.sum(w * (pos & y_true), axis), np.sum(w * (pos & ~y_true), axis),
                    np.sum(w * (~pos & ~y_true), axis), np.sum(w * (~pos & y_true), axis)])
    return [np.array(c) for c in zip(*out)]


def auc_reference(tp, fp, tn, fn, curve="ROC", summation="interpolation"):
    """Keras's AUC.result(): a Riemann sum over the thresholds (or the PR interpolation)."""
    def dnn(a, b):
        return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b != 0)
    if curve == "PR" and summation == "interpolation":
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        slope = dnn(dtp, np.maximum(p[:-1] - p[1:], 0))
        intercept = tp[1:] - slope * p[1:]
        ok = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(ok, dnn(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return np.sum(dnn(slope * (dtp + intercept * np.log(ratio)),
                          np.maximum(tp[1:] + fn[1:], 0)), axis=0)
    recall = dnn(tp, tp + fn)
    x, y = (dnn(fp, fp + tn), recall) if curve == "ROC" else (recall, dnn(tp, tp + fp))
    heights = {"interpolation": (y[:-1] + y[1:]) / 2, "minoring": np.minimum(y[:-1], y[1:]),
               "majoring": np.maximum(y[:-1], y[1:])}[summation]
    return np.sum((x[:-1] - x[1:]) * heights, axis=0)


def auc_thresholds(n):
    return [-EPS] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1 + EPS]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    y = (rng.random((50, 3)) > 0.5).astype("float32")
    p = rng.random((50, 3)).astype("float32")
    w = rng.random(50).astype("float32")
    return y, p, w


def test_keras_numbers(data):
    # From Keras 3.15 (KERAS_BACKEND=torch) on the same arrays:
    #   rng = np.random.default_rng(0); yt = (rng.random((50, 3)) > 0.5).astype("float32")
    #   yp = rng.random((50, 3)).astype("float32"); sw = rng.random(50).astype("float32")
    #   metrics.AUC()(yt, yp), metrics.AUC(curve="PR")(yt, yp), ...
    y, p, w = data
    assert metrics.AUC()(y, p) == pytest.approx(0.5451357364654541, abs=2e-6)
    assert metrics.AUC(curve="PR")(y, p) == pytest.approx(0.5604766607284546, abs=2e-6)
    assert metrics.AUC(multi_label=True)(y, p) == pytest.approx(0.543145477771759, abs=2e-6)
    assert metrics.AUC(num_thresholds=7, summation_method="minoring")(y, p, sample_weight=w) \
        == pytest.approx(0.4087008833885193, abs=2e-6)
    assert metrics.AUC(thresholds=[0.1, 0.5, 0.7])(y, p) == pytest.approx(0.5643768906593323,
                                                                        abs=2e-6)
    assert metrics.AUC(curve="PRGAIN")(y, p) == pytest.approx(0.13048908114433289, abs=2e-6)
    assert metrics.Precision()(y, p) == pytest.approx(0.6097561120986938, abs=1e-6)
    np.testing.assert_allclose(metrics.Precision(thresholds=[0.2, 0.6])(y, p),
                               [0.5714286, 0.5882353], atol=1e-6)
    assert metrics.Precision(class_id=1)(y, p, sample_weight=w) == pytest.approx(
        0.6155937910079956, abs=1e-6)
    assert metrics.Precision(top_k=2, class_id=2)(y, p) == pytest.approx(0.5625, abs=1e-6)
    np.testing.assert_array_equal(metrics.TruePositives(thresholds=[0., 0.5, 1.])(y, p),
                                  [83, 50, 0])
    assert metrics.FalseNegatives()(y, p) == 33.0


@pytest.mark.parametrize("curve", ["ROC", "PR"])
@pytest.mark.parametrize("summation", ["interpolation", "minoring", "majoring"])
def test_auc_formula(data, curve, summation):
    y, p, w = data
    for n in (3, 10, 200):
        ref = auc_reference(*counts(y, p, auc_thresholds(n), w), curve, summation)
        got = metrics.AUC(num_thresholds=n, curve=curve, summation_method=summation)(
            y, p, sample_weight=w)
        assert got == pytest.approx(ref, abs=2e-6)
    # Uneven thresholds take the unoptimized path.
    thr = [0.05, 0.3, 0.31, 0.9]
    ref = auc_reference(*counts(y, p, [-EPS] + thr + [1 + EPS]), curve, summation)
    assert metrics.AUC(thresholds=thr, curve=curve, summation_method=summation)(y, p) == \
        pytest.approx(ref, abs=2e-6)


def test_auc_multi_label_and_label_weights(data):
    y, p, w = data
    lw = [0.2, 1.0, 3.0]
    per = auc_reference(*counts(y, p, auc_thresholds(200), w, multi_label=True))
    m = metrics.AUC(multi_label=True, num_labels=3, label_weights=lw)
    assert m(y, p, sample_weight=w) == pytest.approx(np.sum(per * lw) / np.sum(lw), abs=2e-6)
    assert metrics.AUC(multi_label=True)(y, p) == pytest.approx(
        np.mean(auc_reference(*counts(y, p, auc_thresholds(200), multi_label=True))), abs=2e-6)
    # Without multi_label, label_weights weigh each column's elements.
    ref = auc_reference(*counts(y, p, auc_thresholds(200), label_weights=lw))
    assert metrics.AUC(label_weights=lw)(y, p) == pytest.approx(ref, abs=2e-6)


def test_auc_from_logits_and_sklearn(data):
    y, p, _ = data
    z = np.log(p / (1 - p))
    assert metrics.AUC(from_logits=True)(y, z) == pytest.approx(metrics.AUC()(y, p), abs=1e-5)
    sk = pytest.importorskip("sklearn.metrics")
    # Many thresholds: Keras's interpolated AUC approaches the exact ROC AUC.
    assert metrics.AUC(num_thresholds=10000)(y.ravel(), p.ravel()) == pytest.approx(
        sk.roc_auc_score(y.ravel(), p.ravel()), abs=1e-3)


def test_precision_recall_counts(data):
    y, p, w = data
    thr = [0.7, 0.1, 0.5]  # unsorted: results follow the order given
    tp, fp, tn, fn = counts(y, p, thr, w)
    np.testing.assert_allclose(metrics.Precision(thresholds=thr)(y, p, sample_weight=w),
                               tp / (tp + fp), rtol=1e-6)
    np.testing.assert_allclose(metrics.Recall(thresholds=thr)(y, p, sample_weight=w),
                               tp / (tp + fn), rtol=1e-6)
    for cls, ref in ((metrics.TruePositives, tp), (metrics.FalsePositives, fp),
                     (metrics.TrueNegatives, tn), (metrics.FalseNegatives, fn)):
        np.testing.assert_allclose(cls(thresholds=thr)(y, p, sample_weight=w), ref, rtol=1e-6)
        assert np.ndim(cls()(y, p)) == 0  # one threshold: a scalar
    # Evenly spaced thresholds (Keras buckets them): a prediction at 0 exceeds none.
    even = [0.0, 0.25, 0.5, 0.75, 1.0]
    q = np.concatenate([p.ravel(), [0.0, 1.0, 0.5]])
    t = np.concatenate([y.ravel(), [1, 1, 0]])
    np.testing.assert_allclose(metrics.TruePositives(thresholds=even)(t, q),
                               counts(t, q, even)[0])
    sk = pytest.importorskip("sklearn.metrics")
    assert metrics.Precision()(y.ravel(), p.ravel()) == pytest.approx(
        sk.precision_score(y.ravel(), p.ravel() > 0.5))
    assert metrics.Recall()(y.ravel(), p.ravel(), sample_weight=None) == pytest.approx(
        sk.recall_score(y.ravel(), p.ravel() > 0.5))


def test_top_k_and_class_id(data):
    y, p, _ = data
    # top_k keeps each row's k largest predictions (others -1e10); default threshold -1e10.
    mask = np.zeros_like(p, bool)
    np.put_along_axis(mask, np.argsort(-p, axis=1, kind="stable")[:, :2], True, axis=1)
    tp, fp = np.sum(mask & (y != 0)), np.sum(mask & (y == 0))
    assert metrics.Precision(top_k=2)(y, p) == pytest.approx(tp / (tp + fp))
    assert metrics.Recall(top_k=2)(y, p) == pytest.approx(tp / np.sum(y))
    c = 1
    tpc = np.sum(mask[:, c] & (y[:, c] != 0))
    assert metrics.Precision(top_k=2, class_id=c)(y, p) == pytest.approx(
        tpc / np.sum(mask[:, c]))
    assert metrics.Recall(class_id=c)(y, p) == pytest.approx(
        np.sum((p[:, c] > 0.5) & (y[:, c] != 0)) / np.sum(y[:, c]))
    # Ties at the k-th place go to the lower index (TensorFlow's and JAX's top_k; torch's
    # CPU topk picks an implementation-defined one among ties).
    yt = np.array([[0, 1, 0, 0], [0, 0, 1, 0]], "float32")
    yp = np.array([[0.3, 0.3, 0.3, 0.1], [0.2, 0.5, 0.5, 0.5]], "float32")
    assert metrics.Precision(top_k=1)(yt, yp) == 0.0
    assert metrics.Precision(top_k=2)(yt, yp) == 0.5


def test_accumulates_over_batches(data):
    y, p, w = data
    for make in (lambda: metrics.AUC(curve="PR"), lambda: metrics.Precision([0.3, 0.6]),
                 lambda: metrics.AUC(multi_label=True), metrics.FalsePositives):
        whole, parts = make(), make()
        whole.update_state(y, p, sample_weight=w)
        for i in range(0, 50, 15):
            parts.update_state(y[i:i + 15], p[i:i + 15], sample_weight=w[i:i + 15])
        np.testing.assert_allclose(parts.result(), whole.result(), rtol=1e-6)
        parts.reset_state()
        assert np.all(np.asarray(parts.result()) == 0)


def test_fit_evaluate_equal_one_pass(data):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 4)).astype("float32")
    y = (rng.random((70, 1)) > 0.5).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    ms = ["auc", metrics.AUC(curve="PR", name="pr"), "precision", metrics.Recall([0.3, 0.7], name="recall"),
          "true_positives", metrics.TrueNegatives(thresholds=[0.2, 0.5], name="tn")]
    model.compile("sgd", "binary_crossentropy", metrics=ms)
    logs = model.evaluate(x, y, batch_size=16, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0)
    assert logs["auc"] == pytest.approx(float(metrics.AUC()(y, pred)), abs=1e-6)
    assert logs["pr"] == pytest.approx(float(metrics.AUC(curve="PR")(y, pred)), abs=1e-6)
    assert logs["precision"] == pytest.approx(float(metrics.Precision()(y, pred)), abs=1e-6)
    np.testing.assert_allclose(logs["recall"], metrics.Recall([0.3, 0.7])(y, pred), atol=1e-6)
    assert logs["true_positives"] == float(metrics.TruePositives()(y, pred))
    np.testing.assert_allclose(logs["tn"],
                               metrics.TrueNegatives(thresholds=[0.2, 0.5])(y, pred))
    hist = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y))
    assert set(hist.history) >= {"auc", "val_auc", "pr", "precision", "val_tn"}
    values = model.evaluate(x, y, batch_size=70, verbose=0)
    assert values[1] == pytest.approx(model.evaluate(x, y, batch_size=8, return_dict=True,
                                                     verbose=0)["auc"], abs=1e-6)


def test_names_and_aliases():
    a, b = metrics.Precision(), metrics.Precision()
    assert a.name.startswith("precision") and b.name != a.name  # Keras numbers them
    for s, cls in (("auc", metrics.AUC), ("AUC", metrics.AUC), ("recall", metrics.Recall),
                   ("true_positives", metrics.TruePositives),
                   ("false_negatives", metrics.FalseNegatives)):
        m = metrics.get(s, (None, 1), (None, 1))
        assert type(m) is cls and m.name == s


def test_config_round_trip():
    m = metrics.AUC(num_thresholds=50, curve="PR", multi_label=True, num_labels=3,
                    label_weights=[1.0, 2.0, 0.5], from_logits=True, name="a")
    c = m.get_config()
    assert c == {"name": "a", "dtype": "float32", "num_thresholds": 50, "curve": "PR",
                 "summation_method": "interpolation", "multi_label": True, "num_labels": 3,
                 "label_weights": [1.0, 2.0, 0.5], "from_logits": True}
    assert metrics.AUC.from_config(c).get_config() == c
    c = metrics.AUC(thresholds=[0.5, 0.2], name="t").get_config()
    assert c["thresholds"] == [0.2, 0.5] and c["num_thresholds"] == 4
    c = metrics.Precision(thresholds=[0.3], top_k=2, class_id=1, name="p").get_config()
    assert c == {"name": "p", "dtype": "float32", "thresholds": [0.3], "top_k": 2,
                 "class_id": 1}
    assert metrics.TruePositives(name="t").get_config() == {"name": "t", "dtype": "float32",
                                                            "thresholds": None}


@pytest.mark.parametrize("make", [
    lambda: metrics.Precision(thresholds=[0.5, 1.5]),
    lambda: metrics.Recall(thresholds=-0.1),
    lambda: metrics.TruePositives(thresholds=[None]),
    lambda: metrics.AUC(num_thresholds=1),
    lambda: metrics.AUC(curve="XY"),
    lambda: metrics.AUC(summation_method="trapezoid"),
    lambda: metrics.AUC(num_labels=3),
    lambda: metrics.Precision(top_k=0),
    lambda: metrics.Recall(class_id=-1),
])
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_bad_inputs(data):
    y, p, w = data
    with pytest.raises(ValueError, match="class_id"):
        metrics.Precision(class_id=5)(y, p)
    with pytest.raises(ValueError, match="rank 2"):
        metrics.AUC(multi_label=True)(y.ravel(), p.ravel())
    with pytest.raises(ValueError, match="num_labels"):
        metrics.AUC(multi_label=True, num_labels=4)(y, p)
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.AUC()(y, p, sample_weight=np.ones((50, 3)))
    m = metrics.AUC(multi_label=True)
    m(y, p)
    with pytest.raises(ValueError):
        m(y[:, :2], p[:, :2])  # built for 3 labels
    assert m.result() == pytest.approx(metrics.AUC(multi_label=True)(y, p))  # unchanged
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse", metrics=[metrics.Precision(class_id=3)])
    with pytest.raises(ValueError, match="class_id"):
        model.evaluate(np.zeros((4, 4)), np.zeros((4, 3)), verbose=0)


def test_progress_bar_shows_array_metrics_as_their_mean(capsys):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (rng.random((32, 1)) > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy",
                  metrics=[metrics.TruePositives(thresholds=[0.0, 1.0], name="tp")])
    hist = model.fit(x, y, batch_size=8, epochs=1, verbose=2)
    np.testing.assert_array_equal(hist.history["tp"][0], [np.sum(y), 0])
    assert f"tp: {np.sum(y) / 2:.4f}" in capsys.readouterr().out  # Keras's Progbar: the mean
