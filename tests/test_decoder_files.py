"""Decoder layers outside the math: save -> load -> predict exactly (Python's load_model and the
C++ Model::load), JSON/config round trips with Keras's config keys, ONNX export agreeing with
predict in onnxruntime, and bad arguments or configs giving clear ValueError/TypeError."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import layers
from shenjing.models import load_model, model_from_json

ZOO = {
    "conv_autoencoder": ((8, 8, 1), lambda: [
        layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1,
                               activation="tanh", kernel_regularizer="l2"),
        layers.Cropping2D(((1, 0), (0, 1))), layers.UpSampling2D(interpolation="bilinear"),
        layers.Conv2DTranspose(1, (2, 3), use_bias=False, activation="sigmoid")]),
    "sequence_decoder": ((5,), lambda: [
        layers.Dense(4), layers.RepeatVector(6), layers.Permute((2, 1)), layers.Permute((2, 1)),
        layers.Conv1DTranspose(3, 3, strides=2, padding="same", dilation_rate=1),
        layers.UpSampling1D(2), layers.Cropping1D((1, 2)), layers.Identity(),
        layers.Conv1DTranspose(2, 2, dilation_rate=2, bias_regularizer="l1")]),
    "nearest_and_identity": ((3, 4, 2), lambda: [
        layers.UpSampling2D((2, 3)), layers.Identity(), layers.Cropping2D(1),
        layers.Permute((3, 1, 2)), layers.Flatten(), layers.Dense(2)]),
}


def _model(name):
    shape, make = ZOO[name]
    model = shenjing.Sequential([layers.Input(shape), *make()])
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    return model


def _x(model, n=5):
    return np.random.default_rng(1).normal(size=(n, *model.input_shape[1:])).astype(np.float32)


@pytest.mark.parametrize("name", ZOO)
def test_save_load_predicts_exactly(tmp_path, name):
    model = _model(name)
    model.compile(optimizer="adam", loss="mse")
    x = _x(model)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
    want = model.predict(x, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    core = shenjing._core.Model.load(str(path))  # the native loader
    out = np.empty(want.shape, np.float32)
    core.predict(x, out, 0, len(x))
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("name", ZOO)
def test_json_round_trip(name):
    model = _model(name)
    text = model.to_json()
    again = model_from_json(text)
    assert again.to_json() == text
    assert again.output_shape == model.output_shape
    assert again.count_params() == model.count_params()


def test_configs_use_keras_keys():
    conv = layers.Conv2DTranspose(4, 3)
    cfg = conv.get_config()
    assert {"filters", "kernel_size", "strides", "padding", "output_padding", "data_format",
            "dilation_rate", "activation", "use_bias", "kernel_initializer",
            "bias_initializer", "kernel_regularizer", "bias_regularizer"} <= set(cfg)
    assert cfg["output_padding"] is None and cfg["strides"] == [1, 1]
    assert layers.Conv1DTranspose(2, 3, output_padding=0).get_config()["output_padding"] == [0]
    assert layers.UpSampling2D().get_config()["interpolation"] == "nearest"
    assert layers.UpSampling1D().get_config()["size"] == 2
    assert layers.Cropping2D().get_config()["cropping"] == [[0, 0], [0, 0]]
    assert layers.Cropping1D().get_config()["cropping"] == [1, 1]
    assert layers.RepeatVector(3).get_config()["n"] == 3
    assert layers.Permute((2, 1)).get_config()["dims"] == [2, 1]
    assert set(layers.Identity(name="i").get_config()) == {"name", "trainable", "dtype"}
    for layer in (conv, layers.UpSampling2D((1, 3), interpolation="bilinear"),
                  layers.Cropping2D(((1, 2), (3, 4))), layers.Permute((3, 1, 2))):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


# ---- ONNX -----------------------------------------------------------------------------------

ONNX_CASES = {
    "ct2d_same_odd": ((4, 5, 3), lambda: [layers.Conv2DTranspose(2, 3, strides=2,
                                                                  padding="same")]),
    "ct2d_same_op": ((3, 4, 2), lambda: [layers.Conv2DTranspose(
        3, (3, 2), strides=(2, 3), padding="same", output_padding=(1, 0), activation="tanh")]),
    "ct2d_valid_gaps": ((3, 4, 2), lambda: [layers.Conv2DTranspose(2, 2, strides=3,
                                                                    use_bias=False)]),
    "ct2d_valid_op": ((3, 4, 2), lambda: [layers.Conv2DTranspose(2, 2, strides=3,
                                                                  output_padding=2)]),
    "ct2d_dilation": ((5, 4, 2), lambda: [layers.Conv2DTranspose(2, 3, padding="same",
                                                                  dilation_rate=(2, 1))]),
    "ct2d_pointwise": ((3, 3, 2), lambda: [layers.Conv2DTranspose(4, 1, activation="relu")]),
    "ct1d_same_op": ((4, 2), lambda: [layers.Conv1DTranspose(3, 4, strides=3, padding="same",
                                                             output_padding=2)]),
    "up2d_nearest": ((3, 4, 2), lambda: [layers.UpSampling2D((2, 3))]),
    "up2d_bilinear": ((3, 4, 2), lambda: [layers.UpSampling2D((3, 2),
                                                              interpolation="bilinear")]),
    "up1d": ((5, 2), lambda: [layers.UpSampling1D(3)]),
    "crop2d": ((6, 7, 2), lambda: [layers.Cropping2D(((1, 2), (0, 3)))]),
    "crop2d_none": ((3, 3, 2), lambda: [layers.Cropping2D()]),
    "crop1d": ((7, 2), lambda: [layers.Cropping1D((2, 1))]),
    "repeat": ((5,), lambda: [layers.RepeatVector(3)]),
    "permute": ((2, 3, 4), lambda: [layers.Permute((3, 1, 2))]),
    "identity": ((4,), lambda: [layers.Identity()]),
}


@pytest.mark.parametrize("shape, make", ONNX_CASES.values(), ids=ONNX_CASES.keys())
def test_onnx_matches_predict(tmp_path, shape, make):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = shenjing.Sequential([layers.Input(shape), *make()])
    rng = np.random.default_rng(2)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    x = _x(model)
    path = str(tmp_path / "m.onnx")
    model.export_onnx(path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {"input": x})[0]
    want = model.predict(x, verbose=0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ZOO)
def test_onnx_zoo_matches_predict(tmp_path, name):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _model(name)
    x = _x(model)
    path = str(tmp_path / "m.onnx")
    model.export_onnx(path)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        ["output"], {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


# ---- bad arguments ----------------------------------------------------------------------------

BAD_ARGS = [
    (lambda: layers.Conv2DTranspose(0, 3), ValueError, r"filters must be a positive"),
    (lambda: layers.Conv2DTranspose(2, (3, 3, 3)), ValueError, r"kernel_size must be"),
    (lambda: layers.Conv2DTranspose(2, 3, padding="causal"), ValueError, r"padding must be"),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2), ValueError,
     r"output_padding must be strictly less than strides"),
    (lambda: layers.Conv2DTranspose(2, 3, output_padding=-1), ValueError, r"non-negative"),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, dilation_rate=2), ValueError,
     r"strides > 1 is not supported together with dilation_rate > 1"),
    (lambda: layers.Conv1DTranspose(2, 3, data_format="channels_first"), ValueError,
     r"channels_last"),
    (lambda: layers.Conv2DTranspose(2, 3, kernel_constraint="max_norm"), ValueError,
     r"kernel_constraint is not supported"),
    (lambda: layers.UpSampling1D(2.0), TypeError, r"size must be an integer"),
    (lambda: layers.UpSampling1D(0), ValueError, r"size must be a positive"),
    (lambda: layers.UpSampling2D((2, 0)), ValueError, r"size must contain positive"),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), ValueError,
     r"'nearest' or 'bilinear'"),
    (lambda: layers.UpSampling2D(interpolation=None), TypeError, r"interpolation must be"),
    (lambda: layers.Cropping1D(-1), ValueError, r"non-negative"),
    (lambda: layers.Cropping2D((1, 2, 3)), ValueError, r"cropping must be an int"),
    (lambda: layers.Cropping2D(((1, 2), (3,))), ValueError, r"cropping\[1\]"),
    (lambda: layers.RepeatVector(2.5), TypeError, r"n must be an integer"),
    (lambda: layers.RepeatVector(0), ValueError, r"n must be a positive"),
    (lambda: layers.Permute((1, 3)), ValueError, r"consecutive and start from 1"),
    (lambda: layers.Permute((0, 1)), ValueError, r"consecutive and start from 1"),
    (lambda: layers.Permute(3), TypeError, r"dims must be a tuple"),
    (lambda: layers.Identity(size=2), TypeError, r"unexpected keyword"),
]


@pytest.mark.parametrize("make, exc, pattern", BAD_ARGS, ids=[str(i) for i in range(len(BAD_ARGS))])
def test_bad_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


BAD_SHAPES = [
    ((4, 4), lambda: layers.Conv2DTranspose(2, 3, name="ct"),
     r"'ct' \(Conv2DTranspose\) expects input of rank 4"),
    ((1, 1, 2), lambda: layers.Conv2DTranspose(2, 2, padding="same", output_padding=0,
                                               name="ct"),
     r"'ct' \(Conv2DTranspose\).*output axis of 0 cells: it must be at least 1"),
    ((3, 3, 2), lambda: layers.Conv2DTranspose(2, 3, strides=2**20, name="ct"),
     r"2\^28|too large"),
    ((64, 64, 64), lambda: layers.Conv2DTranspose(2**10, 16, name="ct"),
     r"'ct' \(Conv2DTranspose\).*floats of workspace per sample, more than 2\^28"),
    ((4, 2), lambda: layers.UpSampling2D(name="u"), r"'u' \(UpSampling2D\) expects input"),
    ((4, 4, 2), lambda: layers.UpSampling2D(2**16, name="u"), r"2\^28|more than 2\^31"),
    ((4, 2), lambda: layers.Cropping1D((2, 2), name="c"),
     r"'c' \(Cropping1D\): cropping \(2, 2\) must be smaller than the input.*\(None, 4, 2\)"),
    ((4, 5, 2), lambda: layers.Cropping2D(((1, 1), (2, 3)), name="c"),
     r"'c' \(Cropping2D\).*smaller than the input"),
    ((3, 2), lambda: layers.RepeatVector(2, name="r"), r"'r' \(RepeatVector\) expects input "
                                                        r"of rank 2"),
    ((3, 2), lambda: layers.Permute((2, 1, 3), name="p"),
     r"'p' \(Permute\) with dims=\(2, 1, 3\) expects input of rank 4"),
]


@pytest.mark.parametrize("shape, make, pattern", BAD_SHAPES,
                         ids=[str(i) for i in range(len(BAD_SHAPES))])
def test_bad_input_shapes_name_the_layer(shape, make, pattern):
    with pytest.raises(ValueError, match=pattern):
        shenjing.Sequential([layers.Input(shape), make()])


@pytest.mark.parametrize("cls, cfg, pattern", [
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "output_padding": [1, 1]},
     r"'x' \(Conv2DTranspose\): output_padding must be .* strictly less than strides"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "output_padding": [-1, 0]},
     r"'output_padding' must be an integer in \[0"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2},
     r"'x' \(Conv2DTranspose\): strides > 1"),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 3, "padding": "causal"}, r"padding"),
    ("UpSampling2D", {"size": [2, 2], "interpolation": "lanczos3"}, r"'interpolation'"),
    ("UpSampling1D", {"size": [2]}, r"'size'"),
    ("Cropping2D", {"cropping": [[1], [2, 3]]}, r"'cropping'"),
    ("Cropping1D", {"cropping": -1}, r"'cropping'"),
    ("RepeatVector", {}, r"'n'"),
    ("Permute", {"dims": [1, 1]}, r"'dims' must be a permutation"),
    ("Permute", {"dims": []}, r"'dims'"),
    ("Flip", {}, r"Known: .*Conv2DTranspose.*Identity"),
])
def test_bad_configs_in_cpp(cls, cfg, pattern):
    core = shenjing._core.Model([6, 6, 2])
    with pytest.raises(ValueError, match=pattern):
        core.add_layer(json.dumps({"class_name": cls, "config": {"name": "x", **cfg}}))
