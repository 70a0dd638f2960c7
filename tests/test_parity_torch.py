"""Parity with PyTorch: same weights in, same outputs, loss, gradients and Adam step out.

PyTorch runs in float64 on the float32 weights and inputs shenjing holds, so it is the exact
reference and the tolerance (1e-5 relative) measures shenjing's float32 error alone.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import shenjing  # noqa: E402
from shenjing import layers, losses, optimizers  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
TORCH_ACT = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
             "gelu": lambda z: F.gelu(z, approximate="none"), "linear": lambda z: z,
             "softmax": lambda z: torch.softmax(z, dim=-1)}
HIDDEN = [("relu", 16), ("tanh", 12), ("sigmoid", 10), ("gelu", 8)]


def _build(out_units, out_activation, loss, optimizer="sgd", seed=0, n_in=6):
    model = shenjing.Sequential([layers.Input((n_in,))])
    for act, units in HIDDEN:
        model.add(layers.Dense(units, activation=act))
    model.add(layers.Dense(out_units, activation=out_activation))
    model.compile(optimizer=optimizer, loss=loss)
    rng = np.random.default_rng(seed)
    # Glorot-like scale plus non-zero biases so every path carries signal.
    model.set_weights([rng.normal(0, 1.0 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.3,
                                  w.shape) for w in model.get_weights()])
    return model


def _torch_params(model):
    return [torch.tensor(w, dtype=torch.float64, requires_grad=True)
            for w in model.get_weights()]


def _torch_forward(model, params, x):
    h = torch.tensor(x, dtype=torch.float64)
    acts = [act for act, _ in HIDDEN] + [model.layers[-1].activation]
    for i, act in enumerate(acts):
        h = TORCH_ACT[act](h @ params[2 * i] + params[2 * i + 1])
    return h


def _torch_loss(kind, out, y):
    yt = torch.tensor(y, dtype=torch.float64)
    if kind == "mse":
        return F.mse_loss(out, yt)
    if kind == "bce":
        return F.binary_cross_entropy(out, yt)
    if kind == "cce":
        return -(yt * torch.log(out)).sum(dim=1).mean()
    if kind == "scce":
        return F.nll_loss(torch.log(out), yt.long())
    raise AssertionError(kind)


CASES = {
    # name: (output units, output activation, shenjing loss, torch loss kind, target maker)
    "softmax_cce": (5, "softmax", "categorical_crossentropy", "cce",
                    lambda rng, n: np.eye(5)[rng.integers(0, 5, n)]),
    "softmax_sparse_cce": (5, "softmax", "sparse_categorical_crossentropy", "scce",
                           lambda rng, n: rng.integers(0, 5, n).astype(np.float64)),
    "linear_mse": (3, "linear", "mse", "mse", lambda rng, n: rng.normal(size=(n, 3))),
    "sigmoid_bce": (3, "sigmoid", "binary_crossentropy", "bce",
                    lambda rng, n: rng.integers(0, 2, (n, 3)).astype(np.float64)),
}


def _case(name, optimizer="sgd", n=9, seed=0):
    units, act, loss, kind, target = CASES[name]
    model = _build(units, act, loss, optimizer, seed=seed)
    rng = np.random.default_rng(seed + 100)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = target(rng, n).astype(np.float32)
    return model, kind, x, y


@pytest.mark.parametrize("name", list(CASES))
def test_forward_loss_and_gradients_match_torch(name):
    model, kind, x, y = _case(name)
    params = _torch_params(model)
    out = _torch_forward(model, params, x)
    np.testing.assert_allclose(model.predict(x, verbose=0), out.detach().numpy(),
                               rtol=RTOL, atol=ATOL)
    loss = _torch_loss(kind, out, y)
    loss.backward()
    got_loss = model._core.compute_gradients(x, y)
    assert got_loss == pytest.approx(loss.item(), rel=RTOL)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(loss.item(), rel=RTOL)
    grads = [g for layer in model.layers for _, _, g in layer._views]
    assert len(grads) == len(params) == 10
    for i, (g, p) in enumerate(zip(grads, params)):
        ref = p.grad.numpy()
        assert np.abs(ref).max() > 1e-4, f"gradient {i} carries no signal"
        np.testing.assert_allclose(g, ref, rtol=RTOL, atol=ATOL * np.abs(ref).max() + 1e-8,
                                   err_msg=f"{name}: gradient {i} ({g.shape})")


@pytest.mark.parametrize("name", ["softmax_cce", "linear_mse", "sigmoid_bce"])
def test_one_adam_step_matches_torch(name):
    """Keras: w -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps). PyTorch divides by
    sqrt(v/(1-b2^t)) + eps instead, so Keras's eps equals PyTorch's eps*sqrt(1-b2^t):
    at step 1, torch_eps = keras_eps / sqrt(1 - beta_2) reproduces the Keras step exactly."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    model, kind, x, y = _case(name, optimizers.Adam(lr, b1, b2, eps), seed=1)
    params = _torch_params(model)
    opt = torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=eps / np.sqrt(1 - b2))
    _torch_loss(kind, _torch_forward(model, params, x), y).backward()
    opt.step()
    before = model.get_weights()
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    for i, (w0, w1, p) in enumerate(zip(before, model.get_weights(), params)):
        ref = p.detach().numpy()
        # Compare the steps themselves (each about lr in size), not just the weights.
        np.testing.assert_allclose(w1 - w0, ref - w0, rtol=1e-4, atol=1e-7,
                                   err_msg=f"{name}: weight {i}")


def test_three_adam_steps_match_torch_with_tiny_epsilon():
    """With eps negligible next to sqrt(v) the two placements agree at every step."""
    lr = 0.01
    model, kind, x, y = _case("softmax_cce", optimizers.Adam(lr, epsilon=1e-12), seed=2)
    params = _torch_params(model)
    opt = torch.optim.Adam(params, lr=lr, eps=1e-12)
    for _ in range(3):
        opt.zero_grad()
        _torch_loss(kind, _torch_forward(model, params, x), y).backward()
        opt.step()
    before = model.get_weights()
    model.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)
    for i, (w0, w1, p) in enumerate(zip(before, model.get_weights(), params)):
        np.testing.assert_allclose(w1 - w0, p.detach().numpy() - w0, rtol=5e-4, atol=1e-6,
                                   err_msg=f"weight {i}")


def test_logits_losses_match_torch():
    """from_logits=True cross-entropies against torch's logits losses."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 6)).astype(np.float32)
    for loss, torch_loss, y in [
        (losses.CategoricalCrossentropy(from_logits=True),
         lambda z, t: F.cross_entropy(z, t), rng.dirichlet(np.ones(4), 7)),
        (losses.SparseCategoricalCrossentropy(from_logits=True),
         lambda z, t: F.cross_entropy(z, t.long()), rng.integers(0, 4, 7).astype(float)),
        (losses.BinaryCrossentropy(from_logits=True),
         F.binary_cross_entropy_with_logits, rng.random((7, 4))),
    ]:
        model = _build(4, "linear", loss, seed=4)
        y = y.astype(np.float32)
        params = _torch_params(model)
        ref = torch_loss(_torch_forward(model, params, x), torch.tensor(y, dtype=torch.float64))
        ref.backward()
        assert model._core.compute_gradients(x, y) == pytest.approx(ref.item(), rel=RTOL)
        grads = [g for layer in model.layers for _, _, g in layer._views]
        for g, p in zip(grads, params):
            r = p.grad.numpy()
            np.testing.assert_allclose(g, r, rtol=RTOL, atol=ATOL * np.abs(r).max() + 1e-8)


@pytest.mark.parametrize("batch,n_in,hidden", [(70, 300, 130), (33, 17, 257)])
def test_larger_shapes_match_torch(batch, n_in, hidden):
    """Shapes past the GEMM's register and cache blocks, with ragged edges."""
    rng = np.random.default_rng(batch)
    model = shenjing.Sequential([layers.Input((n_in,)), layers.Dense(hidden, "relu"),
                                 layers.Dense(10, "softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.set_weights([rng.normal(0, 1 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.1, w.shape)
                       for w in model.get_weights()])
    x = rng.normal(size=(batch, n_in)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.float32)
    params = _torch_params(model)
    h = torch.relu(torch.tensor(x, dtype=torch.float64) @ params[0] + params[1])
    logits = h @ params[2] + params[3]
    loss = F.cross_entropy(logits, torch.tensor(y).long())
    loss.backward()
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               torch.softmax(logits, -1).detach().numpy(), rtol=RTOL, atol=ATOL)
    assert model._core.compute_gradients(x, y) == pytest.approx(loss.item(), rel=RTOL)
    grads = [g for layer in model.layers for _, _, g in layer._views]
    for i, (g, p) in enumerate(zip(grads, params)):
        r = p.grad.numpy()
        np.testing.assert_allclose(g, r, rtol=RTOL, atol=ATOL * np.abs(r).max() + 1e-8,
                                   err_msg=f"gradient {i}")
