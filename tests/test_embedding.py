"""Embedding against PyTorch (torch.nn.Embedding with the same table): the lookup and its
table gradient for ids of every rank through ``_core._run_layer``, whole training steps
(SGD, which updates only the rows used, and the dense rules: SGD with momentum, Adam), a
shared Embedding called twice in a functional model, and the ONNX export (Gather) in
onnxruntime. The torch-free tests are in test_embedding_api.py."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers, optimizers

torch = pytest.importorskip("torch")
F = torch.nn.functional

V, D = 13, 5


def _table(seed=0, v=V, d=D):
    return np.random.default_rng(seed).normal(size=(v, d)).astype(np.float32)


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (2, 2, 3, 2)],
                         ids=["ids_rank1", "ids_rank2", "ids_rank3", "ids_rank4"])
def test_lookup_and_table_gradient_match_torch(shape):
    rng = np.random.default_rng(len(shape))
    ids = rng.integers(0, V, shape)
    ids.flat[:3] = 4  # a row used several times: its gradients add up
    table = _table()
    dy = rng.normal(size=shape + (D,)).astype(np.float32)
    spec = json.dumps({"class_name": "Embedding", "config": {"name": "e", "input_dim": V,
                                                             "output_dim": D}})
    y, dxs, grads = _core._run_layer(spec, [list(shape[1:])], [ids.astype(np.float32)], dy,
                                     True, [table])
    emb = torch.nn.Embedding(V, D)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(table))
    out = emb(torch.tensor(ids))
    (out * torch.tensor(dy)).sum().backward()
    np.testing.assert_array_equal(y, out.detach().numpy())
    np.testing.assert_allclose(grads[0], emb.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(dxs[0], 0.0)


# -- training steps ---------------------------------------------------------------------------------

T = 6

OPTIMIZERS = {
    # (shenjing optimizer, torch optimizer on the params, torch embedding sparse?)
    "sgd": (lambda: optimizers.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1), False),
    "sgd_torch_sparse": (lambda: optimizers.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1),
                         True),
    "sgd_momentum": (lambda: optimizers.SGD(0.1, momentum=0.9),
                     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), False),
    "adam": (lambda: optimizers.Adam(0.01), lambda p: _KerasAdam(p, lr=0.01), False),
}


class _KerasAdam(torch.optim.Optimizer):
    """Keras 3's Adam: torch.optim.Adam adds eps to sqrt(v_hat), Keras to sqrt(v), which
    differs by 1e-5 here where gradients are small. Every row moves at every step (its
    moments decay), the dense semantics shenjing keeps for Adam."""

    def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-7):
        super().__init__(params, dict(lr=lr, b1=b1, b2=b2, eps=eps))
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        for group in self.param_groups:
            lr, b1, b2, eps = group["lr"], group["b1"], group["b2"], group["eps"]
            alpha = lr * (1 - b2 ** self.t) ** 0.5 / (1 - b1 ** self.t)
            for p in group["params"]:
                st = self.state[p]
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                st["m"] += (p.grad - st["m"]) * (1 - b1)
                st["v"] += (p.grad * p.grad - st["v"]) * (1 - b2)
                p -= alpha * st["m"] / (st["v"].sqrt() + eps)


class _TorchNet(torch.nn.Module):
    """Embedding -> mean over the ids -> Linear, at one or two inputs sharing the table."""

    def __init__(self, table, kernel, bias, sparse):
        super().__init__()
        self.emb = torch.nn.Embedding(*table.shape, sparse=sparse)
        self.fc = torch.nn.Linear(*kernel.shape)
        with torch.no_grad():
            self.emb.weight.copy_(torch.tensor(table))
            self.fc.weight.copy_(torch.tensor(kernel.T))
            self.fc.bias.copy_(torch.tensor(bias))

    def forward(self, *xs):
        return self.fc(torch.cat([self.emb(x).mean(dim=1) for x in xs], dim=1))


def _train_both(model, emb, xs_steps, y_steps, opt):
    """The same steps in shenjing (one batch per fit) and torch; returns the torch net."""
    make_ours, make_torch, sparse = OPTIMIZERS[opt]
    model.compile(optimizer=make_ours(), loss="mse")
    rng = np.random.default_rng(0)
    emb.embeddings[...] = _table()
    dense = model.layers[-1]
    dense.kernel[...] = rng.normal(size=dense.kernel.shape)
    dense.bias[...] = rng.normal(size=dense.bias.shape)
    net = _TorchNet(emb.embeddings, dense.kernel, dense.bias, sparse)
    if sparse:  # torch's sparse gradients need an optimizer per kind of gradient
        optims = [make_torch([net.emb.weight]), make_torch(list(net.fc.parameters()))]
    else:
        optims = [make_torch(list(net.parameters()))]
    for xs, y in zip(xs_steps, y_steps):
        model.fit(xs if len(xs) > 1 else xs[0], y, batch_size=len(y), epochs=1, shuffle=False,
                  verbose=0)
        for o in optims:
            o.zero_grad()
        loss = F.mse_loss(net(*[torch.tensor(x, dtype=torch.long) for x in xs]),
                          torch.tensor(y))
        loss.backward()
        for o in optims:
            o.step()
    np.testing.assert_allclose(emb.embeddings, net.emb.weight.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(dense.kernel, net.fc.weight.detach().numpy().T, rtol=1e-5,
                               atol=1e-6)
    return net


def _steps(inputs, n=8, steps=3, seed=1):
    rng = np.random.default_rng(seed)
    # Each step draws from a different part of the vocabulary (plus row 0 every time), so
    # the previous step's gradient rows must be cleared and untouched rows stay put.
    xs = [[np.concatenate([rng.integers(4 * s, 4 * s + 5, (n, T - 1)), np.zeros((n, 1))],
                          axis=1).astype(np.int32) for _ in range(inputs)] for s in range(steps)]
    return xs, [rng.normal(size=(n, 1)).astype(np.float32) for _ in range(steps)]


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_training_steps_match_torch(opt):
    shenjing.utils.set_random_seed(0)
    emb = layers.Embedding(V, D)
    model = shenjing.Sequential([layers.Input((T,), dtype="int32"), emb,
                                 layers.GlobalAveragePooling1D(), layers.Dense(1)])
    xs, ys = _steps(1)
    _train_both(model, emb, xs, ys, opt)


@pytest.mark.parametrize("opt", ["sgd", "sgd_momentum", "adam"])
def test_shared_embedding_at_two_calls_matches_torch(opt):
    shenjing.utils.set_random_seed(0)
    a, b = layers.Input((T,), dtype="int32"), layers.Input((T,), dtype="int32")
    emb = layers.Embedding(V, D)
    pool = layers.GlobalAveragePooling1D()
    out = layers.Dense(1)(layers.Concatenate()([pool(emb(a)), pool(emb(b))]))
    model = shenjing.Model([a, b], out)
    xs, ys = _steps(2)
    for step in xs:  # rows used at both calls, in the same batch
        step[1][:, 1] = step[0][:, 2]
    _train_both(model, emb, xs, ys, opt)


# -- ONNX -------------------------------------------------------------------------------------------

def _onnx_session(model, path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model.export_onnx(str(path))
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the refused ids below are expected errors, not news
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_onnx_export_gathers_like_predict(tmp_path):
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((4, 3), dtype="int32"), layers.Embedding(V, D),
                                 layers.Reshape((12, D)), layers.GlobalAveragePooling1D(),
                                 layers.Dense(2, activation="tanh")])
    model.layers[0].embeddings[...] = _table()
    sess = _onnx_session(model, tmp_path / "emb.onnx")
    x = np.random.default_rng(0).integers(0, V, (6, 4, 3)).astype(np.float32)
    x[0, 0, :3] = [2.7, -0.5, 12.9]  # truncated toward zero, as predict does
    got = sess.run(["output"], {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    for bad in (-1.0, -3.0, float(V)):  # refused as predict refuses them, never wrapped around
        xb = x.copy()
        xb[1, 2, 0] = bad
        with pytest.raises(Exception, match="out of bounds|out of range|indices"):
            sess.run(["output"], {"input": xb})


def test_onnx_export_of_a_shared_embedding(tmp_path):
    shenjing.utils.set_random_seed(0)
    a, b = layers.Input((T,), dtype="int32", name="a"), layers.Input((T,), dtype="int32",
                                                                    name="b")
    emb = layers.Embedding(V, D)
    out = layers.Dense(1, name="out")(layers.Concatenate()([layers.Flatten()(emb(a)),
                                                            layers.Flatten()(emb(b))]))
    model = shenjing.Model([a, b], out)
    emb.embeddings[...] = _table()
    path = tmp_path / "shared.onnx"
    sess = _onnx_session(model, path)
    import onnx
    assert len([i for i in onnx.load(str(path)).graph.initializer
                if i.name.endswith("embeddings")]) == 1  # the table is stored once
    rng = np.random.default_rng(0)
    xa, xb = (rng.integers(0, V, (5, T)).astype(np.float32) for _ in range(2))
    got = sess.run(None, {"a": xa, "b": xb})[0]
    np.testing.assert_allclose(got, model.predict([xa, xb], verbose=0), rtol=1e-5, atol=1e-6)
