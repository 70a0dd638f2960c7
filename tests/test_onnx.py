"""ONNX export: onnxruntime runs the exported graph and must give what ``predict`` gives
(within 1e-5) for every layer type, option and activation, and the file must be a valid ONNX
model with a symbolic batch axis."""
import sys

import numpy as np
import pytest

import shenjing
from shenjing import activations, layers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = 1e-5


def _randomize(model, seed=0):
    """Random weights everywhere: nonzero biases, non-trivial BatchNormalization statistics,
    kernels scaled by their fan-in so that outputs stay in the range where activations bend."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = [rng.normal(0, 1 / np.sqrt(np.prod(w.shape[:-1])) if w.ndim > 1 else 0.5,
                              w.shape).astype(np.float32) for w in layer.get_weights()]
        if isinstance(layer, layers.BatchNormalization):  # Keras order: moving_variance last
            weights[-1] = rng.uniform(0.2, 2.0, weights[-1].shape).astype(np.float32)
        layer.set_weights(weights)
    return model


def _inputs(model, n=5, seed=1, scale=1.5):
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=(n, *model.input_shape[1:]))).astype(np.float32)


def _session(model, path, opset=None):
    assert model.export_onnx(str(path), opset=opset) == str(path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_same(model, path, x, opset=None):
    got = _session(model, path, opset).run(["output"], {"input": x})[0]
    want = model.predict(x, verbose=0)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


def _model(input_shape, *stack):
    return shenjing.Sequential([layers.Input(input_shape), *stack])


def test_keras_mnist_mlp(tmp_path):
    model = _randomize(_model((784,), layers.Dense(512, activation="relu"), layers.Dropout(0.2),
                              layers.Dense(512, activation="relu"), layers.Dropout(0.2),
                              layers.Dense(10, activation="softmax")))
    x = np.random.default_rng(0).uniform(size=(16, 784)).astype(np.float32)
    _assert_same(model, tmp_path / "mlp.onnx", x)


def test_keras_mnist_convnet(tmp_path):
    model = _randomize(_model((28, 28, 1),
                   layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
                   layers.MaxPooling2D(pool_size=(2, 2)),
                   layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
                   layers.MaxPooling2D(pool_size=(2, 2)),
                   layers.Flatten(), layers.Dropout(0.5),
                   layers.Dense(10, activation="softmax")))
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    _assert_same(model, tmp_path / "convnet.onnx", x)


CASES = {
    # Convolutions: 'same' with strides on odd sizes (padding split like TF), dilation, causal.
    "conv2d_same_strides_odd": ((7, 9, 3), lambda: [
        layers.Conv2D(4, (3, 2), strides=2, padding="same")]),
    "conv2d_same_dilation": ((8, 7, 2), lambda: [
        layers.Conv2D(3, 3, padding="same", dilation_rate=(2, 3), activation="tanh")]),
    "conv2d_valid_strides_dilation_no_bias": ((9, 8, 2), lambda: [
        layers.Conv2D(5, (2, 3), strides=(2, 1), dilation_rate=(2, 1), use_bias=False)]),
    "conv2d_softmax_over_channels": ((5, 5, 2), lambda: [
        layers.Conv2D(4, 3, padding="same", activation="softmax")]),
    "conv1d_causal_dilation": ((11, 3), lambda: [
        layers.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu")]),
    "conv1d_causal_strides": ((10, 2), lambda: [
        layers.Conv1D(3, 4, strides=3, padding="causal")]),
    "conv1d_same_strides_odd": ((9, 2), lambda: [
        layers.Conv1D(3, 4, strides=2, padding="same")]),
    "conv1d_valid_strides": ((12, 3), lambda: [layers.Conv1D(2, 3, strides=3)]),
    # Pooling: 'same' pads with cells that max ignores and average does not count.
    "maxpool2d_valid": ((6, 8, 3), lambda: [layers.MaxPooling2D()]),
    "maxpool2d_same_strides_odd": ((7, 5, 2), lambda: [
        layers.MaxPooling2D(3, strides=2, padding="same")]),
    "avgpool2d_valid_strides": ((7, 8, 2), lambda: [
        layers.AveragePooling2D((3, 2), strides=(2, 3))]),
    "avgpool2d_same_odd": ((7, 5, 2), lambda: [
        layers.AveragePooling2D(3, strides=2, padding="same")]),
    "maxpool1d_same": ((9, 3), lambda: [layers.MaxPooling1D(3, strides=2, padding="same")]),
    "avgpool1d_valid": ((9, 3), lambda: [layers.AveragePooling1D()]),
    "avgpool1d_same": ((8, 2), lambda: [layers.AveragePooling1D(3, strides=1, padding="same")]),
    "global_avg2d": ((5, 4, 3), lambda: [layers.GlobalAveragePooling2D()]),
    "global_max2d_keepdims": ((5, 4, 3), lambda: [layers.GlobalMaxPooling2D(keepdims=True)]),
    "global_max1d": ((6, 3), lambda: [layers.GlobalMaxPooling1D()]),
    "global_avg1d_keepdims": ((6, 3), lambda: [layers.GlobalAveragePooling1D(keepdims=True)]),
    # BatchNormalization on rank 2, 3 and 4 inputs, with and without gamma / beta.
    "batch_norm_dense": ((6,), lambda: [layers.Dense(5), layers.BatchNormalization()]),
    "batch_norm_conv2d": ((5, 5, 2), lambda: [
        layers.Conv2D(3, 3), layers.BatchNormalization(epsilon=0.01)]),
    "batch_norm_no_scale": ((4, 3), lambda: [layers.BatchNormalization(scale=False)]),
    "batch_norm_no_center": ((4, 3), lambda: [layers.BatchNormalization(center=False)]),
    "batch_norm_neither": ((4, 3), lambda: [
        layers.BatchNormalization(center=False, scale=False)]),
    # Padding and reshaping.
    "zero_padding2d": ((3, 4, 2), lambda: [layers.ZeroPadding2D(((1, 2), (0, 3)))]),
    "zero_padding2d_int": ((3, 4, 2), lambda: [layers.ZeroPadding2D(2)]),
    "zero_padding1d": ((5, 2), lambda: [layers.ZeroPadding1D((2, 1))]),
    "reshape_then_dense_rank3": ((24,), lambda: [
        layers.Reshape((4, -1)), layers.Dense(3, activation="elu")]),
    "dense_rank4_no_bias": ((2, 3, 4), lambda: [layers.Dense(5, use_bias=False)]),
    "flatten_conv1d": ((6, 2), lambda: [layers.Conv1D(2, 2), layers.Flatten()]),
    "dropout_only": ((4,), lambda: [layers.Dropout(0.5)]),
    # A small CNN mixing them.
    "mixed_cnn": ((9, 9, 1), lambda: [
        layers.ZeroPadding2D(1), layers.Conv2D(4, 3, strides=2, activation="relu"),
        layers.BatchNormalization(), layers.AveragePooling2D(padding="same"),
        layers.Conv2D(3, 1, activation="swish"), layers.GlobalMaxPooling2D(),
        layers.Dense(2, activation="sigmoid")]),
}


@pytest.mark.parametrize("input_shape, make", CASES.values(), ids=CASES.keys())
def test_layer(tmp_path, input_shape, make):
    model = _randomize(_model(input_shape, *make()))
    _assert_same(model, tmp_path / "model.onnx", _inputs(model))


@pytest.mark.parametrize("name", [*activations._KNOWN, "silu"])
def test_activation(tmp_path, name):
    model = _randomize(_model((3, 6), layers.Activation(name),
                              layers.Dense(6, activation=name)))
    x = _inputs(model, scale=3.0)
    x[0, 0] = [-30, -8, -1e-3, 0, 1e-3, 30]  # saturation and the neighbourhood of zero
    _assert_same(model, tmp_path / "act.onnx", x)


def test_batch_norm_after_training(tmp_path):
    shenjing.utils.set_random_seed(0)
    model = _model((6, 6, 2), layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(),
                   layers.Activation("relu"), layers.Flatten(), layers.Dense(3))
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = (2 + 3 * rng.normal(size=(64, 6, 6, 2))).astype(np.float32)
    model.fit(x, rng.normal(size=(64, 3)).astype(np.float32), batch_size=16, epochs=2, verbose=0)
    bn = model.layers[1]
    assert np.abs(bn.moving_mean).max() > 0.05 and np.abs(bn.moving_variance - 1).max() > 0.05
    _assert_same(model, tmp_path / "bn.onnx", x[:10])


@pytest.mark.parametrize("opset", [13, 18, 20])
def test_other_opsets(tmp_path, opset):
    # Reductions take their axes as an attribute before opset 18 and as an input from then on.
    model = _randomize(_model((5, 4, 2), layers.Conv2D(3, 2, activation="gelu"),
                              layers.GlobalAveragePooling2D(keepdims=True), layers.Flatten(),
                              layers.Dense(2, activation="softmax")))
    _assert_same(model, tmp_path / "m.onnx", _inputs(model), opset=opset)
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == opset


def test_valid_model_with_symbolic_batch(tmp_path):
    model = _randomize(_model((6, 5, 2), layers.Conv2D(3, 3), layers.Flatten(),
                              layers.Dense(4)))
    path = tmp_path / "m.onnx"
    session = _session(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    graph = proto.graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["output"]

    def dims(value_info):
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]
    assert dims(graph.input[0]) == ["batch", 6, 5, 2]
    assert dims(graph.output[0]) == ["batch", 4]
    assert proto.producer_name == "shenjing"
    for n in (1, 7, 40):  # 40 > 32 also takes predict's batched path
        x = _inputs(model, n=n, seed=n)
        got = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=TOL, atol=TOL)


def test_keras3_export_writes_onnx(tmp_path):
    model = _randomize(_model((3,), layers.Dense(2)))
    path = str(tmp_path / "m.onnx")
    assert model.export(path) == path
    onnx.checker.check_model(onnx.load(path))


class _Custom(layers.Layer):
    """A layer the exporter does not know (it runs as a Flatten in the core)."""

    def _core_class_name(self):
        return "Flatten"


def test_unknown_layer_names_the_layer_and_writes_nothing(tmp_path):
    model = _model((3,), layers.Dense(2), _Custom(name="mystery"))
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="mystery"):
        model.export_onnx(str(path))
    assert not path.exists()


@pytest.mark.parametrize("opset", [12, 10_000, 17.0, True])
def test_bad_opset(tmp_path, opset):
    with pytest.raises(ValueError, match="opset"):
        _model((3,), layers.Dense(2)).export_onnx(str(tmp_path / "m.onnx"), opset=opset)


def test_missing_onnx_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes "import onnx" raise ImportError
    with pytest.raises(ImportError, match="pip install onnx"):
        _model((3,), layers.Dense(2)).export_onnx(str(tmp_path / "m.onnx"))
