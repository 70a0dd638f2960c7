"""Image preprocessing layers: gradients through them (the adjoint of each linear map, finite
differences), training with them (after trainable layers, and first), save/load with resumed
fit, the configs (Keras's get_config, from_config, the core's checks) and bad arguments.
Torch-free; the fixed transforms and helpers are test_image_preprocessing.py's.
"""
import json

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers, saving

from test_gradients import finite_difference_check
from test_image_preprocessing import CASES, _random_layers, _run

L = layers


# ---- gradients ------------------------------------------------------------------------------

def _adjoint_check(layer, x, seed=0):
    """For a map linear in x up to a constant (the fill value): <dy, f(x1) - f(x0)> equals
    <backward(dy), x1 - x0>. Each _run builds the layer from the same seed: same draws."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-2, 2, x.shape).astype(np.float32)
    y0 = _run(layer, x)[0]
    dy = rng.normal(size=y0.shape).astype(np.float32)
    _, dx = _run(layer, x, dy=dy)
    y1 = _run(layer, x1)[0]
    lhs = float(np.sum(dy.astype(np.float64) * (y1 - y0)))
    rhs = float(np.sum(dx.astype(np.float64) * (x1 - x)))
    assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-3), type(layer).__name__


@pytest.mark.parametrize("name", list(CASES))
def test_backward_is_the_adjoint_at_keras_transforms(name):
    make, img = CASES[name]
    x = np.random.default_rng(7).uniform(-3, 3, (3,) + img.shape[1:]).astype(np.float32)
    _adjoint_check(make(), x)


def test_backward_is_the_adjoint_for_random_draws():
    x = np.random.default_rng(8).uniform(-3, 3, (5, 6, 7, 2)).astype(np.float32)
    for layer in _random_layers(seed=4)[:4] + [
            L.RandomRotation(0.4, fill_mode="constant", fill_value=3.0, seed=1),
            L.RandomZoom(0.5, interpolation="nearest", fill_mode="wrap", seed=2),
            L.RandomTranslation(0.4, 0.4, fill_mode="nearest", seed=2)]:
        _adjoint_check(layer, x)


def test_random_contrast_input_gradient_matches_finite_differences():
    """Not linear (the clip, the mean): central differences of <dy, y> in each input."""
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 1, (2, 3, 4, 2)).astype(np.float32)
    layer = L.RandomContrast((0.4, 0.5), value_range=(0.05, 0.95), seed=3)
    y = _run(layer, x)[0]
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = _run(layer, x, dy=dy)[1]
    h = 1e-3
    fd = np.zeros(x.size)
    for i in range(x.size):
        xp, xm = x.copy().reshape(-1), x.copy().reshape(-1)
        xp[i] += h
        xm[i] -= h
        fd[i] = (np.sum(dy * _run(layer, xp.reshape(x.shape))[0]) -
                 np.sum(dy * _run(layer, xm.reshape(x.shape))[0])) / (2 * h)
    np.testing.assert_allclose(dx.reshape(-1), fd, atol=3e-3)


def _fd_model(in_shape, layer, seed):
    """Dense probe -> layer -> tanh Dense: the layer's dx reaches the probe's weights."""
    rng = np.random.default_rng(seed)
    P = int(np.prod(in_shape))
    model = shenjing.Sequential([L.Input((P,)), L.Dense(P, activation="tanh"),
                                 L.Reshape(in_shape), layer, L.Flatten(),
                                 L.Dense(3, activation="tanh")])
    model.compile(optimizer="sgd", loss="mse")
    for lay in model.layers:
        for _, value, _ in lay._views:
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
    return model, rng.normal(size=(3, P)), rng.normal(size=(3, 3))


@pytest.mark.parametrize("make", [
    lambda: L.Resizing(5, 3), lambda: L.Resizing(2, 7, pad_to_aspect_ratio=True),
    lambda: L.CenterCrop(2, 3), lambda: L.CenterCrop(5, 5),
    lambda: L.RandomRotation((0.1, 0.1)), lambda: L.RandomZoom((0.3, 0.3), (-0.2, -0.2)),
    lambda: L.RandomTranslation((0.2, 0.2), (-0.3, -0.3), fill_mode="constant"),
    lambda: L.RandomContrast((-0.5, 0.5), value_range=(-50, 50)),
], ids=["resize", "resize_pad", "center_crop", "center_crop_smart", "rotation", "zoom",
        "translation", "contrast"])
def test_training_through_the_layer_matches_finite_differences(make):
    """A layer after trainable ones passes the right gradient back (fixed transforms)."""
    model, x, y = _fd_model((4, 5, 2), make(), seed=1)
    finite_difference_check(model, x, y)


def test_fit_with_augmentation_first_trains_and_repeats_with_the_seed():
    """The augmentation layers first (no gradient into them): fit trains, and repeats bit for
    bit from the same seed. Across thread counts the layers draw the same (checked above); the
    GEMMs' sums may differ in the last bits there, so only closeness is asked."""
    rng = np.random.default_rng(10)
    x = rng.uniform(0, 1, (48, 8, 8, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)

    def run(threads):
        shenjing.utils.set_random_seed(0)
        model = shenjing.Sequential([
            L.Input((8, 8, 1)), L.RandomFlip("horizontal"), L.RandomRotation(0.1),
            L.RandomZoom(0.2), L.RandomTranslation(0.1, 0.1), L.RandomContrast(0.2, (0, 1)),
            L.Conv2D(3, 3, activation="relu"), L.Flatten(), L.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        shenjing.set_num_threads(threads)
        hist = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return model.get_weights(), hist.history["loss"]

    saved = shenjing.get_num_threads()
    try:
        (w1, l1), (w2, l2), (w3, l3) = run(2), run(2), run(1)
    finally:
        shenjing.set_num_threads(saved)
    assert np.all(np.isfinite(l1)) and l1 == l2
    np.testing.assert_allclose(l1, l3, rtol=1e-5)
    for a, b, c in zip(w1, w2, w3):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)


# ---- save / load, configs ---------------------------------------------------------------------

def _all_layers_model():
    return shenjing.Sequential([
        L.Input((9, 10, 2)), L.Resizing(8, 8, crop_to_aspect_ratio=True),
        L.RandomFlip("vertical", seed=1), L.RandomRotation((-0.2, 0.1), fill_mode="wrap"),
        L.RandomZoom(0.2, 0.1, interpolation="nearest", fill_mode="constant", fill_value=0.5),
        L.RandomTranslation((-0.1, 0.2), 0.1, fill_mode="nearest"), L.RandomContrast(0.3),
        L.CenterCrop(6, 7), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])


def test_save_load_round_trip_and_resumed_fit_is_exact(tmp_path):
    """The configs rebuild the same layers, and the random streams are saved with the model:
    fit after load draws what the original draws next."""
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, (20, 9, 10, 2)).astype(np.float32)
    y = rng.normal(size=(20, 2)).astype(np.float32)
    shenjing.utils.set_random_seed(1)
    model = _all_layers_model()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=5, epochs=1, verbose=0)
    path = str(tmp_path / "m.shenjing")
    saving.save_model(model, path)
    loaded = saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(model.layers, loaded.layers):
        assert a.get_config() == b.get_config()
    model.fit(x, y, batch_size=5, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=5, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# get_config() keys of Keras 3.15.1 (less name, trainable, dtype) and their defaults.
KERAS_CONFIGS = {
    "CenterCrop": (lambda: L.CenterCrop(2, 3), {"data_format": "channels_last", "height": 2,
                                                "width": 3}),
    "Resizing": (lambda: L.Resizing(4, 5), {
        "data_format": "channels_last", "height": 4, "width": 5, "interpolation": "bilinear",
        "crop_to_aspect_ratio": False, "pad_to_aspect_ratio": False, "fill_mode": "constant",
        "fill_value": 0.0, "antialias": False}),
    "RandomFlip": (lambda: L.RandomFlip(), {"data_format": "channels_last", "seed": None,
                                            "mode": "horizontal_and_vertical"}),
    "RandomRotation": (lambda: L.RandomRotation(0.2), {
        "data_format": "channels_last", "factor": [-0.2, 0.2], "fill_mode": "reflect",
        "fill_value": 0.0, "interpolation": "bilinear", "seed": None}),
    "RandomZoom": (lambda: L.RandomZoom(0.1), {
        "data_format": "channels_last", "height_factor": 0.1, "width_factor": None,
        "fill_mode": "reflect", "interpolation": "bilinear", "seed": None, "fill_value": 0.0}),
    "RandomTranslation": (lambda: L.RandomTranslation(0.1, (-0.2, 0.3)), {
        "data_format": "channels_last", "height_factor": 0.1, "width_factor": [-0.2, 0.3],
        "fill_mode": "reflect", "interpolation": "bilinear", "seed": None, "fill_value": 0.0}),
    "RandomContrast": (lambda: L.RandomContrast(0.3), {
        "data_format": "channels_last", "factor": [0, 0.3], "value_range": [0, 255],
        "seed": None}),
}


@pytest.mark.parametrize("cls", list(KERAS_CONFIGS))
def test_get_config_is_keras_and_from_config_inverts_it(cls):
    make, want = KERAS_CONFIGS[cls]
    layer = make()
    config = layer.get_config()
    assert {k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")} == want
    again = type(layer).from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config


@pytest.mark.parametrize("make,error,match", [
    (lambda: L.RandomRotation(1.5), ValueError, "factor"),
    (lambda: L.RandomRotation((2, 3)), ValueError, "factor"),
    (lambda: L.RandomZoom(-1.0), ValueError, "height_factor"),
    (lambda: L.RandomZoom(0.2, (0.1, 1.5)), ValueError, "input_number"),
    (lambda: L.RandomTranslation(0.1, -1.5), ValueError, "input_number"),
    (lambda: L.RandomContrast(-0.1), ValueError, "factor"),
    (lambda: L.RandomContrast(0.1, value_range=(5, 1)), ValueError, "value_range"),
    (lambda: L.RandomRotation(0.1, fill_mode="mirror"), NotImplementedError, "fill_mode"),
    (lambda: L.RandomZoom(0.1, interpolation="bicubic"), NotImplementedError, "interpolation"),
    (lambda: L.RandomFlip("diagonal"), ValueError, "mode"),
    (lambda: L.RandomFlip(seed=-1), ValueError, "seed"),
    (lambda: L.Resizing(3, 3, interpolation="bicubic"), ValueError, "bicubic"),
    (lambda: L.Resizing(3, 3, interpolation="lanczos3"), ValueError, "lanczos3"),
    (lambda: L.Resizing(3, 3, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True),
     ValueError, "Only one"),
    (lambda: L.Resizing(3, 3, antialias=True), ValueError, "antialias"),
    (lambda: L.Resizing(3, 3, fill_mode="reflect"), ValueError, "fill_mode"),
    (lambda: L.Resizing(0, 3), ValueError, "height"),
    (lambda: L.CenterCrop(3, 2.5), TypeError, "width"),
    (lambda: L.CenterCrop(3, 3, data_format="channels_first"), ValueError, "channels_last"),
])
def test_bad_arguments_are_refused_as_keras(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("cls,config,match", [
    ("RandomRotation", {"factor": [2, 3]}, "factor"),
    ("RandomRotation", {"factor": 0.1, "fill_mode": "mirror"}, "fill_mode"),
    ("RandomZoom", {"height_factor": -1}, "height_factor"),
    ("RandomZoom", {"height_factor": 0.1, "width_factor": [0, 2]}, "width_factor"),
    ("RandomTranslation", {"height_factor": 0.1}, "width_factor"),
    ("RandomTranslation", {"height_factor": 0.1, "width_factor": "x"}, "width_factor"),
    ("RandomContrast", {"factor": 0.1, "value_range": [3, 1]}, "value_range"),
    ("RandomContrast", {"factor": 1e300}, "factor"),
    ("RandomFlip", {"mode": "diagonal"}, "mode"),
    ("RandomFlip", {"seed": -3}, "seed"),
    ("Resizing", {"height": 3, "width": 3, "interpolation": "lanczos5"}, "lanczos5"),
    ("Resizing", {"height": 3, "width": 3, "antialias": True}, "antialias"),
    ("Resizing", {"height": 3, "width": 0}, "width"),
    ("CenterCrop", {"height": 3}, "width"),
    ("CenterCrop", {"height": 3, "width": 3, "data_format": "channels_first"}, "data_format"),
])
def test_bad_configs_are_refused_by_the_core(cls, config, match):
    """What Python refuses, the core refuses too (files written by hand or by other tools)."""
    with pytest.raises(ValueError, match=match):
        _core.layer_output_shape(json.dumps({"class_name": cls, "config": config}), [(4, 5, 3)])


@pytest.mark.parametrize("shape", [(5, 3), (4, 5, 3, 2), (12,)])
def test_input_must_be_images(shape):
    for layer in [L.Resizing(2, 2), L.CenterCrop(2, 2), L.RandomFlip()]:
        with pytest.raises(ValueError, match="height, width, channels"):
            layer(L.Input(shape))
    with pytest.raises(ValueError, match="rank 3"):
        L.RandomFlip()(np.zeros((2,) + shape if len(shape) == 4 else shape, np.float32))


def test_training_false_call_is_refused_not_ignored():
    """The core has no per-call inference mode: a random layer called with training=False in a
    model would silently augment in fit, so it is refused."""
    inp = L.Input((4, 4, 1))
    with pytest.raises(ValueError, match="training=False"):
        L.RandomFlip()(inp, training=False)


def test_output_shapes():
    inp = L.Input((9, 10, 3))
    assert L.Resizing(4, 6)(inp).shape == (None, 4, 6, 3)
    assert L.CenterCrop(12, 5)(inp).shape == (None, 12, 5, 3)
    for layer in _random_layers():
        assert layer(inp).shape == (None, 9, 10, 3)
