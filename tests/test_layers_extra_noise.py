"""GaussianNoise, GaussianDropout, SpatialDropout1D/2D/3D: active in training only, seeded,
the same for any thread count, the noise's statistics, their gradients, Keras's configs and
errors, resumed training after save/load. Torch-free (runs under .ci/sanitize)."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers


def _run(layer, x, training=True, dy=None):
    spec = json.dumps({"class_name": type(layer).__name__, "config": layer._core_config()})
    return _core._run_layer(spec, [list(x.shape[1:])], [x], dy, training, None)


X = np.random.default_rng(0).normal(size=(64, 8, 6, 5)).astype(np.float32)


def test_gaussian_noise_statistics_and_gradient():
    layer = layers.GaussianNoise(0.3, seed=4)
    y, _, _ = _run(layer, X, training=False)
    np.testing.assert_array_equal(y, X)  # inference: the input
    dy = np.random.default_rng(1).normal(size=X.shape).astype(np.float32)
    y, (dx,), _ = _run(layer, X, dy=dy)
    noise = (y - X).ravel()
    assert abs(noise.mean()) < 0.01 and noise.std() == pytest.approx(0.3, rel=0.02)
    # Normal tails: about 4.6% of N(0, 1) draws lie beyond 2 sigma.
    assert np.mean(np.abs(noise) > 0.6) == pytest.approx(0.0455, abs=0.005)
    np.testing.assert_array_equal(dx, dy)


def test_gaussian_dropout_statistics_and_gradient():
    rate = 0.2
    layer = layers.GaussianDropout(rate, seed=5)
    x = np.abs(X) + 0.5
    dy = np.random.default_rng(1).normal(size=X.shape).astype(np.float32)
    y, (dx,), _ = _run(layer, x, dy=dy)
    m = (y / x).ravel()
    assert m.mean() == pytest.approx(1.0, abs=0.01)
    assert m.std() == pytest.approx(np.sqrt(rate / (1 - rate)), rel=0.02)
    np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-5, atol=1e-6)
    y, _, _ = _run(layer, x, training=False)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("cls,shape,fmt", [
    (layers.SpatialDropout1D, (64, 12, 7), None),
    (layers.SpatialDropout2D, (64, 5, 6, 7), "channels_last"),
    (layers.SpatialDropout2D, (64, 7, 5, 6), "channels_first"),
    (layers.SpatialDropout3D, (32, 3, 4, 5, 7), "channels_last"),
    (layers.SpatialDropout3D, (32, 7, 3, 4, 5), "channels_first")])
def test_spatial_dropout_drops_whole_channels(cls, shape, fmt):
    rate = 0.4
    layer = cls(rate, seed=3) if fmt is None else cls(rate, data_format=fmt, seed=3)
    x = np.abs(np.random.default_rng(2).normal(size=shape)).astype(np.float32) + 0.1
    dy = np.ones(shape, np.float32)
    y, (dx,), _ = _run(layer, x, dy=dy)
    m = y / x
    # Move channels last, then every (sample, channel) has one value at all positions.
    if fmt == "channels_first":
        m, dx = np.moveaxis(m, 1, -1), np.moveaxis(dx, 1, -1)
    m = m.reshape(shape[0], -1, m.shape[-1])
    per = m[:, :1, :]
    np.testing.assert_allclose(m, np.broadcast_to(per, m.shape), rtol=1e-6)
    vals = np.unique(per)
    assert np.all(np.isclose(vals, 0.0) | np.isclose(vals, 1 / (1 - rate), rtol=1e-6))
    assert np.mean(per == 0) == pytest.approx(rate, abs=0.08)
    np.testing.assert_allclose(dx.reshape(m.shape), m, rtol=1e-6)
    y, _, _ = _run(layer, x, training=False)
    np.testing.assert_array_equal(y, x)


def test_spatial_dropout_rank_error_names_layer():
    with pytest.raises(ValueError, match="sd.*SpatialDropout2D.*rank 4"):
        shenjing.Sequential([layers.Input((4, 5)), layers.SpatialDropout2D(0.2, name="sd")])


def _fit(seed_layers, threads, epochs=2, model_seed=0):
    shenjing.utils.set_random_seed(model_seed)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 6, 6, 3)).astype(np.float32)
    y = rng.normal(size=(40, 2)).astype(np.float32)
    model = shenjing.Sequential([
        layers.Input((6, 6, 3)), layers.GaussianNoise(0.2, seed=seed_layers),
        layers.DepthwiseConv2D(3, depth_multiplier=2), layers.SpatialDropout2D(0.3, seed=seed_layers),
        layers.GaussianDropout(0.3, seed=seed_layers), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    old = shenjing.get_num_threads()
    shenjing.set_num_threads(threads)
    try:
        model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, shuffle=False)
    finally:
        shenjing.set_num_threads(old)
    return model, x, y


def test_seeded_and_deterministic_for_any_thread_count():
    a, x, _ = _fit(11, 1)
    b, _, _ = _fit(11, 2)
    c, _, _ = _fit(12, 1)
    for la, lb in zip(a.layers, b.layers):
        for wa, wb in zip(la.get_weights(), lb.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.layers[1].get_weights()[0], c.layers[1].get_weights()[0])
    # Inference ignores the noise: predict is the deterministic network.
    np.testing.assert_array_equal(a.predict(x, verbose=0), a.predict(x, verbose=0))


def test_resumed_fit_draws_the_same_noise(tmp_path):
    full, x, y = _fit(21, 1, epochs=2)
    half, _, _ = _fit(21, 1, epochs=1)
    path = str(tmp_path / "m.safetensors")
    shenjing.saving.save_model(half, path)
    resumed = shenjing.saving.load_model(path)
    resumed.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for la, lb in zip(full.layers, resumed.layers):
        for wa, wb in zip(la.get_weights(), lb.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    core = _core.Model.load(path)  # the native loader reads the same configs
    out = np.empty((len(x), 2), np.float32)
    core.predict(x, out, 0, len(x))
    np.testing.assert_array_equal(out, half.predict(x, verbose=0))


def test_configs_match_keras():
    assert layers.GaussianNoise(0.1, seed=3, name="g").get_config() == {
        "name": "g", "trainable": True, "dtype": "float32", "stddev": 0.1, "seed": 3}
    cfg = layers.GaussianDropout(0.2, name="gd").get_config()
    assert cfg == {"name": "gd", "trainable": True, "dtype": "float32", "rate": 0.2,
                   "seed": None}
    assert layers.SpatialDropout1D(0.2, name="s1").get_config() == {
        "rate": 0.2, "seed": None, "name": "s1", "dtype": "float32"}
    assert layers.SpatialDropout2D(0.2, name="s2", seed=1).get_config() == {
        "rate": 0.2, "seed": 1, "name": "s2", "dtype": "float32",
        "data_format": "channels_last"}
    s3 = layers.SpatialDropout3D.from_config(
        {"rate": 0.5, "seed": None, "name": "s3", "dtype": "float32",
         "data_format": "channels_first"})
    assert s3.data_format == "channels_first" and s3.rate == 0.5


@pytest.mark.parametrize("make,match", [
    (lambda: layers.GaussianNoise(1.5), "GaussianNoise.*stddev"),
    (lambda: layers.GaussianNoise(-0.1), "GaussianNoise.*stddev"),
    (lambda: layers.GaussianDropout(1.0), "GaussianDropout.*rate"),
    (lambda: layers.GaussianDropout("a"), "GaussianDropout.*rate"),
    (lambda: layers.SpatialDropout1D(1.0), "SpatialDropout1D.*rate"),
    (lambda: layers.SpatialDropout2D(0.1, data_format="nchw"), "SpatialDropout2D.*data_format"),
    (lambda: layers.SpatialDropout3D(0.1, seed=-1), "SpatialDropout3D.*seed")])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_configs_in_the_core():
    for cfg, match in ((({"stddev": 2.0}), "stddev"), ({"stddev": 0.1, "seed": -3}, "seed")):
        spec = json.dumps({"class_name": "GaussianNoise", "config": cfg})
        with pytest.raises(ValueError, match=match):
            _core._run_layer(spec, [[3]], [np.ones((1, 3), np.float32)], None, True, None)
    spec = json.dumps({"class_name": "SpatialDropout2D",
                       "config": {"rate": 0.1, "data_format": "x"}})
    with pytest.raises(ValueError, match="data_format"):
        _core._run_layer(spec, [[2, 2, 3]], [np.ones((1, 2, 2, 3), np.float32)], None, True,
                         None)


def test_onnx_export_is_the_identity(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = shenjing.Sequential([
        layers.Input((4, 4, 3)), layers.GaussianNoise(0.1), layers.GaussianDropout(0.2),
        layers.SpatialDropout2D(0.3), layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 3)).astype(np.float32)
    path = str(tmp_path / "n.onnx")
    model.export_onnx(path)
    got = ort.InferenceSession(path).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_training_false_call_is_refused_not_ignored():
    # The core switches the noise with fit/predict; a per-call inference mode would be
    # silently ignored, so it is an error (as for Dropout).
    inp = shenjing.Input((4,))
    for layer in (layers.GaussianNoise(0.3), layers.GaussianDropout(0.2)):
        with pytest.raises(ValueError, match="training=False"):
            layer(inp, training=False)
    layers.GaussianNoise(0.3)(inp, training=True)  # fit's mode: accepted
