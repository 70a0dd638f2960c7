"""Normalization: adapt() against NumPy's mean/variance over Keras's reduced axes, given
statistics broadcast as Keras broadcasts them, invert, weights (mean, variance, count), the
input gradient (finite differences), save/load, Keras's configs and errors. Torch-free."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers

from test_gradients import finite_difference_check

RNG = np.random.default_rng(0)
X = (RNG.normal(size=(50, 3, 4)) * [1.0, 3.0, 0.5, 2.0] + [0.0, 5.0, -2.0, 1.0]).astype(
    np.float32)


def _normalize(x, mean, var, invert=False):
    den = np.maximum(np.sqrt(var), 1e-7)
    return mean + x * den if invert else (x - mean) / den


@pytest.mark.parametrize("axis,reduce_,shape", [
    (-1, (0, 1), (4,)), (2, (0, 1), (4,)), ((1, 2), (0,), (3, 4)), ((-2,), (0, 2), (3,)),
    (None, (0, 1, 2), ())])
def test_adapt_matches_numpy(axis, reduce_, shape):
    norm = layers.Normalization(axis=axis)
    norm.adapt(X)
    model = shenjing.Sequential([layers.Input((3, 4)), norm])
    mean, var = X.astype(np.float64).mean(reduce_), X.astype(np.float64).var(reduce_)
    assert [w.shape for w in norm.weights] == [shape, shape, ()]
    np.testing.assert_allclose(norm.get_weights()[0], mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.get_weights()[1], var, rtol=1e-6)
    assert norm.get_weights()[2] == 0  # Keras 3 leaves count at 0
    assert norm.trainable_weights == [] and len(norm.non_trainable_weights) == 3
    keep = [d for d in range(3) if d not in reduce_]
    b = [X.shape[d] if d in keep else 1 for d in range(3)]
    want = _normalize(X, mean.reshape(b), var.reshape(b))
    np.testing.assert_allclose(model.predict(X, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_adapt_batches_matches_whole_and_model_built_first():
    whole = layers.Normalization()
    whole.adapt(X)
    batched = layers.Normalization()
    model = shenjing.Sequential([layers.Input((3, 4)), batched])  # built before adapt
    batched.adapt([X[:17], X[17:40], X[40:]])
    assert whole.get_weights() == []  # no weights until the layer is in a model
    np.testing.assert_allclose(batched.get_weights()[0], whole._adapted[0], atol=1e-5)
    np.testing.assert_allclose(batched.get_weights()[1], whole._adapted[1], rtol=1e-5)
    np.testing.assert_allclose(model.predict(X, verbose=0),
                               shenjing.Sequential([layers.Input((3, 4)), whole]).predict(
                                   X, verbose=0), rtol=1e-4, atol=1e-5)

    class Batches(shenjing.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return X[10 * i:10 * (i + 1)], np.zeros(10)
    from_dataset = layers.Normalization()
    from_dataset.adapt(Batches())
    np.testing.assert_allclose(from_dataset._adapted[0], whole._adapted[0], atol=1e-5)
    np.testing.assert_allclose(from_dataset._adapted[1], whole._adapted[1], rtol=1e-5)
    steps = layers.Normalization()
    steps.adapt(iter([X[:10], X[10:20], X[20:]]), steps=2)
    np.testing.assert_allclose(steps._adapted[0], X[:20].mean((0, 1)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis,mean,var", [
    (-1, [1.0, 2.0, 3.0, 4.0], [1.0, 4.0, 9.0, 0.25]), (None, 2.0, 4.0),
    ((1, 2), [[1.0], [2.0], [3.0]], [[1.0], [2.0], [4.0]]),
    ((1, 2), [0.5, 1.0, 1.5, 2.0], [1.0, 2.0, 3.0, 4.0])])
@pytest.mark.parametrize("invert", [False, True])
def test_given_statistics(axis, mean, var, invert):
    norm = layers.Normalization(axis=axis, mean=mean, variance=var, invert=invert)
    model = shenjing.Sequential([layers.Input((3, 4)), norm])
    assert norm.weights == []
    m, v = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    np.testing.assert_allclose(model.predict(X, verbose=0), _normalize(X, m, v, invert),
                               rtol=1e-5, atol=1e-5)


def test_gradient_finite_differences():
    norm = layers.Normalization()
    norm.adapt(X)
    model = shenjing.Sequential([layers.Input((3, 4)), layers.Dense(4), norm,
                                 layers.Normalization(axis=None, mean=1.0, variance=4.0,
                                                      invert=True),
                                 layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    norm.trainable = False  # its statistics get no gradient: only the Dense layers are checked
    rng = np.random.default_rng(1)
    finite_difference_check(model, X[:6], rng.normal(size=(6, 2)))


def test_save_load_and_native_loader(tmp_path):
    norm = layers.Normalization(axis=(1, 2))
    norm.adapt(X)
    model = shenjing.Sequential([layers.Input((3, 4)), norm, layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, RNG.normal(size=(50, 2)), epochs=1, verbose=0)
    np.testing.assert_allclose(norm.get_weights()[0], X.mean(0), rtol=1e-5, atol=1e-5)  # fixed
    path = str(tmp_path / "n.safetensors")
    shenjing.saving.save_model(model, path)
    loaded = shenjing.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    for a, b in zip(loaded.layers[0].get_weights(), norm.get_weights()):
        np.testing.assert_array_equal(a, b)
    core = _core.Model.load(path)
    out = np.empty((50, 2), np.float32)
    core.predict(X, out, 0, 50)
    np.testing.assert_array_equal(out, model.predict(X, verbose=0))
    given = shenjing.Sequential([layers.Input((3, 4)), layers.Normalization(
        mean=[1.0, 2.0, 3.0, 4.0], variance=[1.0, 1.0, 4.0, 4.0])])
    path2 = str(tmp_path / "g.safetensors")
    shenjing.saving.save_model(given, path2)
    np.testing.assert_array_equal(shenjing.saving.load_model(path2).predict(X, verbose=0),
                                  given.predict(X, verbose=0))


def test_config_matches_keras():
    cfg = layers.Normalization(name="n").get_config()
    assert cfg == {"name": "n", "trainable": True, "dtype": "float32", "axis": [-1],
                   "invert": False, "mean": None, "variance": None}
    cfg = layers.Normalization(axis=None, mean=2.0, variance=4.0).get_config()
    assert cfg["axis"] == [] and cfg["mean"] == 2.0 and cfg["variance"] == 4.0
    # Keras writes axis as a tuple, and a JSON round trip makes it a list.
    back = layers.Normalization.from_config(json.loads(json.dumps(
        layers.Normalization(axis=(1, 2), mean=[[1.0]], variance=[[2.0]]).get_config())))
    assert back.axis == (1, 2)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Normalization(mean=1.0), "both `mean` and `variance`"),
    (lambda: layers.Normalization(mean=[1.0, 2.0], variance=[1.0]), "same shape"),
    (lambda: layers.Normalization(axis=-1, mean=[[1.0]], variance=[[1.0]]), "rank of `mean`"),
    (lambda: layers.Normalization(axis="x"), "Normalization"),
    (lambda: layers.Normalization(mean=[np.nan], variance=[1.0]), "Normalization"),
    (lambda: layers.Normalization(mean=[1.0], variance=[-1.0]), "variance must be non-neg")])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_use():
    with pytest.raises(ValueError, match="range"):
        layers.Normalization(axis=5).adapt(X)
    with pytest.raises(ValueError, match="Normalization.*batch axis"):
        shenjing.Sequential([layers.Input((3, 4)), layers.Normalization(axis=0)])
    with pytest.raises(ValueError, match="Normalization.*broadcast"):
        shenjing.Sequential([layers.Input((3, 4)), layers.Normalization(
            mean=[1.0, 2.0], variance=[1.0, 1.0])])
    norm = layers.Normalization()
    shenjing.Sequential([layers.Input((3, 4)), norm])
    with pytest.raises(ValueError, match="built for statistics of shape"):
        norm.adapt(np.ones((5, 3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        norm.adapt(np.full((5, 3, 4), np.nan))
    with pytest.raises(ValueError, match="empty"):
        norm.adapt([])
    with pytest.raises(ValueError, match="given mean and variance"):
        layers.Normalization(mean=1.0, variance=1.0).adapt(X)
    for cfg in ({"mean": [1, 2], "variance": 3}, {"mean": 1, "variance": -2},
                {"mean": 1}, {"mean": [[1, 2], [3]], "variance": [[1, 2], [3]]}):
        spec = json.dumps({"class_name": "Normalization", "config": cfg})
        with pytest.raises(ValueError, match="Normalization"):
            _core._run_layer(spec, [[2]], [np.ones((1, 2), np.float32)], None, False, None)


def test_onnx_export(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    a = layers.Normalization(axis=(1, 2))
    a.adapt(X)
    model = shenjing.Sequential([
        layers.Input((3, 4)), a, layers.Normalization(axis=None, mean=1.0, variance=4.0,
                                                      invert=True),
        layers.Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[1.0, 2.0, 3.0, 4.0])])
    path = str(tmp_path / "n.onnx")
    model.export_onnx(path)
    got = ort.InferenceSession(path).run(None, {"input": X})[0]
    np.testing.assert_allclose(got, model.predict(X, verbose=0), rtol=1e-5, atol=1e-5)
