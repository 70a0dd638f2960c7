"""DepthwiseConv1D/2D and SeparableConv1D/2D: PyTorch parity (Conv2d with groups = input
channels, then a 1x1 Conv2d) of outputs, input and weight gradients (the probe harness of
test_conv.py), finite differences, Keras's weights and configs, save/load, ONNX, errors."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import layers

from test_conv import TORCH_ACT, _forward_parity, _parity, _same_pads
from test_gradients import finite_difference_check

torch = pytest.importorskip("torch")
F = torch.nn.functional


def t_depthwise(x, kernel, bias, strides, padding, dilation):
    """Keras's depthwise conv on channels-last x (n, *spatial, C); kernel (*window, C, M)."""
    rank = x.dim() - 2
    c, m = kernel.shape[-2], kernel.shape[-1]
    xt = x.permute(0, rank + 1, *range(1, rank + 1))
    if padding == "same":
        pads = []
        for a in reversed(range(rank)):
            pads += list(_same_pads(xt.shape[2 + a], kernel.shape[a], strides[a], dilation[a]))
        xt = F.pad(xt, pads)
    w = kernel.permute(rank, rank + 1, *range(rank)).reshape(c * m, 1, *kernel.shape[:rank])
    conv = F.conv2d if rank == 2 else F.conv1d
    y = conv(xt, w, bias, stride=strides, dilation=dilation, groups=c)
    return y.permute(0, *range(2, rank + 2), 1)


def t_separable(x, dk, pk, bias, strides, padding, dilation):
    d = t_depthwise(x, dk, None, strides, padding, dilation)
    y = d @ pk.reshape(pk.shape[-2], pk.shape[-1])
    return y + bias if bias is not None else y


DW_CASES = [
    # (spatial, C, kernel, strides, padding, dilation, mult, activation, bias)
    ((7, 8), 3, 3, 1, "valid", 1, 1, "linear", True),
    ((7, 8), 3, 3, 1, "same", 1, 2, "relu", True),
    ((9, 8), 4, (3, 2), (2, 1), "same", 1, 3, "tanh", False),
    ((9, 9), 2, 3, 1, "valid", 2, 1, "sigmoid", True),
    ((8, 7), 5, (2, 3), 2, "valid", (1, 2), 2, "linear", True),
    ((6, 5), 3, 1, 1, "valid", 1, 4, "linear", True),
    ((10,), 3, 3, 1, "same", 1, 2, "relu", True),
    ((11,), 4, 4, 2, "valid", 1, 1, "tanh", True),
    ((12,), 2, 3, 1, "valid", 3, 3, "linear", False),
]


@pytest.mark.parametrize("case", DW_CASES, ids=[str(i) for i in range(len(DW_CASES))])
def test_depthwise_matches_torch(case):
    spatial, C, k, s, pad, d, mult, act, bias = case
    cls = layers.DepthwiseConv2D if len(spatial) == 2 else layers.DepthwiseConv1D
    layer = cls(k, strides=s, padding=pad, depth_multiplier=mult, dilation_rate=d,
                activation=act, use_bias=bias)

    def ref(x, p):
        return TORCH_ACT[act](t_depthwise(x, p(layer, "kernel"), p(layer, "bias"),
                                          layer.strides, pad, layer.dilation_rate))
    model, x, out = _parity([layer], spatial + (C,), ref, n=3, seed=hash(case) % 1000)
    _forward_parity(model, x, out)
    assert layer.kernel.shape == layer.kernel_size + (C, mult)
    assert [w.shape for w in layer.weights][1:] == ([(C * mult,)] if bias else [])


@pytest.mark.parametrize("case", DW_CASES, ids=[str(i) for i in range(len(DW_CASES))])
def test_separable_matches_torch(case):
    spatial, C, k, s, pad, d, mult, act, bias = case
    rank = len(spatial)
    cls = layers.SeparableConv2D if rank == 2 else layers.SeparableConv1D
    layer = cls(4, k, strides=s, padding=pad, depth_multiplier=mult, dilation_rate=d,
                activation=act, use_bias=bias)

    def ref(x, p):
        return TORCH_ACT[act](t_separable(x, p(layer, "depthwise_kernel"),
                                          p(layer, "pointwise_kernel"), p(layer, "bias"),
                                          layer.strides, pad, layer.dilation_rate))
    model, x, out = _parity([layer], spatial + (C,), ref, n=2, seed=hash(case) % 997)
    _forward_parity(model, x, out)
    names = [n for n, _, _ in layer._views]
    assert names == ["depthwise_kernel", "pointwise_kernel"] + (["bias"] if bias else [])
    assert layer.pointwise_kernel.shape == (1,) * rank + (C * mult, 4)


def test_softmax_output_fuses():
    # One output position per sample (the harness's cross-entropy sums a sample's rows).
    layer = layers.SeparableConv1D(3, 5, activation="softmax")

    def target(rng, n, shape):
        t = rng.uniform(size=(n,) + shape)
        return t / t.sum(-1, keepdims=True)

    def ref(x, p):
        return torch.softmax(t_separable(x, p(layer, "depthwise_kernel"),
                                         p(layer, "pointwise_kernel"), p(layer, "bias"),
                                         (1,), "valid", (1,)), dim=-1)
    _parity([layer], (5, 2), ref, loss="categorical_crossentropy", target=target)
    assert layer.output_shape == (None, 1, 3)


@pytest.mark.parametrize("make", [
    lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="tanh"),
    lambda: layers.SeparableConv2D(3, (2, 3), strides=(1, 2), depth_multiplier=2,
                                   activation="tanh"),
    lambda: layers.DepthwiseConv1D(2, dilation_rate=2, activation="sigmoid")])
def test_finite_differences(make):
    layer = make()
    shape = (5, 3) if isinstance(layer, layers.DepthwiseConv1D) else (5, 6, 2)
    model = shenjing.Sequential([layers.Input(shape), layer, layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(4)
    for lay in model.layers:
        for _, value, _ in lay._views:
            value[...] = rng.uniform(-0.6, 0.6, value.shape)
    finite_difference_check(model, rng.normal(size=(3,) + shape), rng.normal(size=(3, 2)))


def test_deterministic_for_any_thread_count():
    # Big enough that the loops run on several threads (small batches stay on one).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 16, 16, 8)).astype(np.float32)
    y = rng.normal(size=(16, 14, 14, 16)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        shenjing.utils.set_random_seed(1)
        model = shenjing.Sequential([layers.Input((16, 16, 8)), layers.Dense(8),
                                     layers.DepthwiseConv2D(3, depth_multiplier=2)])
        model.compile(optimizer="sgd", loss="mse")
        old = shenjing.get_num_threads()
        shenjing.set_num_threads(threads)
        try:
            loss = model._core.compute_gradients(x, y)
            out = model.predict(x, verbose=0)
        finally:
            shenjing.set_num_threads(old)
        results.append([loss, out] + [g.copy() for lay in model.layers for _, _, g in lay._views])
    for r in results[1:]:
        assert r[0] == results[0][0]
        for a, b in zip(results[0][1:], r[1:]):
            np.testing.assert_array_equal(a, b)


def test_configs_match_keras():
    cfg = layers.DepthwiseConv2D(3, name="d").get_config()
    for key, want in (("kernel_size", [3, 3]), ("strides", [1, 1]), ("padding", "valid"),
                      ("depth_multiplier", 1), ("data_format", "channels_last"),
                      ("dilation_rate", [1, 1]), ("use_bias", True),
                      ("depthwise_regularizer", None), ("activity_regularizer", None),
                      ("depthwise_constraint", None)):
        assert json.loads(json.dumps(cfg))[key] == want, key
    assert cfg["depthwise_initializer"]["class_name"] == "GlorotUniform"
    scfg = layers.SeparableConv2D(8, 3, name="s").get_config()
    keras_keys = {"name", "trainable", "dtype", "depth_multiplier", "filters", "kernel_size",
                  "strides", "padding", "data_format", "dilation_rate", "activation",
                  "use_bias", "depthwise_initializer", "pointwise_initializer",
                  "bias_initializer", "depthwise_regularizer", "pointwise_regularizer",
                  "bias_regularizer", "activity_regularizer", "depthwise_constraint",
                  "pointwise_constraint", "bias_constraint"}
    assert set(scfg) == keras_keys
    again = layers.SeparableConv2D.from_config(json.loads(json.dumps(scfg)))
    assert again.filters == 8 and again.kernel_size == (3, 3)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    (lambda: layers.DepthwiseConv2D(0), "kernel_size"),
    (lambda: layers.DepthwiseConv2D(3, padding="causal"), "padding"),
    (lambda: layers.DepthwiseConv2D(3, data_format="channels_first"), "data_format"),
    (lambda: layers.DepthwiseConv2D(3, depthwise_constraint="non_neg"), "constraint"),
    (lambda: layers.SeparableConv2D(0, 3), "filters"),
    (lambda: layers.SeparableConv1D(2, 3, activity_regularizer="l2"), "activity_regularizer")])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_input_names_layer():
    with pytest.raises(ValueError, match="dw.*DepthwiseConv2D.*larger than the input"):
        shenjing.Sequential([layers.Input((2, 2, 3)), layers.DepthwiseConv2D(3, name="dw")])
    with pytest.raises(ValueError, match="sc.*SeparableConv2D.*rank 4"):
        shenjing.Sequential([layers.Input((5, 3)), layers.SeparableConv2D(2, 3, name="sc")])


def test_save_load_native_and_onnx(tmp_path):
    rng = np.random.default_rng(0)
    model = shenjing.Sequential([
        layers.Input((8, 8, 3)),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu",
                               depthwise_regularizer="l2"),
        layers.SeparableConv2D(4, (2, 3), strides=2, activation="tanh"),
        layers.Reshape((-1, 4)), layers.DepthwiseConv1D(2), layers.SeparableConv1D(2, 2),
        layers.Flatten(), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(10, 8, 8, 3)).astype(np.float32)
    model.fit(x, rng.normal(size=(10, 3)), epochs=1, verbose=0)
    path = str(tmp_path / "d.safetensors")
    shenjing.saving.save_model(model, path)
    loaded = shenjing.saving.load_model(path)
    want = model.predict(x, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    core = shenjing._core.Model.load(path)
    out = np.empty(want.shape, np.float32)
    core.predict(x, out, 0, len(x))
    np.testing.assert_array_equal(out, want)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    onnx_path = str(tmp_path / "d.onnx")
    model.export_onnx(onnx_path)
    got = ort.InferenceSession(onnx_path).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
