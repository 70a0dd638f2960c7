"""Image preprocessing layers (CenterCrop, Resizing, RandomFlip, RandomRotation, RandomZoom,
RandomTranslation, RandomContrast): outputs against Keras's own numbers at fixed transforms
(degenerate factor ranges such as factor=(a, a), so the random layers draw one known
transform), identity at inference, determinism (same seed, 1 or 2 threads), the draws. Gradients,
training, save/load and configs: test_image_preprocessing_training.py; PyTorch parity and ONNX:
test_image_preprocessing_torch_onnx.py.

The reference numbers come from Keras 3.15.1: the layers' transforms through its numpy backend
(scipy's map_coordinates, ops.image.resize), which its torch backend matched to 3e-6. The snippet below printed X and REF.
"""
# # Reference numbers for tests/test_image_preprocessing.py (run with the Keras venv).
# import os, sys, types
# os.environ["KERAS_BACKEND"] = "torch"
# import numpy as np
# import keras
# # Keras's numpy backend imports jax at package level; its image.py does not need it.
# pkg = types.ModuleType("keras.src.backend.numpy")
# pkg.__path__ = [os.path.join(os.path.dirname(keras.__file__), "src/backend/numpy")]
# sys.modules["keras.src.backend.numpy"] = pkg
# from keras.src.backend.numpy import image as npimage
#
# L = keras.layers
# H, W = 4, 5
# x = (((np.arange(H * W) * 7) % 11) + 0.5 * (np.arange(H * W) // W)).reshape(1, H, W, 1)
# x = x.astype("float32")
# x2 = np.concatenate([x, 20 - x * 1.5], axis=-1)
# cases = {
#     "rot_reflect_bilinear": (L.RandomRotation((0.1, 0.1)), x),
#     "rot_constant_nearest": (L.RandomRotation((-0.3, -0.3), fill_mode="constant", fill_value=2.5, interpolation="nearest"), x),
#     "rot_wrap_bilinear": (L.RandomRotation((0.2, 0.2), fill_mode="wrap"), x),
#     "rot_nearest_bilinear": (L.RandomRotation((0.15, 0.15), fill_mode="nearest"), x),
#     "zoom_reflect_bilinear": (L.RandomZoom((0.5, 0.5), (-0.3, -0.3)), x),
#     "zoom_constant_nearest": (L.RandomZoom((0.4, 0.4), fill_mode="constant", interpolation="nearest"), x),
#     "zoom_wrap_bilinear": (L.RandomZoom((-0.5, -0.5), fill_mode="wrap"), x),
#     "trans_reflect_bilinear": (L.RandomTranslation((0.3, 0.3), (-0.45, -0.45)), x),
#     "trans_wrap_nearest": (L.RandomTranslation((-0.6, -0.6), (0.25, 0.25), fill_mode="wrap", interpolation="nearest"), x),
#     "trans_constant_bilinear": (L.RandomTranslation((0.5, 0.5), (0.5, 0.5), fill_mode="constant", fill_value=-1.0), x),
#     "rot2_reflect_bilinear": (L.RandomRotation((0.07, 0.07)), x2),
# }
# out = {}
# for k, (layer, img) in cases.items():
#     y = np.asarray(layer(img, training=True))
#     # The same transform through Keras's numpy backend (scipy's map_coordinates).
#     t = layer.get_random_transformation(keras.ops.convert_to_tensor(img), training=True)
#     if "rotation_matrix" in t: m = t["rotation_matrix"]
#     elif "translations" in t: m = layer._get_translation_matrix(t["translations"])
#     else:
#         zooms = keras.ops.concatenate([t["width_zoom"], t["height_zoom"]], axis=1)
#         m = layer._get_zoom_matrix(zooms, H, W)
#     ynp = npimage.affine_transform(img, np.asarray(keras.ops.convert_to_numpy(m)), interpolation=layer.interpolation,
#                                    fill_mode=layer.fill_mode, fill_value=layer.fill_value)
#     diff = np.abs(y - ynp).max()
#     print(k, "torch vs numpy backend:", diff, file=sys.stderr)
#     out[k] = ynp
# resize = {
#     "resize_bilinear_up": dict(size=(6, 7)),
#     "resize_bilinear_down": dict(size=(3, 2)),
#     "resize_nearest": dict(size=(3, 7), interpolation="nearest"),
#     "resize_crop_aspect": dict(size=(3, 3), crop_to_aspect_ratio=True),
#     "resize_pad_aspect": dict(size=(6, 3), pad_to_aspect_ratio=True, fill_value=1.5),
#     "resize_pad_aspect_w": dict(size=(2, 5), pad_to_aspect_ratio=True, fill_value=-2.0),
# }
# for k, kw in resize.items():
#     out[k] = npimage.resize(x, **kw)
#     y = np.asarray(L.Resizing(*kw["size"], **{a: b for a, b in kw.items() if a != "size"})(x))
#     print(k, "torch vs numpy backend:", np.abs(y - out[k]).max(), file=sys.stderr)
# for k, (h, w) in {"center_crop": (2, 3), "center_crop_smart": (5, 3)}.items():
#     out[k] = np.asarray(L.CenterCrop(h, w)(x))
# np.set_printoptions(precision=7, suppress=True, linewidth=100, floatmode="maxprec")
# print("X =", repr(x[0, :, :, 0].tolist()))
# for k, v in out.items():
#     v = v[0, :, :, 0] if v.shape[-1] == 1 else v[0]
#     print(f"    {k!r}: {np.round(v.astype(np.float64), 5).tolist()!r},")

import json

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers

X = [[0.0, 7.0, 3.0, 10.0, 6.0], [2.5, 9.5, 5.5, 1.5, 8.5], [5.0, 1.0, 8.0, 4.0, 11.0], [7.5, 3.5, 10.5, 6.5, 2.5]]
REF = {
    'rot_reflect_bilinear': [
        [5.94542, 3.50863, 7.10957, 6.44833, 9.65511],
        [4.73101, 6.32976, 4.56316, 3.92856, 8.34207],
        [2.43886, 6.44602, 6.01273, 7.17024, 5.20343],
        [3.84489, 4.07713, 3.61207, 9.99137, 7.55457],
    ],
    'rot_constant_nearest': [
        [2.5, 3.5, 1.0, 2.5, 0.0],
        [2.5, 10.5, 8.0, 9.5, 7.0],
        [6.5, 4.0, 5.5, 3.0, 2.5],
        [2.5, 11.0, 1.5, 10.0, 2.5],
    ],
    'rot_wrap_bilinear': [
        [7.4531, 8.91414, 4.57728, 9.11804, 3.21496],
        [6.87215, 4.42921, 4.46162, 5.60319, 6.99237],
        [5.73328, 7.89681, 5.61477, 8.34833, 6.62785],
        [0.42124, 4.3457, 2.84522, 3.75673, 6.0469],
    ],
    'rot_nearest_bilinear': [
        [3.26568, 7.38018, 5.34246, 8.17752, 8.99098],
        [6.08425, 4.72583, 4.39723, 4.06864, 4.86217],
        [3.37909, 9.43136, 5.57027, 8.77417, 7.41575],
        [1.90911, 4.07088, 2.8083, 6.11982, 10.23432],
    ],
    'zoom_reflect_bilinear': [
        [4.2, 5.8, 3.0, 7.9, 8.4],
        [6.075, 7.675, 4.875, 4.0, 5.325],
        [3.225, 3.725, 8.625, 5.825, 6.325],
        [5.1, 5.6, 10.5, 7.7, 4.9],
    ],
    'zoom_constant_nearest': [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 9.5, 5.5, 1.5, 0.0],
        [0.0, 1.0, 8.0, 4.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ],
    'zoom_wrap_bilinear': [
        [8.875, 6.875, 4.875, 4.25, 3.625],
        [7.375, 6.75, 6.125, 4.125, 2.125],
        [3.125, 5.25, 7.375, 5.375, 3.375],
        [1.625, 5.125, 8.625, 6.625, 4.625],
    ],
    'trans_reflect_bilinear': [
        [4.7, 7.85, 6.5, 6.95, 7.1],
        [4.75, 9.0, 6.0, 7.0, 8.25],
        [4.55, 4.4, 8.0, 6.8, 3.65],
        [6.5, 5.25, 10.5, 8.75, 4.5],
    ],
    'trans_wrap_nearest': [
        [11.0, 5.0, 1.0, 8.0, 4.0],
        [2.5, 7.5, 3.5, 10.5, 6.5],
        [6.0, 0.0, 7.0, 3.0, 10.0],
        [8.5, 2.5, 9.5, 5.5, 1.5],
    ],
    'trans_constant_bilinear': [
        [-1.0, -1.0, -1.0, -1.0, -1.0],
        [-1.0, -1.0, -1.0, -1.0, -1.0],
        [-1.0, -1.0, -0.5, 3.5, 5.0],
        [-1.0, -1.0, 0.75, 6.0, 7.5],
    ],
    'rot2_reflect_bilinear': [
        [[5.8031, 11.29535], [4.06463, 13.90305], [6.82465, 9.76303], [6.39242, 10.41137],
         [8.4858, 7.27131]],
        [[3.31272, 15.03092], [7.32227, 9.0166], [4.76741, 12.84889], [3.50743, 14.73885],
         [10.74786, 3.87821]],
        [[2.75214, 15.87179], [4.88152, 12.67772], [6.50224, 10.24663], [6.17773, 10.7334],
         [4.90968, 12.63548]],
        [[5.0142, 12.47869], [4.25264, 13.62104], [5.67242, 11.49137], [9.43537, 5.84695],
         [5.81606, 11.27591]],
    ],
    'resize_bilinear_up': [
        [0.0, 4.0, 5.85714, 3.0, 8.0, 8.28571, 6.0],
        [1.25, 5.25, 7.10714, 4.25, 5.32143, 6.39286, 7.25],
        [2.91667, 5.86905, 7.46429, 5.91667, 3.05952, 4.91667, 8.91667],
        [4.58333, 3.34524, 3.89286, 7.58333, 4.72619, 6.58333, 10.58333],
        [6.25, 3.96429, 4.25, 9.25, 6.39286, 5.89286, 6.75],
        [7.5, 5.21429, 5.5, 10.5, 7.64286, 4.78571, 2.5],
    ],
    'resize_bilinear_down': [
        [5.66667, 8.04167],
        [4.875, 4.5],
        [4.08333, 5.54167],
    ],
    'resize_nearest': [
        [0.0, 7.0, 7.0, 3.0, 10.0, 10.0, 6.0],
        [5.0, 1.0, 1.0, 8.0, 4.0, 4.0, 11.0],
        [7.5, 3.5, 3.5, 10.5, 6.5, 6.5, 2.5],
    ],
    'resize_crop_aspect': [
        [1.58333, 5.41667, 7.72222],
        [4.0, 6.0, 3.41667],
        [6.41667, 6.58333, 6.75],
    ],
    'resize_pad_aspect': [
        [1.5, 1.5, 1.5],
        [1.5, 1.5, 1.5],
        [4.0, 4.66667, 6.55556],
        [4.5, 8.83333, 7.05556],
        [1.5, 1.5, 1.5],
        [1.5, 1.5, 1.5],
    ],
    'resize_pad_aspect_w': [
        [-2.0, 2.65, 4.25, 6.95, -2.0],
        [-2.0, 5.45, 9.25, 6.45, -2.0],
    ],
    'center_crop': [
        [9.5, 5.5, 1.5],
        [1.0, 8.0, 4.0],
    ],
    'center_crop_smart': [
        [7.0, 5.0, 3.0],
        [8.75, 6.75, 4.75],
        [5.25, 6.0, 6.75],
        [1.75, 5.25, 8.75],
        [3.5, 7.0, 10.5],
    ],
}

L = layers
X_IMG = np.array(X, np.float32)[None, :, :, None]  # (1, 4, 5, 1)
X2_IMG = np.concatenate([X_IMG, 20 - X_IMG * 1.5], axis=-1)

# The layers of gen.py, in its order: (name, factory, image).
CASES = {
    "rot_reflect_bilinear": (lambda: L.RandomRotation((0.1, 0.1)), X_IMG),
    "rot_constant_nearest": (lambda: L.RandomRotation(
        (-0.3, -0.3), fill_mode="constant", fill_value=2.5, interpolation="nearest"), X_IMG),
    "rot_wrap_bilinear": (lambda: L.RandomRotation((0.2, 0.2), fill_mode="wrap"), X_IMG),
    "rot_nearest_bilinear": (lambda: L.RandomRotation((0.15, 0.15), fill_mode="nearest"), X_IMG),
    "zoom_reflect_bilinear": (lambda: L.RandomZoom((0.5, 0.5), (-0.3, -0.3)), X_IMG),
    "zoom_constant_nearest": (lambda: L.RandomZoom((0.4, 0.4), fill_mode="constant",
                                                   interpolation="nearest"), X_IMG),
    "zoom_wrap_bilinear": (lambda: L.RandomZoom((-0.5, -0.5), fill_mode="wrap"), X_IMG),
    "trans_reflect_bilinear": (lambda: L.RandomTranslation((0.3, 0.3), (-0.45, -0.45)), X_IMG),
    "trans_wrap_nearest": (lambda: L.RandomTranslation(
        (-0.6, -0.6), (0.25, 0.25), fill_mode="wrap", interpolation="nearest"), X_IMG),
    "trans_constant_bilinear": (lambda: L.RandomTranslation(
        (0.5, 0.5), (0.5, 0.5), fill_mode="constant", fill_value=-1.0), X_IMG),
    "rot2_reflect_bilinear": (lambda: L.RandomRotation((0.07, 0.07)), X2_IMG),
    "resize_bilinear_up": (lambda: L.Resizing(6, 7), X_IMG),
    "resize_bilinear_down": (lambda: L.Resizing(3, 2), X_IMG),
    "resize_nearest": (lambda: L.Resizing(3, 7, interpolation="nearest"), X_IMG),
    "resize_crop_aspect": (lambda: L.Resizing(3, 3, crop_to_aspect_ratio=True), X_IMG),
    "resize_pad_aspect": (lambda: L.Resizing(6, 3, pad_to_aspect_ratio=True, fill_value=1.5),
                          X_IMG),
    "resize_pad_aspect_w": (lambda: L.Resizing(2, 5, pad_to_aspect_ratio=True, fill_value=-2.0),
                            X_IMG),
    "center_crop": (lambda: L.CenterCrop(2, 3), X_IMG),
    "center_crop_smart": (lambda: L.CenterCrop(5, 3), X_IMG),
}
RANDOM = [L.RandomFlip, L.RandomRotation, L.RandomZoom, L.RandomTranslation, L.RandomContrast]


def _random_layers(seed=None):
    """One of each random layer with non-degenerate ranges."""
    return [L.RandomFlip(seed=seed), L.RandomRotation(0.2, seed=seed),
            L.RandomZoom(0.3, (-0.2, 0.4), seed=seed), L.RandomTranslation(0.2, 0.3, seed=seed),
            L.RandomContrast(0.5, value_range=(-10, 10), seed=seed)]


def _run(layer, x, training=True, dy=None):
    """The core layer alone on x (its config as the model hands it over): (y, dx)."""
    spec = json.dumps({"class_name": type(layer).__name__, "config": layer._core_config()})
    x = np.ascontiguousarray(x, np.float32)
    dy = None if dy is None else np.ascontiguousarray(dy, np.float32)
    y, dxs, _ = _core._run_layer(spec, [x.shape[1:]], [x], dy, training, None)
    return y, (dxs[0] if dy is not None else None)


# ---- Keras's numbers -------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_matches_keras_numbers(name):
    make, img = CASES[name]
    y = _run(make(), img)[0][0]
    want = np.array(REF[name], np.float32)
    if img.shape[-1] == 1:
        want = want[:, :, None]
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, atol=2e-5)


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith(("resize", "center"))])
def test_deterministic_layers_predict_and_single_images(name):
    """Resizing and CenterCrop run in predict (inference) too, and a 3-D array is one image,
    as in Keras."""
    make, img = CASES[name]
    layer = make()
    want = np.array(REF[name], np.float32)[:, :, None]
    model = shenjing.Sequential([L.Input(img.shape[1:]), layer])
    np.testing.assert_allclose(model.predict(np.repeat(img, 3, 0), verbose=0),
                               np.repeat(want[None], 3, 0), atol=2e-5)
    np.testing.assert_allclose(layer(img[0]), want, atol=2e-5)
    assert layer(img).shape == (1,) + want.shape


def test_keras_fill_modes_far_outside_the_image():
    """Reflect repeats with period 2n, wrap with n, nearest clamps: a translation by a whole
    image (factor 1) and zooming out 2x reach cells more than one image away."""
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    for fill, index in [("reflect", lambda i, n: (i % (2 * n)) if i % (2 * n) < n
                         else 2 * n - 1 - i % (2 * n)),
                        ("wrap", lambda i, n: i % n),
                        ("nearest", lambda i, n: min(max(i, 0), n - 1))]:
        y = _run(L.RandomTranslation((1, 1), (-1, -1), fill_mode=fill,
                                     interpolation="nearest"), x)[0]
        want = np.array([[x[0, index(r - 3, 3), index(c + 4, 4), 0] for c in range(4)]
                         for r in range(3)])
        np.testing.assert_array_equal(y[0, :, :, 0], want, err_msg=fill)


# ---- inference, seeds, threads --------------------------------------------------------------

def test_random_layers_are_identity_at_inference():
    x = np.random.default_rng(0).uniform(-5, 5, (6, 7, 8, 3)).astype(np.float32)
    model = shenjing.Sequential([L.Input((7, 8, 3)), *_random_layers(seed=1)])
    model.compile(optimizer="sgd", loss="mse")
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    assert model.evaluate(x, x, verbose=0) == pytest.approx(0.0)
    for layer in model.layers:
        np.testing.assert_array_equal(layer(x, training=False), x)
        np.testing.assert_array_equal(_run(layer, x, training=False)[0], x)


def test_array_calls_augment_as_keras_and_follow_the_seed():
    """layer(x) augments (Keras's call(training=True) default); a seeded layer repeats its
    sequence of calls, and successive calls differ."""
    x = np.random.default_rng(1).uniform(0, 9, (4, 6, 6, 2)).astype(np.float32)
    a, b = L.RandomRotation(0.3, seed=5), L.RandomRotation(0.3, seed=5)
    ya1, ya2 = a(x), a(x)
    np.testing.assert_array_equal(ya1, b(x))
    np.testing.assert_array_equal(ya2, b(x))
    assert not np.allclose(ya1, ya2) and not np.allclose(ya1, x)
    assert a(x[0]).shape == x[0].shape  # one image


def test_augmentation_pipeline_called_on_arrays_augments_as_keras():
    """keras.io's data_augmentation = Sequential([...]) then data_augmentation(images): each
    layer's array call, so the images are augmented (identity with training=False); a model
    with other layers predicts."""
    x = np.random.default_rng(12).uniform(0, 9, (5, 6, 6, 3)).astype(np.float32)
    pipeline = shenjing.Sequential([L.RandomFlip(seed=1), L.RandomRotation(0.2, seed=2),
                                    L.Resizing(4, 4)])
    y = pipeline(x)
    assert y.shape == (5, 4, 4, 3)
    assert not np.allclose(y, L.Resizing(4, 4)(x))
    np.testing.assert_allclose(pipeline(x, training=False), L.Resizing(4, 4)(x), atol=1e-6)
    model = shenjing.Sequential([L.Input((6, 6, 3)), L.RandomFlip(seed=1), L.Flatten()])
    np.testing.assert_array_equal(model(x), x.reshape(5, -1))


def test_same_seed_same_augmentation_for_any_thread_count():
    x = np.random.default_rng(2).uniform(0, 9, (64, 9, 11, 3)).astype(np.float32)
    saved = shenjing.get_num_threads()
    try:
        for make in [lambda s: L.RandomFlip(seed=s), lambda s: L.RandomRotation(0.25, seed=s),
                     lambda s: L.RandomZoom(0.3, seed=s, interpolation="nearest"),
                     lambda s: L.RandomTranslation(0.2, 0.2, seed=s, fill_mode="wrap"),
                     lambda s: L.RandomContrast(0.6, seed=s)]:
            outs = []
            for threads in (1, 2):
                shenjing.set_num_threads(threads)
                outs.append(_run(make(3), x)[0])
            np.testing.assert_array_equal(outs[0], outs[1])
            assert not np.array_equal(outs[0], _run(make(4), x)[0])  # another seed
    finally:
        shenjing.set_num_threads(saved)


def test_one_transform_per_sample():
    """Samples get their own draws: equal images come out differently."""
    x = np.repeat(np.random.default_rng(3).uniform(0, 9, (1, 6, 7, 1)), 8, 0)
    for layer in _random_layers(seed=9):
        y = _run(layer, x.astype(np.float32))[0]
        assert len({y[i].tobytes() for i in range(8)}) > 1, type(layer).__name__


# ---- the draws --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,axes", [("horizontal", (1,)), ("vertical", (0,)),
                                       ("horizontal_and_vertical", (0, 1))])
def test_random_flip_flips_half_the_samples_along_its_axes(mode, axes):
    x = np.random.default_rng(4).uniform(0, 9, (400, 3, 4, 2)).astype(np.float32)
    y = _run(L.RandomFlip(mode, seed=11), x)[0]
    flipped = np.array([np.array_equal(y[i], np.flip(x[i], axes)) for i in range(400)])
    same = np.array([np.array_equal(y[i], x[i]) for i in range(400)])
    assert np.all(flipped ^ same)
    assert 160 < flipped.sum() < 240


def test_random_contrast_factor_range_and_clip():
    """Keras: a number f means factors in [1, 1 + f] (its _set_factor with bounds (0, 1));
    a pair is sorted into (lower, upper), which means [1 - lower, 1 + upper]; the result is clipped to value_range."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (300, 4, 5, 2)).astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    for layer, lo, hi in [(L.RandomContrast(0.5, value_range=(-9, 9), seed=1), 1.0, 1.5),
                          (L.RandomContrast((0.3, 0.2), value_range=(-9, 9), seed=1), 0.8, 1.3)]:
        y = _run(layer, x)[0]
        f = ((y - mean) * (x - mean)).sum(axis=(1, 2, 3)) / ((x - mean) ** 2).sum(axis=(1, 2, 3))
        np.testing.assert_allclose(y, (x - mean) * f[:, None, None, None] + mean, atol=1e-5)
        assert f.min() >= lo - 1e-5 and f.max() <= hi + 1e-5
        assert f.min() < lo + 0.05 * (hi - lo) and f.max() > hi - 0.05 * (hi - lo)
    y = _run(L.RandomContrast((-1.0, 1.0), value_range=(0.2, 0.6), seed=2), x)[0]  # factor 2
    np.testing.assert_allclose(y, np.clip((x - mean) * 2 + mean, 0.2, 0.6), atol=1e-5)


def test_random_zoom_width_follows_height_without_width_factor():
    """width_factor=None zooms both axes by one draw: about the centre of a square image that
    commutes with transposing it (same seed, same sample: same draw); a width_factor of its own
    does not."""
    x = np.random.default_rng(6).uniform(0, 9, (6, 9, 9, 2)).astype(np.float32)
    xt = np.ascontiguousarray(np.transpose(x, (0, 2, 1, 3)))
    back = (0, 2, 1, 3)
    y, yt = (_run(L.RandomZoom(0.5, seed=3), a)[0] for a in (x, xt))
    np.testing.assert_allclose(y, np.transpose(yt, back), atol=1e-5)
    y, yt = (_run(L.RandomZoom(0.5, 0.5, seed=3), a)[0] for a in (x, xt))
    assert not np.allclose(y, np.transpose(yt, back), atol=1e-3)
