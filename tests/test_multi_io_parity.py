"""Parity with PyTorch for a branching model with 3 inputs and 2 outputs (the ticket-triage
shape of test_multi_io.py): same weights in, same outputs, per-output losses and weighted
total loss, and the same weights after one SGD step on the weighted total.

PyTorch runs in float64 on the float32 weights and inputs shenjing holds, so it is the exact
reference and the tolerance (1e-5 relative) measures shenjing's float32 error alone.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import shenjing  # noqa: E402
from shenjing import layers  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
N, LR = 24, 0.1
WEIGHTS = {"priority": 0.7, "department": 0.3}
DENSE = ["title_dense", "body_dense", "priority", "department"]


def _model():
    title, body, tags = (layers.Input((n,), name=k) for n, k in
                         ((7, "title"), (9, "body"), (5, "tags")))
    t = layers.Dense(6, activation="tanh", name="title_dense")(title)
    b = layers.Dense(4, activation="relu", name="body_dense")(body)
    h = layers.Concatenate()([t, b, tags])
    model = shenjing.Model([title, body, tags],
                           [layers.Dense(1, activation="sigmoid", name="priority")(h),
                            layers.Dense(4, activation="softmax", name="department")(h)])
    rng = np.random.default_rng(0)
    for name in DENSE:  # non-zero biases so every path carries signal
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(0, 1 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.3,
                                      w.shape).astype(np.float32) for w in layer.get_weights()])
    model.compile(optimizer=shenjing.optimizers.SGD(LR),
                  loss={"priority": "binary_crossentropy",
                        "department": "sparse_categorical_crossentropy"},
                  loss_weights=WEIGHTS, metrics={"department": ["accuracy"]})
    return model


def _data():
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(N, n)).astype(np.float32) for n in (7, 9, 5)]
    y = [rng.integers(0, 2, (N, 1)).astype(np.float32), rng.integers(0, 4, N)]
    return x, y


def _torch(model, x, y):
    """(priority, department, bce, sparse ce, total, params) in float64 autograd."""
    params = {name: [torch.tensor(w, dtype=torch.float64, requires_grad=True)
                     for w in model.get_layer(name).get_weights()] for name in DENSE}
    t64 = [torch.tensor(a, dtype=torch.float64) for a in x]

    def dense(name, h):
        w, b = params[name]
        return h @ w + b

    h = torch.cat([torch.tanh(dense("title_dense", t64[0])),
                   torch.relu(dense("body_dense", t64[1])), t64[2]], dim=1)
    pri = torch.sigmoid(dense("priority", h))
    dep = torch.softmax(dense("department", h), dim=1)
    bce = torch.nn.functional.binary_cross_entropy(pri, torch.tensor(y[0], dtype=torch.float64))
    sce = torch.nn.functional.nll_loss(torch.log(dep), torch.tensor(y[1]).long())
    total = WEIGHTS["priority"] * bce + WEIGHTS["department"] * sce
    return pri, dep, bce, sce, total, params


def test_outputs_losses_and_one_sgd_step_match_torch():
    model = _model()
    x, y = _data()
    pri, dep, bce, sce, total, params = _torch(model, x, y)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out[0], pri.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out[1], dep.detach().numpy(), rtol=RTOL, atol=ATOL)
    logs = model.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["priority_loss"], bce.item(), rtol=RTOL)
    np.testing.assert_allclose(logs["department_loss"], sce.item(), rtol=RTOL)
    np.testing.assert_allclose(logs["loss"], total.item(), rtol=RTOL)

    total.backward()
    hist = model.fit(x, y, batch_size=N, epochs=1, shuffle=False, verbose=0)
    # The logged losses are those of the forward pass before the update.
    np.testing.assert_allclose(hist.history["loss"][0], total.item(), rtol=RTOL)
    np.testing.assert_allclose(hist.history["department_loss"][0], sce.item(), rtol=RTOL)
    for name in DENSE:
        for got, p in zip(model.get_layer(name).get_weights(), params[name]):
            want = (p - LR * p.grad).detach().numpy()
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)
