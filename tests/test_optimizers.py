"""Optimizer steps against Keras 3's published update rules, written out in NumPy here.

Each step: the gradient at the model's current weights comes from ``compute_gradients``; the
NumPy rule (float64) is applied to those weights and gradients; one full-batch ``fit`` step of
the model must move every weight by the same amount.
"""
import numpy as np
import pytest

import shenjing
from shenjing import layers, optimizers

X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)


def _tiny_model(optimizer):
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3, activation="tanh"),
                                 layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(42)
    model.set_weights([rng.uniform(-0.8, 0.8, w.shape) for w in model.get_weights()])
    return model


def _gradients(model):
    model._core.compute_gradients(X, Y)
    return [g.astype(np.float64) for layer in model.layers for _, _, g in layer._views]


# --- Keras 3 update rules (keras/src/optimizers/*.py), one parameter at a time ----------------

def sgd(w, g, s, t, lr, momentum=0.0, nesterov=False):
    if momentum == 0:
        return w - lr * g
    m = s.get("m", np.zeros_like(w))
    m = momentum * m - lr * g
    s["m"] = m
    return w + (momentum * m - lr * g if nesterov else m)


def adam(w, g, s, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
         weight_decay=0.0):
    if weight_decay:
        w = w - w * weight_decay * lr  # AdamW: decoupled decay applied first
    m = s.get("m", np.zeros_like(w))
    v = s.get("v", np.zeros_like(w))
    alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    m = m + (g - m) * (1 - beta_1)
    v = v + (g * g - v) * (1 - beta_2)
    s["m"], s["v"] = m, v
    if amsgrad:
        vhat = np.maximum(s.get("vhat", np.zeros_like(w)), v)
        s["amsgrad_differs"] = s.get("amsgrad_differs", False) or bool(np.any(vhat > v * 1.01))
        s["vhat"] = vhat
        v = vhat
    return w - m * alpha / (np.sqrt(v) + epsilon)


def rmsprop(w, g, s, t, lr, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    v = rho * s.get("v", np.zeros_like(w)) + (1 - rho) * g * g
    s["v"] = v
    if centered:
        avg = rho * s.get("avg", np.zeros_like(w)) + (1 - rho) * g
        s["avg"] = avg
        denominator = v - avg * avg + epsilon
    else:
        denominator = v + epsilon
    increment = lr * g / np.sqrt(denominator)
    if momentum > 0:
        mom = momentum * s.get("mom", np.zeros_like(w)) + increment
        s["mom"] = mom
        return w - mom
    return w - increment


def adagrad(w, g, s, t, lr, initial_accumulator_value=0.1, epsilon=1e-7):
    acc = s.get("acc", np.full_like(w, initial_accumulator_value)) + g * g
    s["acc"] = acc
    return w - lr * g / np.sqrt(acc + epsilon)


def _run(optimizer, rule, steps=5, **hyper):
    model = _tiny_model(optimizer)
    states = [dict() for _ in model.get_weights()]
    for t in range(1, steps + 1):
        grads = _gradients(model)
        before = [w.astype(np.float64) for w in model.get_weights()]
        expected = [rule(w, g, s, t, **hyper) for w, g, s in zip(before, grads, states)]
        model.fit(X, Y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
        assert model.optimizer.iterations == t
        for i, (w0, w1, e) in enumerate(zip(before, model.get_weights(), expected)):
            step, ref = w1 - w0, e - w0
            assert np.abs(ref).max() > 1e-4, "the update should be visible in float32"
            np.testing.assert_allclose(step, ref, rtol=2e-4, atol=2e-7,
                                       err_msg=f"weight {i} at step {t}")
    return model, states


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True),
                                               (0.5, True)])
def test_sgd(momentum, nesterov):
    opt = optimizers.SGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov)
    _run(opt, sgd, lr=0.1, momentum=momentum, nesterov=nesterov)


def test_sgd_nesterov_differs_from_plain_momentum():
    a, _ = _run(optimizers.SGD(0.1, momentum=0.9), sgd, steps=3, lr=0.1, momentum=0.9)
    b, _ = _run(optimizers.SGD(0.1, momentum=0.9, nesterov=True), sgd, steps=3, lr=0.1,
                momentum=0.9, nesterov=True)
    assert np.abs(a.get_weights()[0] - b.get_weights()[0]).max() > 1e-3


@pytest.mark.parametrize("kw", [{}, {"beta_1": 0.5, "beta_2": 0.7, "epsilon": 1e-3}])
def test_adam(kw):
    _run(optimizers.Adam(learning_rate=0.02, **kw), adam, lr=0.02, **kw)


def test_adam_amsgrad():
    kw = dict(beta_1=0.8, beta_2=0.6)
    _, states = _run(optimizers.Adam(learning_rate=0.2, amsgrad=True, **kw), adam, steps=8,
                     lr=0.2, amsgrad=True, **kw)
    # The test must reach steps where v_hat = max(v) really differs from v.
    assert any(s["amsgrad_differs"] for s in states)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw(amsgrad):
    opt = optimizers.AdamW(learning_rate=0.05, weight_decay=0.5, amsgrad=amsgrad)
    _run(opt, adam, lr=0.05, weight_decay=0.5, amsgrad=amsgrad)


def test_adamw_decays_weights_with_zero_gradient():
    """With a zero gradient AdamW only shrinks every weight (bias included) by 1 - lr * wd."""
    model = _tiny_model(optimizers.AdamW(learning_rate=0.1, weight_decay=0.3))
    y = model.predict(X, verbose=0)  # perfect fit: mse gradient is exactly zero
    before = model.get_weights()
    model.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_allclose(w1, w0 * (1 - 0.1 * 0.3), rtol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"centered": True},
                                {"centered": True, "momentum": 0.5, "rho": 0.8}])
def test_rmsprop(kw):
    _run(optimizers.RMSprop(learning_rate=0.01, **kw), rmsprop, lr=0.01, **kw)


@pytest.mark.parametrize("kw", [{}, {"initial_accumulator_value": 0.5, "epsilon": 1e-3}])
def test_adagrad(kw):
    _run(optimizers.Adagrad(learning_rate=0.05, **kw), adagrad, lr=0.05, **kw)


def test_learning_rate_change_between_fits_takes_effect():
    model = _tiny_model(optimizers.SGD(learning_rate=0.1))
    model.fit(X, Y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    model.optimizer.learning_rate = 0.5
    grads = _gradients(model)
    before = model.get_weights()
    model.fit(X, Y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    for w0, w1, g in zip(before, model.get_weights(), grads):
        np.testing.assert_allclose(w1 - w0, -0.5 * g, rtol=2e-4, atol=2e-7)


def test_mini_batches_take_one_step_each():
    """batch_size 2 over 5 samples: 3 steps per epoch on rows [0:2], [2:4], [4:5]."""
    model = _tiny_model(optimizers.SGD(learning_rate=0.1))
    ref = _tiny_model(optimizers.SGD(learning_rate=0.1))
    model.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 3
    for rows in (slice(0, 2), slice(2, 4), slice(4, 5)):
        xb, yb = np.ascontiguousarray(X[rows]), np.ascontiguousarray(Y[rows])
        ref._core.compute_gradients(xb, yb)
        for layer in ref.layers:
            for _, value, grad in layer._views:
                value -= np.float32(0.1) * grad
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_keras_defaults():
    sgd_ = optimizers.SGD()
    assert (sgd_.learning_rate, sgd_.momentum, sgd_.nesterov) == (0.01, 0.0, False)
    for cls in (optimizers.Adam, optimizers.AdamW):
        o = cls()
        assert o.learning_rate == 0.001
        assert (o.beta_1, o.beta_2, o.epsilon, o.amsgrad) == (0.9, 0.999, 1e-7, False)
    assert optimizers.AdamW().weight_decay == 0.004
    r = optimizers.RMSprop()
    assert (r.learning_rate, r.rho, r.momentum, r.epsilon, r.centered) == \
        (0.001, 0.9, 0.0, 1e-7, False)
    a = optimizers.Adagrad()
    assert (a.learning_rate, a.initial_accumulator_value, a.epsilon) == (0.001, 0.1, 1e-7)
    for name, cls in [("sgd", optimizers.SGD), ("adam", optimizers.Adam),
                      ("adamw", optimizers.AdamW), ("rmsprop", optimizers.RMSprop),
                      ("adagrad", optimizers.Adagrad), ("Adam", optimizers.Adam)]:
        assert type(optimizers.get(name)) is cls
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(2)])
    model.compile(loss="mse")  # Keras's default optimizer is rmsprop
    assert isinstance(model.optimizer, optimizers.RMSprop)


def test_string_optimizer_uses_defaults_in_the_update():
    """compile(optimizer='sgd') steps with learning rate 0.01."""
    model = _tiny_model("sgd")
    grads = _gradients(model)
    before = model.get_weights()
    model.fit(X, Y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    for w0, w1, g in zip(before, model.get_weights(), grads):
        np.testing.assert_allclose(w1 - w0, -0.01 * g, rtol=2e-4, atol=1e-8)


@pytest.mark.parametrize("bad", [-1, -0.1, "fast", None, True, float("inf")])  # 0.0 is valid
def test_bad_learning_rate(bad):
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate=bad)
