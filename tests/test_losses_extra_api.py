"""Keras 3's other losses and their mean metrics, without torch: the values Keras 3.15.1
computes (fixtures/keras315_losses_extra.npz, written by keras315_losses_extra_gen.py) and
Keras's formulas in NumPy, for the eager functions and classes and for the core (evaluate);
the names losses.get / metrics.get take and the names the logs use; label smoothing and
ignore_class; save/load of a model compiled with each; targets the losses refuse."""
import os

import numpy as np
import pytest

import shenjing
from shenjing import layers, losses, metrics
from shenjing.models import load_model

EPS = 1e-7
REF = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "keras315_losses_extra.npz"),
              allow_pickle=False)
TAGS = ["6x5", "4x3x5"]
FUNCTIONS = ["kl_divergence", "poisson", "hinge", "hinge_pm", "squared_hinge",
             "squared_hinge_pm", "categorical_hinge", "log_cosh", "cosine_similarity",
             "mean_absolute_percentage_error", "mean_squared_logarithmic_error"]
CLASS_OF = {"kl_divergence": "KLDivergence", "poisson": "Poisson", "hinge": "Hinge",
            "squared_hinge": "SquaredHinge", "categorical_hinge": "CategoricalHinge",
            "log_cosh": "LogCosh", "cosine_similarity": "CosineSimilarity",
            "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
            "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError"}


def _keras_formula(name, t, p):
    """Keras 3's formulas (keras/src/losses/losses.py), per position, in float64."""
    t, p = t.astype(np.float64), p.astype(np.float64)
    if name.startswith(("hinge", "squared_hinge")):
        t = 2 * t - 1 if np.all((t == 0) | (t == 1)) else t
        m = np.maximum(1 - t * p, 0)
        return np.mean(m if name.startswith("hinge") else m * m, -1)
    if name == "kl_divergence":
        tc, pc = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
        return np.sum(tc * np.log(tc / pc), -1)
    if name == "poisson":
        return np.mean(p - t * np.log(p + EPS), -1)
    if name == "categorical_hinge":
        return np.maximum(np.max((1 - t) * p, -1) - np.sum(t * p, -1) + 1, 0)
    if name == "log_cosh":
        return np.mean(np.log(np.cosh(p - t)), -1)
    if name == "cosine_similarity":
        def unit(v):
            return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), EPS)
        return -np.sum(unit(t) * unit(p), -1)
    if name == "mean_absolute_percentage_error":
        return 100 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), EPS), -1)
    if name == "mean_squared_logarithmic_error":
        return np.mean((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2, -1)
    raise AssertionError(name)


def _linear_model(shape):
    """An output that is its input: the loss sees exactly the arrays given."""
    return shenjing.Sequential([layers.Input(shape), layers.Activation("linear")])


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_and_core_equal_keras(name, tag):
    t, p, keras_values = (REF[f"{tag}/{name}/{k}"] for k in ("t", "p", "fn"))
    base = name.replace("_pm", "")
    fn = getattr(losses, base)
    np.testing.assert_allclose(fn(t, p), keras_values, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(_keras_formula(name, t, p), keras_values, rtol=2e-5, atol=1e-5)
    cls = getattr(losses, CLASS_OF[base])
    assert cls()(t, p) == pytest.approx(float(np.mean(keras_values)), rel=2e-5, abs=1e-6)
    # The core: a model whose output is its input, compiled with the name, the function and
    # an instance; each evaluates to Keras's mean over every position.
    model = _linear_model(p.shape[1:])
    for loss in (base, fn, cls()):
        model.compile(optimizer="sgd", loss=loss)
        assert model.evaluate(p, t, verbose=0, batch_size=len(p)) == pytest.approx(
            float(np.mean(keras_values)), rel=2e-5, abs=1e-6)


def test_keras_docstring_examples():
    assert losses.MeanAbsolutePercentageError()(
        [100.0, 200.0, 300.0], [90.0, 210.0, 310.0]) == pytest.approx(6.111111, rel=1e-6)
    np.testing.assert_allclose(losses.cosine_similarity([[0., 1.], [1., 1.], [1., 1.]],
                                                        [[1., 0.], [1., 1.], [-1., -1.]]),
                               [0.0, -1.0, 1.0], atol=1e-6)
    assert losses.LogCosh()([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]) == \
        pytest.approx(0.108, abs=5e-4)


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("ls", [0.0, 0.2])
@pytest.mark.parametrize("from_logits", [False, True])
def test_label_smoothing_equals_keras(tag, ls, from_logits):
    p = REF[f"{tag}/p_lin"] if from_logits else REF[f"{tag}/p_prob"]
    t01, onehot = REF[f"{tag}/t_01"], REF[f"{tag}/onehot"]
    bce = losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=ls)
    cce = losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=ls)
    want_b, want_c = float(REF[f"{tag}/bce/{ls}/{from_logits}"]), \
        float(REF[f"{tag}/cce/{ls}/{from_logits}"])
    assert bce(t01, p) == pytest.approx(want_b, rel=1e-5)
    assert cce(onehot, p) == pytest.approx(want_c, rel=1e-5)
    # Keras's formula: y (1 - ls) + ls / 2 for binary, y (1 - ls) + ls / C for categorical.
    q = 1 / (1 + np.exp(-p.astype(np.float64))) if from_logits else p.astype(np.float64)
    tb = t01 * (1 - ls) + 0.5 * ls
    qc = np.clip(q, EPS, 1 - EPS)
    assert np.mean(-(tb * np.log(qc) + (1 - tb) * np.log(1 - qc))) == pytest.approx(want_b,
                                                                                     rel=1e-4)
    model = _linear_model(p.shape[1:])
    for loss, y, want in ((bce, t01, want_b), (cce, onehot, want_c)):
        model.compile(optimizer="sgd", loss=loss)
        assert model.evaluate(p, y, verbose=0) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("tag", TAGS)
def test_sparse_ignore_class_equals_keras(tag):
    p, labels = REF[f"{tag}/p_lin"], REF[f"{tag}/labels"]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2)
    want = float(REF[f"{tag}/scce_ignore"])
    assert loss(labels, p) == pytest.approx(want, rel=1e-5)
    model = _linear_model(p.shape[1:])
    model.compile(optimizer="sgd", loss=loss)
    assert model.evaluate(p, labels, verbose=0) == pytest.approx(want, rel=1e-5)
    # Every label ignored: Keras's divide_no_nan gives 0.
    assert model.evaluate(p, np.full_like(labels, 2), verbose=0) == 0.0
    # ignore_class may lie outside [0, C) (e.g. -1 for padding); other labels are still checked.
    model.compile(optimizer="sgd", loss=losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=-1))
    padded = labels.copy()
    padded.reshape(-1)[::2] = -1
    assert np.isfinite(model.evaluate(p, padded, verbose=0))
    padded.reshape(-1)[1] = 7
    with pytest.raises(ValueError, match="label value of 7"):
        model.evaluate(p, padded, verbose=0)


METRIC_NAMES = {"KLDivergence": "kl_divergence", "Poisson": "poisson", "Hinge": "hinge",
                "SquaredHinge": "squared_hinge", "CategoricalHinge": "categorical_hinge",
                "LogCoshError": "log_cosh", "CosineSimilarity": "cosine_similarity",
                "MeanAbsolutePercentageError": "mean_absolute_percentage_error",
                "MeanSquaredLogarithmicError": "mean_squared_logarithmic_error"}


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("cls", sorted(METRIC_NAMES))
def test_metrics_equal_keras_and_the_numpy_mean(tag, cls):
    fn = METRIC_NAMES[cls]
    t, p = REF[f"{tag}/{fn}/t"], REF[f"{tag}/{fn}/p"]
    want = float(REF[f"{tag}/metric/{cls}"])
    metric = getattr(metrics, cls)()
    assert metric(t, p) == pytest.approx(want, rel=2e-5, abs=1e-6)
    sign = -1 if cls == "CosineSimilarity" else 1  # the metric is +cos, the loss -cos
    numpy_mean = float(np.mean(_keras_formula(fn, t, p)))
    assert sign * numpy_mean == pytest.approx(want, rel=2e-5, abs=1e-6)
    # Logged by evaluate under Keras's name; batches of 4 (the last one short) averaged per
    # sample. The hinge decides {0, 1} -> {-1, 1} per batch as Keras does: these targets are
    # {0, 1} in every batch.
    model = _linear_model(p.shape[1:])
    model.compile(optimizer="sgd", loss="mse", metrics=[metric])
    logs = model.evaluate(p, t, verbose=0, batch_size=4, return_dict=True)
    assert set(logs) == {"loss", metric.name}
    assert logs[metric.name] == pytest.approx(want, rel=2e-5, abs=1e-6)


def test_metric_names_follow_keras():
    """The log keys Keras 3.15 writes for each way of naming a metric (checked against
    Keras: metrics=["mape"] logs 'mape', LogCoshError() logs 'logcosh', the loss function
    log_cosh logs 'log_cosh', and the loss function cosine_similarity is the negative cos)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3)).astype(np.float32)
    y = rng.normal(size=(10, 3)).astype(np.float32)
    model = _linear_model((3,))
    model.compile(optimizer="sgd", loss="mse", metrics=[
        "mape", "MAPE", "msle", "kl_divergence", "log_cosh_error", "LogCoshError",
        metrics.LogCoshError(), losses.log_cosh, "cosine_similarity", losses.cosine_similarity,
        metrics.CosineSimilarity(name="cos"), "poisson", "hinge", "squared_hinge",
        "categorical_hinge", metrics.MeanAbsolutePercentageError()])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mape", "MAPE", "msle", "kl_divergence", "log_cosh_error",
                         "LogCoshError", "logcosh", "log_cosh", "cosine_similarity",
                         "cosine_similarity_1", "cos", "poisson", "hinge", "squared_hinge",
                         "categorical_hinge", "mean_absolute_percentage_error"}
    cos = float(np.mean(np.sum(x * y, -1) / np.linalg.norm(x, axis=-1) /
                        np.linalg.norm(y, axis=-1)))
    assert logs["cosine_similarity"] == pytest.approx(cos, rel=1e-5)
    assert logs["cosine_similarity_1"] == pytest.approx(-cos, rel=1e-5)
    assert logs["mape"] == logs["MAPE"] == logs["mean_absolute_percentage_error"]
    assert logs["logcosh"] == logs["log_cosh"] == logs["LogCoshError"]
    assert metrics.kl_divergence is losses.kl_divergence


def test_names_losses_get_takes():
    """Keras 3's losses.get: function and class names and kld/KLD, mape/MAPE, msle/MSLE (not
    Keras 2's 'logcosh' or 'kullback_leibler_divergence')."""
    for name, cls in [("kld", "KLDivergence"), ("KLD", "KLDivergence"),
                      ("kl_divergence", "KLDivergence"), ("KLDivergence", "KLDivergence"),
                      ("mape", "MeanAbsolutePercentageError"),
                      ("MSLE", "MeanSquaredLogarithmicError"), ("log_cosh", "LogCosh"),
                      ("LogCosh", "LogCosh"), ("poisson", "Poisson"), ("hinge", "Hinge"),
                      ("squared_hinge", "SquaredHinge"), ("cosine_similarity",
                                                          "CosineSimilarity"),
                      ("bce", "BinaryCrossentropy"), ("MeanSquaredError", "MeanSquaredError")]:
        assert type(losses.get(name)).__name__ == cls
    for name in ("logcosh", "kullback_leibler_divergence", "cosine_proximity"):
        with pytest.raises(ValueError, match="Unknown loss"):
            losses.get(name)
    for name in ("logcosh", "kld", "log_cosh"):
        with pytest.raises(ValueError, match="Unknown metric"):
            metrics.get(name, (None, 3), (None, 3))


def test_configs_match_keras():
    assert losses.KLDivergence().get_config() == {"reduction": "sum_over_batch_size",
                                                  "name": "kl_divergence"}
    assert losses.BinaryCrossentropy(label_smoothing=0.1).get_config() == {
        "from_logits": False, "label_smoothing": 0.1, "axis": -1,
        "reduction": "sum_over_batch_size", "name": "binary_crossentropy"}
    cfg = losses.SparseCategoricalCrossentropy(ignore_class=0).get_config()
    assert cfg["ignore_class"] == 0 and "label_smoothing" not in cfg
    assert metrics.LogCoshError().get_config() == {"name": "logcosh"}
    # Keras's dicts come back as the same objects.
    again = losses.get({"class_name": "CategoricalCrossentropy",
                        "config": {"from_logits": True, "label_smoothing": 0.25, "axis": -1,
                                   "reduction": "sum_over_batch_size", "name": "cce"}})
    assert (again.from_logits, again.label_smoothing, again.name) == (True, 0.25, "cce")


LOSSES_TO_SAVE = ["kld", "poisson", "hinge", "squared_hinge", "categorical_hinge", "log_cosh",
                  "cosine_similarity", "mape", "msle",
                  losses.KLDivergence(name="my_kl"), losses.LogCosh(), losses.kl_divergence,
                  losses.CategoricalCrossentropy(label_smoothing=0.3),
                  losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
                  losses.SparseCategoricalCrossentropy(ignore_class=1)]


@pytest.mark.parametrize("loss", LOSSES_TO_SAVE, ids=lambda v: getattr(v, "name", None) or
                         getattr(v, "__name__", None) or str(v))
def test_save_load_round_trip(tmp_path, loss):
    rng = np.random.default_rng(0)
    sparse = isinstance(loss, losses.SparseCategoricalCrossentropy)
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=loss, metrics=["mape", metrics.CosineSimilarity()])
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=(16,)).astype(np.float32) if sparse else \
        np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=16)]
    if sparse:  # the metrics need targets shaped like the output
        model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == before
    if hasattr(loss, "get_config"):
        assert type(loaded._loss_plan[0][0]) is type(loss)
        assert loaded._loss_plan[0][0].get_config() == loss.get_config()
    # Training resumes identically.
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loss", ["kld", "poisson", "hinge", "categorical_hinge", "log_cosh",
                                  "cosine_similarity", "mape", "msle"])
def test_bad_targets_raise_value_error(loss):
    model = shenjing.Sequential([layers.Input((3, 4)), layers.Dense(5)])
    model.compile(optimizer="sgd", loss=loss)
    x = np.zeros((6, 3, 4), np.float32)
    before = model.get_weights()
    for y in (np.zeros((6, 5)), np.zeros((6, 3, 4)), np.zeros((6, 5, 3)), np.zeros((6, 15)),
              np.zeros((7, 3, 5))):
        with pytest.raises(ValueError):
            model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="y"):
        model.fit(x, np.full((6, 3, 5), np.nan), verbose=0)
    for a, b in zip(before, model.get_weights()):  # a failed call changes nothing
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(model.evaluate(x, np.ones((6, 3, 5)), verbose=0))


def test_bad_options_raise_value_error():
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.BinaryCrossentropy(label_smoothing="0.1")
    with pytest.raises(ValueError, match="ignore_class"):
        losses.SparseCategoricalCrossentropy(ignore_class=1.5)
    with pytest.raises(ValueError, match="axis"):
        losses.CosineSimilarity(axis=True)
    # Only the last axis: refused at compile for another one, accepted as its positive index.
    model = shenjing.Sequential([layers.Input((3, 4)), layers.Dense(5)])
    with pytest.raises(ValueError, match=r"axis=1\) is not supported"):
        model.compile(optimizer="sgd", loss=losses.CosineSimilarity(axis=1))
    with pytest.raises(ValueError, match=r"axis=1\) is not supported"):
        model.compile(optimizer="sgd", loss=losses.CategoricalCrossentropy(axis=1))
    model.compile(optimizer="sgd", loss=losses.CosineSimilarity(axis=2))
    x, y = np.ones((2, 3, 4), np.float32), np.ones((2, 3, 5), np.float32)
    assert np.isfinite(model.evaluate(x, y, verbose=0))
    # Eagerly any axis works, as in Keras.
    t = np.random.default_rng(0).normal(size=(2, 3, 4))
    np.testing.assert_allclose(losses.cosine_similarity(t, t, axis=1), -np.ones((2, 4)))
    # Row metrics need whole rows of targets (a single value cannot be normalised for them).
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["cosine_similarity"])
    with pytest.raises(ValueError, match="Metric 'cosine_similarity' needs targets shaped"):
        model.evaluate(x, np.ones((2, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match="dtype"):
        metrics.KLDivergence(dtype="float16")


def test_loss_functions_as_metrics_keep_their_sign_after_load(tmp_path):
    """metrics=[losses.cosine_similarity] is -cos (Keras wraps the loss function), the string
    "cosine_similarity" +cos: the compile config saves the function as Keras does (a function
    dict), so the loaded model logs the same values; Keras's own dicts load too."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)
    model = _linear_model((3,))
    model.compile(optimizer="sgd", loss=losses.kl_divergence,
                  metrics=[losses.cosine_similarity, "cosine_similarity", losses.log_cosh])
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    assert before["cosine_similarity"] == pytest.approx(-before["cosine_similarity_1"])
    cfg = model._compile_config()
    assert cfg["metrics"][0] == {"module": "builtins", "class_name": "function",
                                 "config": "cosine_similarity", "registered_name": "function"}
    model.save(tmp_path / "m.keras")
    assert load_model(tmp_path / "m.keras").evaluate(x, y, verbose=0, return_dict=True) == before
    other = _linear_model((3,))
    other.compile(**cfg)
    assert other.evaluate(x, y, verbose=0, return_dict=True) == before
    with pytest.raises(ValueError, match="Unknown loss function 'nope'"):
        losses.get({"module": "builtins", "class_name": "function", "config": "nope",
                    "registered_name": "function"})


def test_ignore_class_refused_under_data_parallel():
    """Ranks average per-rank means; ignore_class's mean is over the global batch's kept
    labels, so DataParallel training refuses it (before any weight is broadcast)."""
    from shenjing import _data_parallel
    model = _linear_model((3,))
    model.compile(optimizer="sgd", loss=losses.SparseCategoricalCrossentropy(ignore_class=0))
    with pytest.raises(ValueError, match="ignore_class.*DataParallel"):
        _data_parallel.prepare(model)


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
def test_hinge_converts_binary_targets_per_batch_as_keras(name):
    """Keras reads {0, 1} targets as {-1, 1} when the whole batch tensor is 0/1: one batch of
    0/1 labels is converted, the next (with a 0.5) is not; loss and metric agree."""
    rng = np.random.default_rng(2)
    p = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=(8, 3)).astype(np.float32)
    y[5, 1] = 0.5
    model = _linear_model((3,))
    model.compile(optimizer="sgd", loss=name, metrics=[name])
    logs = model.evaluate(p, y, batch_size=4, verbose=0, return_dict=True)
    per_batch = [np.mean(_keras_formula(name, y[i:i + 4], p[i:i + 4])) for i in (0, 4)]
    assert logs["loss"] == pytest.approx(np.mean(per_batch), rel=1e-5)
    assert logs[name] == pytest.approx(np.mean(per_batch), rel=1e-5)
    whole = float(np.mean(_keras_formula(name, y, p)))  # one batch: nothing converted
    assert whole != pytest.approx(np.mean(per_batch), rel=1e-3)
    assert model.evaluate(p, y, batch_size=8, verbose=0) == pytest.approx([whole] * 2, rel=1e-5)


def test_fit_history_and_weights_equal_keras():
    """Two epochs of SGD in Keras 3.15.1 (fixtures/keras315_losses_extra_fit.npz): the same
    logs (names and values, metrics averaged over batches of 6 and a short one) and weights."""
    import json
    f = np.load(os.path.join(os.path.dirname(__file__), "fixtures",
                             "keras315_losses_extra_fit.npz"), allow_pickle=False)
    x, onehot, labels = f["x"], f["onehot"], f["labels"]
    cases = {
        "kld": ("softmax", "kld", ["mape", "kl_divergence", "LogCoshError", "cosine_similarity",
                                   "categorical_hinge", "poisson", "msle", "hinge",
                                   "squared_hinge"], onehot),
        "cathinge": ("linear", "categorical_hinge", ["mape"], onehot),
        "cce_ls": ("softmax", losses.CategoricalCrossentropy(label_smoothing=0.1),
                   ["cosine_similarity"], onehot),
        "scce_ign": ("linear", losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                   ignore_class=1), [], labels),
        "cos": ("linear", "cosine_similarity", [], onehot),
    }
    for key, (act, loss, ms, y) in cases.items():
        model = shenjing.Sequential([layers.Input((4,)), layers.Dense(5, activation="tanh"),
                                     layers.Dense(3, activation=act)])
        model.set_weights([f[f"w{i}"] for i in range(4)])
        model.compile(optimizer=shenjing.optimizers.SGD(0.1), loss=loss, metrics=ms)
        hist = model.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0).history
        want = json.loads(str(f[f"{key}/hist"]))
        assert set(hist) == set(want), key
        for name in want:
            np.testing.assert_allclose(hist[name], want[name], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{key}: {name}")
        for i, w in enumerate(model.get_weights()):
            np.testing.assert_allclose(w, f[f"{key}/w{i}"], rtol=1e-5, atol=1e-6)
