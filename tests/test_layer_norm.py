"""LayerNormalization against PyTorch (forward, input gradient, gamma and beta gradients, a
training step) and its ONNX export in onnxruntime. The torch-free tests (arguments, configs,
finite differences, files, thread counts) are in test_layer_norm_api.py.

PyTorch runs in float64 on the same float32 inputs and weights: F.layer_norm over the
normalized shape for the standard form, and Keras's rms_scaling formula written out
(x * rsqrt(var + eps) * gamma, var the biased variance about the mean).
"""
import json
import warnings

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers

from test_conv import _forward_parity, _parity

torch = pytest.importorskip("torch")
F = torch.nn.functional


def t_layer_norm(x, k, gamma, beta, eps, rms=False):
    """Keras's LayerNormalization over the last k axes of x (torch tensors)."""
    shape = tuple(x.shape[x.dim() - k:])
    if not rms:
        return F.layer_norm(x, shape, gamma, beta, eps)
    dims = tuple(range(x.dim() - k, x.dim()))
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    return x * torch.rsqrt(var + eps) * gamma


def _canonical(axis, rank):
    axes = [axis] if isinstance(axis, int) else axis
    return sorted({a % (rank + 1) for a in axes})


# (per-sample shape, axis, config): full ranks 2 to 4.
CASES = [
    ((7,), -1, {}), ((7,), 1, {"epsilon": 1e-5}), ((1,), -1, {}),
    ((5, 6), -1, {}), ((5, 6), [-2, -1], {}), ((5, 6), [1, 2], {"center": False}),
    ((5, 6), -1, {"scale": False}), ((5, 6), -1, {"center": False, "scale": False}),
    ((5, 6), -1, {"rms_scaling": True}), ((5, 6), [-2, -1], {"rms_scaling": True}),
    ((3, 4, 5), -1, {}), ((3, 4, 5), [-2, -1], {"epsilon": 0.1}), ((3, 4, 5), [1, 2, 3], {}),
    ((3, 4, 5), [3, 2], {"scale": False}), ((3, 4, 5), [2, 3], {"rms_scaling": True}),
    ((2, 130), -1, {}),  # longer than a vector register several times over
]


def _run(shape, axis, config, x, dy, params):
    spec = json.dumps({"class_name": "LayerNormalization", "config": {"axis": axis, **config}})
    return _core._run_layer(spec, [list(shape)], [x], dy, True, params)


@pytest.mark.parametrize("mean", [0.0, 300.0])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_forward_and_gradients_match_torch(case, mean):
    shape, axis, config = case
    rms = config.get("rms_scaling", False)
    rng = np.random.default_rng(len(shape) * 31 + len(CASES))
    n = 4
    k = len(_canonical(axis, len(shape)))
    wshape = shape[len(shape) - k:]
    names = (["gamma"] if config.get("scale", True) or rms else []) + \
        (["beta"] if config.get("center", True) and not rms else [])
    params = [rng.normal(1.0 if nm == "gamma" else 0.0, 0.5, wshape).astype(np.float32)
              for nm in names]
    x = (mean + 2 * rng.normal(size=(n,) + shape)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    y, dxs, grads = _run(shape, axis, config, x, dy, params)

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    pt = {nm: torch.tensor(p, dtype=torch.float64, requires_grad=True)
          for nm, p in zip(names, params)}
    eps = config.get("epsilon", 1e-3)
    yt = t_layer_norm(xt, k, pt.get("gamma"), pt.get("beta"), float(np.float32(eps)), rms)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    # The output scale is gamma (plus beta) whatever the mean: absolute tolerances suit it.
    tol = 2e-6 * (1 + np.abs(yt.detach().numpy()).max())
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=tol)
    dx = xt.grad.numpy()
    np.testing.assert_allclose(dxs[0], dx, rtol=1e-5, atol=2e-6 * (1 + np.abs(dx).max()))
    assert len(grads) == len(names)
    for nm, g in zip(names, grads):
        want = pt[nm].grad.numpy()
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=2e-6 * (1 + np.abs(want).max()),
                                   err_msg=nm)


@pytest.mark.parametrize("shape, axis, kwargs", [
    ((4, 6), -1, {}), ((3, 5), [-2, -1], {"center": False}), ((2, 3, 4), [1, 2, 3], {}),
    ((5, 4), -1, {"rms_scaling": True})])
def test_in_a_model_matches_torch(shape, axis, kwargs):
    """The parity harness of test_conv.py: predict, the loss, dL/dx and the weight gradients
    of a model probe -> LayerNormalization."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ln = layers.LayerNormalization(axis=axis, **kwargs)
    k = len(_canonical(axis, len(shape)))
    rms = kwargs.get("rms_scaling", False)

    def ref(x, p):
        return t_layer_norm(x, k, p(ln, "gamma"), p(ln, "beta"), float(np.float32(1e-3)), rms)

    model, x, out = _parity([ln], shape, ref, n=3, seed=len(shape))
    _forward_parity(model, x, out)


def test_one_sgd_step_on_sequences_matches_torch():
    """Sequential fit on (batch, T, F) data: Dense -> LayerNormalization -> Dense, one SGD step
    of the whole batch, every weight after the step against torch's."""
    T, Fi, H, O, n, lr = 6, 5, 8, 3, 16, 0.1
    model = shenjing.Sequential([layers.Input((T, Fi)), layers.Dense(H, activation="relu"),
                                 layers.LayerNormalization(epsilon=1e-2),
                                 layers.Dense(O)])
    model.compile(optimizer=shenjing.optimizers.SGD(learning_rate=lr), loss="mse")
    rng = np.random.default_rng(7)
    ln = model.layers[1]
    ln.set_weights([rng.uniform(0.5, 1.5, (H,)), rng.normal(0, 0.3, (H,))])
    x = rng.normal(size=(n, T, Fi)).astype(np.float32)
    y = rng.normal(size=(n, T, O)).astype(np.float32)
    w0 = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in model.get_weights()]
    k1, b1, gamma, beta, k2, b2 = w0
    h = torch.relu(torch.tensor(x, dtype=torch.float64) @ k1 + b1)
    out = F.layer_norm(h, (H,), gamma, beta, float(np.float32(1e-2))) @ k2 + b2
    loss = ((out - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
    loss.backward()
    hist = model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(loss.item(), rel=1e-5)
    for got, w in zip(model.get_weights(), w0):
        want = (w - lr * w.grad).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---- ONNX -------------------------------------------------------------------------------------

ONNX_MODELS = {
    "last": ((6, 8), lambda: [layers.Dense(8), layers.LayerNormalization(epsilon=1e-5)]),
    "two_axes": ((4, 5), lambda: [layers.LayerNormalization(axis=[-2, -1]), layers.Dense(3)]),
    "rank4": ((3, 4, 2), lambda: [layers.LayerNormalization(axis=[1, 2, 3], center=False)]),
    "no_params": ((7,), lambda: [layers.LayerNormalization(center=False, scale=False)]),
    "rms": ((4, 6), lambda: [layers.LayerNormalization(rms_scaling=True)]),
}


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
def test_onnx_export_matches_predict(tmp_path, name, opset):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    shape, make = ONNX_MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = shenjing.Sequential([layers.Input(shape), *make()])
    rng = np.random.default_rng(5)
    for layer in model.layers:
        layer.set_weights([rng.normal(0.8, 0.4, w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    x = (3 + 2 * rng.normal(size=(5,) + shape)).astype(np.float32)
    path = tmp_path / "ln.onnx"
    assert model.export_onnx(str(path), opset=opset) == str(path)
    import onnx
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    ln = next(l for l in model.layers if isinstance(l, layers.LayerNormalization))
    assert ("LayerNormalization" in ops) == (opset >= 17 and not ln.rms_scaling)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
