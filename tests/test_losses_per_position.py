"""Losses and metrics on outputs of rank > 2, and metrics whose targets are narrower than the
output (issue 8, items 2 and 3).

Keras computes every loss and metric over the last axis and averages over all other positions;
sparse labels are shaped like the output without its last axis. The references below are
Keras's formulas in NumPy, and PyTorch where it is installed; the gradients are checked by
central finite differences.
"""
import numpy as np
import pytest

import shenjing
from shenjing import layers

from test_gradients import finite_difference_check

EPS = 1e-7
N = 12


def _model(out_shape, activation, seed=0, n_in=4):
    """Dense -> Reshape(out_shape) -> Activation: an output of any rank."""
    shenjing.utils.set_random_seed(seed)
    model = shenjing.Sequential([layers.Input((n_in,)),
                                 layers.Dense(int(np.prod(out_shape)), activation="tanh"),
                                 layers.Dense(int(np.prod(out_shape))),
                                 layers.Reshape(out_shape), layers.Activation(activation)])
    return model


def _data(out_shape, seed=0, n_in=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, n_in)).astype(np.float32)
    labels = rng.integers(0, out_shape[-1], size=(N,) + tuple(out_shape[:-1]))
    onehot = np.eye(out_shape[-1], dtype=np.float32)[labels]
    return x, labels, onehot


def _keras_loss(name, p, y):
    """Keras 3's loss: per position over the last axis, then the mean over all positions."""
    p = p.astype(np.float64)
    if name == "categorical_crossentropy":
        q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
        return np.mean(-np.sum(y * np.log(q), -1))
    if name == "sparse_categorical_crossentropy":
        q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
        return np.mean(-np.log(np.take_along_axis(q, y[..., None].astype(int), -1)[..., 0]))
    if name == "binary_crossentropy":
        q = np.clip(p, EPS, 1 - EPS)
        return np.mean(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q)), -1))
    if name == "mse":
        return np.mean(np.mean((p - y) ** 2, -1))
    if name == "mae":
        return np.mean(np.mean(np.abs(p - y), -1))
    raise AssertionError(name)


SHAPES = [(3, 5), (2, 3, 4), (2, 2, 2, 3)]


@pytest.mark.parametrize("out_shape", SHAPES)
@pytest.mark.parametrize("loss,activation,sparse", [
    ("categorical_crossentropy", "softmax", False),
    ("sparse_categorical_crossentropy", "softmax", True),
    ("binary_crossentropy", "sigmoid", False),
    ("mse", "linear", False),
    ("mae", "linear", False),
])
def test_loss_is_the_mean_over_positions(out_shape, loss, activation, sparse):
    model = _model(out_shape, activation)
    x, labels, onehot = _data(out_shape)
    y = labels if sparse else onehot
    model.compile(optimizer="sgd", loss=loss)
    p = model.predict(x, verbose=0)
    assert p.shape == (N,) + out_shape
    assert model.evaluate(x, y, verbose=0) == pytest.approx(_keras_loss(loss, p, y), rel=1e-5)


@pytest.mark.parametrize("out_shape", SHAPES)
def test_accuracies_and_errors_are_means_over_positions(out_shape):
    model = _model(out_shape, "softmax")
    x, labels, onehot = _data(out_shape)
    p = model.predict(x, verbose=0).astype(np.float64)
    hits = np.mean(np.argmax(p, -1) == labels)
    mse = np.mean((p - onehot) ** 2)
    mae = np.mean(np.abs(p - onehot))
    bin_acc = np.mean((p > 0.5) == onehot)

    model.compile(optimizer="sgd", loss="categorical_crossentropy",
                  metrics=["accuracy", "categorical_accuracy", "mse", "mae", "binary_accuracy"])
    _, acc, cat_acc, m_mse, m_mae, m_bin = model.evaluate(x, onehot, verbose=0)
    assert acc == pytest.approx(hits) and cat_acc == pytest.approx(hits)
    assert (m_mse, m_mae) == pytest.approx((mse, mae), rel=1e-5)
    assert m_bin == pytest.approx(bin_acc)

    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", "sparse_categorical_accuracy"])
    _, acc, sparse_acc = model.evaluate(x, labels, verbose=0)
    assert acc == pytest.approx(hits) and sparse_acc == pytest.approx(hits)
    # The running logs of fit use the same per-position means.
    hist = model.fit(x, labels, epochs=1, batch_size=5, verbose=0, shuffle=False)
    assert 0.0 <= hist.history["accuracy"][0] <= 1.0


@pytest.mark.parametrize("out_shape", [(3, 5), (2, 3, 4)])
@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("activation,from_logits", [("softmax", False), ("linear", True)])
def test_per_position_cross_entropy_gradients(out_shape, loss, activation, from_logits):
    """Finite differences through the fused softmax + cross-entropy path (and from_logits)."""
    model = _model(out_shape, activation, seed=1)
    x, labels, onehot = _data(out_shape, seed=1)
    model.compile(optimizer="sgd",
                  loss=shenjing.losses.get(loss).__class__(from_logits=from_logits))
    y = labels if loss.startswith("sparse") else onehot
    finite_difference_check(model, x, y.reshape(N, -1))


def test_per_position_losses_match_torch():
    torch = pytest.importorskip("torch")
    out_shape = (4, 6)
    model = _model(out_shape, "linear", seed=2)
    x, labels, _ = _data(out_shape, seed=2)
    model.compile(optimizer="sgd", loss=shenjing.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    loss = model._core.compute_gradients(x, np.ascontiguousarray(labels, dtype=np.float32))
    ours = [g.copy() for layer in model.layers for _, _, g in layer._views]

    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True)
              for w in model.get_weights()]
    h = torch.tanh(torch.tensor(x, dtype=torch.float64) @ params[0] + params[1])
    z = (h @ params[2] + params[3]).reshape(N, *out_shape)
    ref = torch.nn.functional.cross_entropy(z.reshape(-1, out_shape[-1]),
                                            torch.tensor(labels.reshape(-1)))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    for g, p in zip(ours, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_sequence_classifier_learns():
    """A per-step softmax classifier of the kind keras-io's addition_rnn trains: with the
    loss averaged per step it learns to copy its input tokens (it could not before)."""
    rng = np.random.default_rng(0)
    steps, vocab = 4, 6
    tokens = rng.integers(0, vocab, size=(512, steps))
    x = np.eye(vocab, dtype=np.float32)[tokens]
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((steps, vocab)), layers.Dense(32, activation="relu"),
                                 layers.Dense(vocab, activation="softmax")])
    model.compile(optimizer=shenjing.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, tokens, epochs=10, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.1 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.99


# -- targets checked the way Keras checks them ---------------------------------------------
def test_sparse_labels_must_have_the_output_shape_without_its_last_axis():
    model = shenjing.Sequential([layers.Input((6, 6, 3)), layers.Dense(10,
                                                                       activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.zeros((4, 6, 6, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(None, 6, 6\).*received y with shape \(4,\)"):
        model.fit(x, np.zeros(4), verbose=0)
    with pytest.raises(ValueError, match="one integer class label per position"):
        model.evaluate(x, np.zeros((4, 36)), verbose=0)
    # (batch, 6, 6) and (batch, 6, 6, 1) are both accepted, as in Keras.
    for y in (np.zeros((4, 6, 6)), np.zeros((4, 6, 6, 1))):
        assert np.isfinite(model.evaluate(x, y, verbose=0))


def test_dense_targets_must_match_the_output_shape():
    model = _model((3, 5), "softmax")
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = np.zeros((N, 4), np.float32)
    with pytest.raises(ValueError, match=r"does not match the model output shape \(None, 3, 5\)"):
        model.fit(x, np.zeros((N, 5, 3)), verbose=0)  # same size, other shape
    model.compile(optimizer="sgd", loss="mse")
    assert np.isfinite(model.evaluate(x, np.zeros((N, 3, 5, 1)), verbose=0))


def test_core_refuses_targets_that_do_not_fit():
    """The C++ API checks too: y of the wrong width is a ValueError, never a read past y."""
    model = _model((3, 5), "softmax")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.zeros((N, 4), np.float32)
    with pytest.raises(ValueError, match="do not fit the output"):
        model._core.test_step(x, np.zeros((N, 1), np.float32), None, 0, N)
    with pytest.raises(ValueError, match="do not fit the output"):
        model._core.train_step(x, np.zeros((N, 15), np.float32), None, 0, N)


# -- metrics whose targets are narrower than the output (item 3) ----------------------------
@pytest.mark.parametrize("n,classes", [(64, 10), (20000, 1000)])
def test_elementwise_metrics_with_sparse_labels_broadcast_as_keras(n, classes):
    """mse/mae/binary_accuracy with integer labels compare each label with every output, as
    Keras broadcasts a (batch, 1) target; they used to read y past its end."""
    rng = np.random.default_rng(0)
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((8,)), layers.Dense(classes,
                                                                  activation="softmax")])
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["mse", "mae", "binary_accuracy"])
    p = model.predict(x, batch_size=1024, verbose=0).astype(np.float64)
    t = y[:, None].astype(np.float64)
    _, mse, mae, bacc = model.evaluate(x, y, batch_size=1024, verbose=0)
    assert mse == pytest.approx(np.mean((p - t) ** 2), rel=1e-5)
    assert mae == pytest.approx(np.mean(np.abs(p - t)), rel=1e-5)
    assert bacc == pytest.approx(np.mean((p > 0.5) == t))
    hist = model.fit(x[:256], y[:256], epochs=1, verbose=0)
    assert all(np.isfinite(v[0]) for v in hist.history.values())


def test_categorical_metrics_with_the_wrong_targets_are_refused():
    model = shenjing.Sequential([layers.Input((8,)), layers.Dense(10, activation="softmax")])
    x = np.zeros((16, 8), np.float32)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["categorical_accuracy"])
    with pytest.raises(ValueError, match="categorical_accuracy.*one-hot"):
        model.fit(x, np.zeros(16), verbose=0)
    model.compile(optimizer="sgd", loss="categorical_crossentropy",
                  metrics=["sparse_categorical_accuracy"])
    with pytest.raises(ValueError, match="sparse_categorical_accuracy.*one integer label"):
        model.evaluate(x, np.eye(10)[np.zeros(16, int)], verbose=0)


def test_accuracy_on_an_output_with_a_last_axis_of_one():
    """Output (None, 4, 1) with one label per step: 'accuracy' is binary accuracy per step."""
    rng = np.random.default_rng(0)
    model = shenjing.Sequential([layers.Input((4, 3)), layers.Dense(1, activation="sigmoid")])
    x = rng.normal(size=(32, 4, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=(32, 4)).astype(np.float32)
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    p = model.predict(x, verbose=0)[..., 0]
    _, acc = model.evaluate(x, y, verbose=0)
    assert acc == pytest.approx(np.mean((p > 0.5) == y))
