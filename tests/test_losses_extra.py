"""Keras 3's other losses (kl_divergence, poisson, the hinges, log_cosh, cosine_similarity,
MAPE, MSLE) and the cross-entropies' label_smoothing / ignore_class, computed by the core:
value and gradient against PyTorch (the same weights through the same network, float64),
a finite-difference check, and one fit step against torch's SGD step. Outputs of rank 2 and 3
(a sequence output is a loss per time step, averaged). Keras-value and API tests without torch
are in test_losses_extra_api.py."""
import numpy as np
import pytest

import shenjing
from shenjing import layers, losses

from test_gradients import finite_difference_check

torch = pytest.importorskip("torch")
F = torch.nn.functional
EPS = 1e-7
N = 8
SHAPES = [(5,), (3, 4)]
ACT = {"linear": lambda z: z, "softmax": lambda z: torch.softmax(z, -1),
       "sigmoid": torch.sigmoid, "softplus": F.softplus, "tanh": torch.tanh}


def _hinge_labels(t):
    return 2 * t - 1 if bool(((t == 0) | (t == 1)).all()) else t


def _categorical_hinge(p, t):
    pos = (t * p).sum(-1)
    neg = ((1 - t) * p).amax(-1)
    return (neg - pos + 1).clamp(min=0).mean()


def _ce_smoothed(p, t, ls):  # probabilities, Keras renormalises them
    ts = t * (1 - ls) + ls / t.shape[-1]
    return -(ts * torch.log(p / p.sum(-1, keepdim=True))).sum(-1).mean()


# name: (loss object, activation, targets, torch loss of (output, targets))
CASES = {
    "kl_divergence": (lambda: losses.KLDivergence(), "softmax", "dist",
                      lambda p, t: F.kl_div(torch.log(p.clamp(EPS, 1)), t.clamp(EPS, 1),
                                            reduction="none").sum(-1).mean()),
    "poisson": (lambda: losses.Poisson(), "softplus", "counts",
                lambda p, t: F.poisson_nll_loss(p, t, log_input=False, full=False, eps=EPS)),
    "hinge_01": (lambda: losses.Hinge(), "tanh", "01",
                 lambda p, t: (1 - _hinge_labels(t) * p).clamp(min=0).mean()),
    "hinge_pm1": (lambda: losses.Hinge(), "tanh", "pm1",
                  lambda p, t: (1 - _hinge_labels(t) * p).clamp(min=0).mean()),
    "squared_hinge": (lambda: losses.SquaredHinge(), "tanh", "01",
                      lambda p, t: ((1 - _hinge_labels(t) * p).clamp(min=0) ** 2).mean()),
    "categorical_hinge": (lambda: losses.CategoricalHinge(), "linear", "onehot",
                          _categorical_hinge),
    "log_cosh": (lambda: losses.LogCosh(), "linear", "normal",
                 lambda p, t: torch.log(torch.cosh(p - t)).mean()),
    "cosine_similarity": (lambda: losses.CosineSimilarity(), "linear", "normal",
                          lambda p, t: -F.cosine_similarity(p, t, dim=-1, eps=EPS).mean()),
    "mape": (lambda: losses.MeanAbsolutePercentageError(), "linear", "away_from_0",
             lambda p, t: 100 * ((t - p).abs() / t.abs().clamp(min=EPS)).mean()),
    "msle": (lambda: losses.MeanSquaredLogarithmicError(), "linear", "counts",
             lambda p, t: ((torch.log(p.clamp(min=EPS) + 1) -
                            torch.log(t.clamp(min=EPS) + 1)) ** 2).mean()),
    # label smoothing: fused (softmax/sigmoid), from logits, and the renormalising path
    "cce_smooth_fused": (lambda: losses.CategoricalCrossentropy(label_smoothing=0.2),
                         "softmax", "onehot", lambda p, t: _ce_smoothed(p, t, 0.2)),
    "cce_smooth_logits": (lambda: losses.CategoricalCrossentropy(from_logits=True,
                                                                 label_smoothing=0.3),
                          "linear", "onehot",
                          lambda z, t: F.cross_entropy(z.reshape(-1, z.shape[-1]),
                                                       t.reshape(-1, t.shape[-1]),
                                                       label_smoothing=0.3)),
    "cce_smooth_probs": (lambda: losses.CategoricalCrossentropy(label_smoothing=0.1),
                         "sigmoid", "onehot", lambda p, t: _ce_smoothed(p, t, 0.1)),
    "bce_smooth_fused": (lambda: losses.BinaryCrossentropy(label_smoothing=0.2), "sigmoid",
                         "01", lambda p, t: F.binary_cross_entropy(p, t * 0.8 + 0.1)),
    "bce_smooth_logits": (lambda: losses.BinaryCrossentropy(from_logits=True,
                                                            label_smoothing=0.4),
                          "linear", "01",
                          lambda z, t: F.binary_cross_entropy_with_logits(z, t * 0.6 + 0.2)),
    "scce_ignore_logits": (lambda: losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                        ignore_class=1),
                           "linear", "labels",
                           lambda z, t: F.cross_entropy(z.reshape(-1, z.shape[-1]),
                                                        t.reshape(-1).long(), ignore_index=1)),
    "scce_ignore_fused": (lambda: losses.SparseCategoricalCrossentropy(ignore_class=0),
                          "softmax", "labels",
                          lambda p, t: F.nll_loss(torch.log(p.reshape(-1, p.shape[-1])),
                                                  t.reshape(-1).long(), ignore_index=0)),
}


def _targets(kind, shape, rng):
    full = (N,) + shape
    if kind == "dist":  # distributions with some zeros (Keras clips them to 1e-7)
        t = rng.dirichlet(np.ones(shape[-1]), size=full[:-1])
        t[..., 0] = 0.0
        return t / t.sum(-1, keepdims=True)
    if kind == "counts":
        return rng.integers(0, 4, size=full).astype(np.float64)
    if kind == "01":
        return rng.integers(0, 2, size=full).astype(np.float64)
    if kind == "pm1":
        return 2.0 * rng.integers(0, 2, size=full) - 1.0
    if kind == "onehot":
        return np.eye(shape[-1])[rng.integers(0, shape[-1], size=full[:-1])]
    if kind == "labels":
        return rng.integers(0, shape[-1], size=full[:-1]).astype(np.float64)
    if kind == "normal":
        return rng.normal(size=full)
    if kind == "away_from_0":
        return rng.choice([-1.0, 1.0], size=full) * rng.uniform(0.5, 2.0, size=full)
    raise AssertionError(kind)


def _setup(case, shape, seed=0, n_in=3, hidden=4):
    make, act, kind, ref = CASES[case]
    shenjing.utils.set_random_seed(seed)
    model = shenjing.Sequential([layers.Input((n_in,)), layers.Dense(hidden, activation="tanh"),
                                 layers.Dense(int(np.prod(shape))), layers.Reshape(shape),
                                 layers.Activation(act)])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.7, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    x = rng.normal(size=(N, n_in)).astype(np.float32)
    y = _targets(kind, shape, rng)
    return model, make(), act, ref, x, y


def _torch_loss_and_grads(model, act, ref, x, y, shape):
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True)
              for w in model.get_weights()]
    h = torch.tanh(torch.tensor(x, dtype=torch.float64) @ params[0] + params[1])
    z = (h @ params[2] + params[3]).reshape((N,) + shape)
    loss = ref(ACT[act](z), torch.tensor(y, dtype=torch.float64))
    loss.backward()
    return loss.item(), [p.grad.numpy() for p in params]


@pytest.mark.parametrize("shape", SHAPES, ids=["rank2", "rank3"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_value_and_gradient_match_torch(case, shape):
    model, loss, act, ref, x, y = _setup(case, shape)
    model.compile(optimizer="sgd", loss=loss)
    ours = model._core.compute_gradients(x, np.ascontiguousarray(y.reshape(N, -1), np.float32))
    grads = [g.copy() for layer in model.layers for _, _, g in layer._views]
    value, ref_grads = _torch_loss_and_grads(model, act, ref, x, y, shape)
    assert ours == pytest.approx(value, rel=1e-5, abs=1e-6)
    scale = max(np.abs(g).max() for g in ref_grads)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * scale)
    # evaluate reports the same mean (the Python path: targets checked, then the core)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(value, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_fit_step_equals_torch_sgd(case):
    shape = (3, 4)
    model, loss, act, ref, x, y = _setup(case, shape, seed=1)
    before = model.get_weights()
    _, ref_grads = _torch_loss_and_grads(model, act, ref, x, y, shape)
    model.compile(optimizer=shenjing.optimizers.SGD(learning_rate=0.05), loss=loss)
    model.fit(x, y, batch_size=N, epochs=1, shuffle=False, verbose=0)
    for w0, w1, g in zip(before, model.get_weights(), ref_grads):
        np.testing.assert_allclose(w1, w0 - 0.05 * g, rtol=1e-5, atol=1e-6)


# Finite differences: the cases whose loss is smooth around these weights (the hinges' outputs
# stay inside the margin, MSLE's predictions positive).
FD_CASES = ["kl_divergence", "poisson", "hinge_01", "hinge_pm1", "squared_hinge",
            "categorical_hinge", "log_cosh", "cosine_similarity", "mape", "cce_smooth_fused",
            "cce_smooth_logits", "cce_smooth_probs", "bce_smooth_fused", "bce_smooth_logits",
            "scce_ignore_logits"]


@pytest.mark.parametrize("shape", SHAPES, ids=["rank2", "rank3"])
@pytest.mark.parametrize("case", FD_CASES)
def test_finite_differences(case, shape):
    # categorical_hinge: a seed whose rows keep their max and their sign within +-h (seed 2
    # has a row at the hinge's corner).
    model, loss, _, _, x, y = _setup(case, shape, seed=11 if case == "categorical_hinge" else 2)
    model.compile(optimizer="sgd", loss=loss)
    finite_difference_check(model, x, y.reshape(N, -1))


def test_msle_finite_differences_with_positive_predictions():
    make, _, _, _ = CASES["msle"]
    shenjing.utils.set_random_seed(3)
    model = shenjing.Sequential([layers.Input((3,)), layers.Dense(4, activation="tanh"),
                                 layers.Dense(6, activation="softplus")])
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.7, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    model.compile(optimizer="sgd", loss=make())
    finite_difference_check(model, rng.normal(size=(N, 3)),
                            rng.integers(0, 4, size=(N, 6)).astype(np.float32))


def test_cosine_similarity_gradient_matches_torch_for_a_zero_target_row():
    """A zero target row (Keras's normalize caps 1/|t| at 1e7): loss 0 there, no gradient."""
    model, loss, act, ref, x, y = _setup("cosine_similarity", (5,), seed=4)
    y[0] = 0.0
    model.compile(optimizer="sgd", loss=loss)
    ours = model._core.compute_gradients(x, np.ascontiguousarray(y, np.float32))
    value, ref_grads = _torch_loss_and_grads(model, act, ref, x, y, (5,))
    assert ours == pytest.approx(value, rel=1e-5)
    grads = [g.copy() for layer in model.layers for _, _, g in layer._views]
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
