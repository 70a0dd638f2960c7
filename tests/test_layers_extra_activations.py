"""ReLU, LeakyReLU, PReLU, ELU, Softmax, Rescaling and ActivityRegularization: PyTorch parity
of outputs, input gradients and weight gradients (the probe harness of test_conv.py) over the
ranks and axes they take, finite differences, Keras's configs and errors, save/load, ONNX."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import layers

from test_conv import _close, _forward_parity, _parity
from test_gradients import finite_difference_check

torch = pytest.importorskip("torch")
F = torch.nn.functional


def t_relu(x, max_value, slope, threshold):
    """Keras's activations.relu, written out."""
    y = torch.where(x > threshold, x, torch.zeros_like(x))
    if max_value is not None:
        y = torch.clamp(y, 0.0, max_value)
    return y - slope * torch.relu(threshold - x)


RELU_CASES = [(None, 0.0, 0.0), (6.0, 0.0, 0.0), (1.0, 0.1, 0.0), (None, 0.2, 0.5),
              (0.8, 0.3, 0.25)]


@pytest.mark.parametrize("case", RELU_CASES, ids=[str(c) for c in RELU_CASES])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 2)])
def test_relu_matches_torch(case, shape):
    m, s, t = case
    layer = layers.ReLU(max_value=m, negative_slope=s, threshold=t)
    model, x, out = _parity([layer], shape, lambda x, p: t_relu(x, m, s, t), n=3)
    _forward_parity(model, x, out)


def test_relu_keras_example():
    layer = layers.ReLU(max_value=10, negative_slope=0.5, threshold=0)
    got = layer(np.array([[-10, -5, 0.0, 5, 10]], np.float32))
    np.testing.assert_allclose(got, [[-5.0, -2.5, 0.0, 5.0, 10.0]])


@pytest.mark.parametrize("shape", [(6,), (3, 4)])
def test_leaky_relu_and_elu_match_torch(shape):
    lr = layers.LeakyReLU()
    assert lr.negative_slope == 0.3
    model, x, out = _parity([lr], shape, lambda x, p: F.leaky_relu(x, 0.3))
    _forward_parity(model, x, out)
    lr2 = layers.LeakyReLU(negative_slope=0.05)
    model, x, out = _parity([lr2], shape, lambda x, p: F.leaky_relu(x, 0.05))
    _forward_parity(model, x, out)
    for alpha in (1.0, 0.4):
        elu = layers.ELU(alpha=alpha)
        model, x, out = _parity([elu], shape, lambda x, p, a=alpha: F.elu(x, a))
        _forward_parity(model, x, out)


@pytest.mark.parametrize("shape,shared", [((5,), None), ((3, 4), None), ((3, 4), [1]),
                                          ((2, 3, 4), [1, 2]), ((2, 3, 4), 2)])
def test_prelu_matches_torch_with_alpha_gradient(shape, shared):
    pr = layers.PReLU(shared_axes=shared)

    def ref(x, p):
        a = p(pr, "alpha")
        return torch.where(x > 0, x, a * x)
    model, x, out = _parity([pr], shape, ref, n=3)
    _forward_parity(model, x, out)
    want = list(shape)
    for a in ([shared] if isinstance(shared, int) else shared or []):
        want[a - 1] = 1
    assert pr.alpha.shape == tuple(want)
    assert [w.shape for w in pr.weights] == [tuple(want)]
    np.testing.assert_array_equal(layers.PReLU()(np.ones((1, 2), np.float32)), [[1, 1]])


@pytest.mark.parametrize("shape,axis", [((5,), -1), ((3, 4), -1), ((3, 4), 1), ((2, 3, 4), 2),
                                        ((2, 3, 4), [2, 3]), ((2, 3, 4), (1, 2)),
                                        ((2, 3, 4), -3)])
def test_softmax_matches_torch(shape, axis):
    sm = layers.Softmax(axis=axis)
    axes = [axis] if isinstance(axis, int) else list(axis)
    rank = len(shape) + 1
    dims = sorted(a % rank for a in axes)

    def ref(x, p):
        return torch.exp(x - torch.logsumexp(x, dim=dims, keepdim=True))
    model, x, out = _parity([sm], shape, ref, n=3)
    _forward_parity(model, x, out)


_DENSE = {}


def _dense_ref(x, p):
    d = _DENSE["layer"]
    return x @ p(d, "kernel") + p(d, "bias")


@pytest.fixture(autouse=True)
def _reset_dense():
    _DENSE.clear()
    yield


def test_softmax_cce_fused_gradients():
    d = layers.Dense(4)
    _DENSE["layer"] = d

    def target(rng, n, shape):
        t = rng.uniform(size=(n,) + shape)
        return t / t.sum(-1, keepdims=True)
    _parity([d, layers.Softmax()], (5,), lambda x, p: torch.softmax(_dense_ref(x, p), dim=-1),
            loss="categorical_crossentropy", target=target)


@pytest.mark.parametrize("scale,offset,shape", [
    (1 / 255.0, 0.0, (3, 4)), (2.0, -1.0, (5,)), ([0.5, 2.0, -1.0], [0.1, 0.2, 0.3], (2, 3)),
    (np.array([[1.0], [2.0]]), 0.5, (2, 3)), (np.array([1.5, -0.5]), np.array([1.0, 2.0]),
                                               (3, 2, 2))])
def test_rescaling_matches_torch(scale, offset, shape):
    r = layers.Rescaling(scale, offset)
    s = torch.tensor(np.asarray(scale, np.float32), dtype=torch.float64)
    o = torch.tensor(np.asarray(offset, np.float32), dtype=torch.float64)
    model, x, out = _parity([r], shape, lambda x, p: x * s + o)
    _forward_parity(model, x, out)
    cfg = json.loads(json.dumps(r.get_config()))
    r2 = layers.Rescaling.from_config(cfg)
    np.testing.assert_array_equal(np.asarray(r2.scale, np.float32),
                                  np.asarray(scale, np.float32))


def test_rescaling_broadcast_error_names_layer():
    with pytest.raises(ValueError, match=r"rs.*Rescaling.*\(2,\) does not broadcast"):
        shenjing.Sequential([layers.Input((2, 3)), layers.Rescaling([1.0, 2.0], name="rs")])


def test_activity_regularization_loss_and_gradient():
    l1, l2 = 0.01, 0.02
    d = layers.Dense(3)
    _DENSE["layer"] = d
    ar = layers.ActivityRegularization(l1=l1, l2=l2)
    n = 4
    rng = np.random.default_rng(1)
    P = 5
    model = shenjing.Sequential([layers.Input((P,)), layers.Dense(P), d, ar])
    model.compile(optimizer="sgd", loss="mse")
    probe = model.layers[0]
    probe.kernel[...] = np.eye(P)
    probe.bias[...] = 0.0
    d.kernel[...] = rng.normal(size=d.kernel.shape)
    d.bias[...] = rng.normal(size=3)
    x = rng.normal(size=(n, P)).astype(np.float32)
    y = rng.normal(size=(n, 3)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    k = torch.tensor(d.kernel, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(d.bias, dtype=torch.float64, requires_grad=True)
    h = xt @ k + b
    loss = ((h - torch.tensor(y, dtype=torch.float64)) ** 2).mean() + \
        (l1 * h.abs().sum() + l2 * (h ** 2).sum()) / n
    loss.backward()
    got = model._core.compute_gradients(x, y)
    assert got == pytest.approx(loss.item(), rel=1e-5)
    _close(d._views[0][2], k.grad.numpy(), "kernel gradient")
    _close(d._views[1][2], b.grad.numpy(), "bias gradient")
    _close(probe._views[1][2], xt.grad.numpy().sum(0), "dL/dx")
    # evaluate adds the penalty too (Keras's compute_loss sums self.losses); predict is the
    # identity.
    assert model.evaluate(x, y, batch_size=n, verbose=0) == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), h.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    finite_difference_check(model, x, y)


@pytest.mark.parametrize("make", [
    lambda: [layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.3)],
    lambda: [layers.LeakyReLU(0.2)], lambda: [layers.ELU(0.7)],
    lambda: [layers.PReLU(shared_axes=[1])], lambda: [layers.Softmax(axis=1)],
    lambda: [layers.Rescaling([1.0, -2.0, 0.5, 3.0], 0.25)],
    lambda: [layers.ActivityRegularization(0.01, 0.03)]])
def test_finite_differences(make):
    rng = np.random.default_rng(3)
    model = shenjing.Sequential([layers.Input((3, 4)), layers.Dense(4)] + make() +
                                [layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    for layer in model.layers:
        for name, value, _ in layer._views:
            value[...] = rng.uniform(-0.6, 0.6, value.shape)
    x = rng.normal(size=(5, 3, 4))
    # Keep pre-activations away from the kinks (0, threshold, max_value) by a margin.
    y = rng.normal(size=(5, 2))
    finite_difference_check(model, x, y)


def test_configs_match_keras():
    assert layers.ReLU().get_config()["max_value"] is None
    cfg = layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5, name="r").get_config()
    assert {k: cfg[k] for k in ("max_value", "negative_slope", "threshold")} == \
        {"max_value": 6.0, "negative_slope": 0.1, "threshold": 0.5}
    assert layers.LeakyReLU().get_config()["negative_slope"] == 0.3
    p = layers.PReLU().get_config()
    assert p["alpha_initializer"]["class_name"] == "Zeros"
    assert p["shared_axes"] is None and p["alpha_regularizer"] is None
    assert layers.PReLU(shared_axes=2).get_config()["shared_axes"] == [2]
    assert layers.Softmax().get_config()["axis"] == -1
    assert layers.ActivityRegularization(0.1).get_config()["l1"] == 0.1
    with pytest.warns(UserWarning, match="alpha"):
        assert layers.LeakyReLU(alpha=0.1).negative_slope == 0.1
    with pytest.warns(UserWarning, match="alpha"):  # a Keras 2 config
        assert layers.LeakyReLU.from_config({"name": "l", "alpha": 0.2}).negative_slope == 0.2
    # Keras's written configs load (ELU without alpha: Keras's 1.0).
    elu = layers.ELU.from_config({"name": "e", "trainable": True, "dtype": "float32"})
    assert elu.alpha == 1.0


@pytest.mark.parametrize("make,match", [
    (lambda: layers.ReLU(max_value=-1), "max_value"),
    (lambda: layers.ReLU(negative_slope=-0.1), "negative_slope"),
    (lambda: layers.ReLU(threshold=None), "threshold"),
    (lambda: layers.LeakyReLU(negative_slope=-1), "negative_slope"),
    (lambda: layers.ELU(alpha="x"), "ELU"),
    (lambda: layers.PReLU(shared_axes=[0]), "PReLU"),
    (lambda: layers.PReLU(alpha_constraint="non_neg"), "PReLU"),
    (lambda: layers.Softmax(axis="x"), "Softmax"),
    (lambda: layers.Rescaling("a"), "Rescaling"),
    (lambda: layers.Rescaling(np.nan), "Rescaling"),
    (lambda: layers.ActivityRegularization(l1=-1), "ActivityRegularization")])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_axes_at_build():
    with pytest.raises(ValueError, match="Softmax.*batch axis"):
        shenjing.Sequential([layers.Input((3,)), layers.Softmax(axis=0)])
    with pytest.raises(ValueError, match="Softmax.*adjacent"):
        shenjing.Sequential([layers.Input((2, 3, 4)), layers.Softmax(axis=[1, 3])])
    with pytest.raises(ValueError, match="PReLU.*shared_axes"):
        shenjing.Sequential([layers.Input((3,)), layers.PReLU(shared_axes=[2])])


def test_save_load_and_native_config(tmp_path):
    rng = np.random.default_rng(0)
    model = shenjing.Sequential([
        layers.Input((4, 3)), layers.Rescaling(np.array([0.5, 1.0, 2.0]), -0.1),
        layers.Dense(5), layers.PReLU(shared_axes=[1]), layers.ReLU(max_value=3.0),
        layers.LeakyReLU(0.1), layers.ELU(0.5), layers.ActivityRegularization(0.01, 0.01),
        layers.Softmax(axis=1)])
    model.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(8, 4, 3)).astype(np.float32)
    y = rng.uniform(size=(8, 4, 5)).astype(np.float32)
    model.layers[2].alpha[...] = rng.uniform(0.1, 0.3, model.layers[2].alpha.shape)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = str(tmp_path / "m.safetensors")
    shenjing.saving.save_model(model, path)
    loaded = shenjing.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.layers[5].alpha == 0.5
    np.testing.assert_array_equal(loaded.layers[2].alpha, model.layers[2].alpha)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    # The same config through the core's own reader (Model::load, as a native program).
    core = shenjing._core.Model.load(path)
    out = np.empty((8, 4, 5), np.float32)
    core.predict(x, out, 0, len(x))
    np.testing.assert_array_equal(out, model.predict(x, verbose=0))


def test_onnx_export_matches_predict(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(0)
    model = shenjing.Sequential([
        layers.Input((4, 3)), layers.Rescaling([0.5, 1.0, 2.0], -0.1),
        layers.Dense(6), layers.PReLU(shared_axes=[1]),
        layers.ReLU(max_value=0.8, negative_slope=0.2, threshold=0.1), layers.ReLU(),
        layers.Dense(6), layers.LeakyReLU(0.1), layers.ELU(0.5),
        layers.ActivityRegularization(0.01), layers.Softmax(axis=1),
        layers.Softmax(axis=[1, 2]), layers.Softmax()])
    model.layers[2].alpha[...] = rng.uniform(0.1, 0.3, model.layers[2].alpha.shape)
    x = rng.normal(size=(5, 4, 3)).astype(np.float32)
    path = str(tmp_path / "m.onnx")
    model.export_onnx(path)
    sess = ort.InferenceSession(path)
    got = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
