"""Nadam, Adamax, Lion, weight decay on every optimizer, and EMA, against PyTorch (where it
has the rule) and Keras 3's update rules written out in NumPy.

Each step: the gradient at the model's current weights comes from ``compute_gradients``; the
reference rule gets those weights and gradients; one full-batch ``fit`` step must move every
weight by the same amount.
"""
import numpy as np
import pytest

import shenjing
from shenjing import layers, optimizers

torch = pytest.importorskip("torch")

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
    return [g.copy() for layer in model.layers for _, _, g in layer._views]


def _names(model):
    return [n for layer in model.layers for n, _, _ in layer._views]


def _step(model):
    model.fit(X, Y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)


def _against_torch(optimizer, make_torch, steps=6, decay=0.0, lr=None, rtol=2e-4,
                   decayed=None):
    """Our optimizer vs a torch.optim one fed the same gradients; ``decay``: Keras's
    decoupled weight decay, applied to the torch params first (p *= 1 - lr * wd)."""
    model = _tiny_model(optimizer)
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True)
              for w in model.get_weights()]
    topt = make_torch(params)
    names = _names(model)
    for t in range(1, steps + 1):
        grads = _gradients(model)
        before = model.get_weights()
        with torch.no_grad():
            for p, name in zip(params, names):
                if decay and (decayed is None or name in decayed):
                    p.mul_(1 - lr * decay)
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        _step(model)
        for i, (w0, w1, p) in enumerate(zip(before, model.get_weights(), params)):
            ref = p.detach().numpy() - w0
            assert np.abs(ref).max() > 1e-5
            np.testing.assert_allclose(w1 - w0, ref, rtol=rtol, atol=1e-7,
                                       err_msg=f"weight {i} at step {t}")
        with torch.no_grad():  # keep both on the same weights (float32 drift aside)
            for p, w in zip(params, model.get_weights()):
                p.copy_(torch.tensor(w, dtype=torch.float64))
    return model


# --- Nadam: torch.optim.NAdam's momentum_decay=1 is Keras's 0.96 ** t schedule ----------------

@pytest.mark.parametrize("kw", [{}, {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4}])
def test_nadam_matches_torch_with_momentum_decay_1(kw):
    tkw = {"betas": (kw.get("beta_1", 0.9), kw.get("beta_2", 0.999)),
           "eps": kw.get("epsilon", 1e-7)}
    _against_torch(optimizers.Nadam(learning_rate=0.02, **kw),
                   lambda ps: torch.optim.NAdam(ps, lr=0.02, momentum_decay=1.0, **tkw))


def test_nadam_differs_from_torch_default_momentum_decay():
    """torch's default momentum_decay 4e-3 is not Keras's schedule: the steps must differ."""
    with pytest.raises(AssertionError):
        _against_torch(optimizers.Nadam(learning_rate=0.02),
                       lambda ps: torch.optim.NAdam(ps, lr=0.02, eps=1e-7), steps=3)


def test_nadam_resumes_exactly_after_save(tmp_path):
    """The momentum product is rebuilt from iterations on load: 3 + 3 steps == 6 steps."""
    a = _tiny_model(optimizers.Nadam(learning_rate=0.02))
    for _ in range(3):
        _step(a)
    a.save(tmp_path / "m.keras")
    b = shenjing.models.load_model(tmp_path / "m.keras")
    assert isinstance(b.optimizer, optimizers.Nadam) and b.optimizer.iterations == 3
    for _ in range(3):
        _step(a)
        _step(b)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


# --- Adamax: torch adds eps inside the max, Keras to the norm ----------------------------------

def test_adamax_matches_torch():
    _against_torch(optimizers.Adamax(learning_rate=0.02, epsilon=1e-7),
                   lambda ps: torch.optim.Adamax(ps, lr=0.02, eps=1e-7))


def adamax_keras(w, g, s, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    m = s.get("m", np.zeros_like(w)) + (g - s.get("m", np.zeros_like(w))) * (1 - beta_1)
    u = np.maximum(beta_2 * s.get("u", np.zeros_like(w)), np.abs(g))
    s["m"], s["u"] = m, u
    return w - lr * m / ((1 - beta_1 ** t) * (u + epsilon))


def lion_keras(w, g, s, t, lr, beta_1=0.9, beta_2=0.99):
    m = s.get("m", np.zeros_like(w))
    w = w - lr * np.sign(m * beta_1 + g * (1 - beta_1))
    s["m"] = m * beta_2 + g * (1 - beta_2)
    return w


def _against_rule(optimizer, rule, steps=6, weight_decay=0.0, **hyper):
    model = _tiny_model(optimizer)
    states = [dict() for _ in model.get_weights()]
    lr = hyper["lr"]
    for t in range(1, steps + 1):
        grads = [g.astype(np.float64) for g in _gradients(model)]
        before = [w.astype(np.float64) for w in model.get_weights()]
        expected = [rule(w - w * weight_decay * lr, g, s, t, **hyper)
                    for w, g, s in zip(before, grads, states)]
        _step(model)
        for i, (w0, w1, e) in enumerate(zip(before, model.get_weights(), expected)):
            assert np.abs(e - w0).max() > 1e-5
            np.testing.assert_allclose(w1 - w0, e - w0, rtol=2e-4, atol=1e-7,
                                       err_msg=f"weight {i} at step {t}")
        # The state too (Lion's sign hides small errors in its momentum from the weights).
        _, slots = model._core.optimizer_state()
        for i, (bufs, st) in enumerate(zip(slots, states)):
            for buf, key in zip(bufs, st):
                np.testing.assert_allclose(buf.reshape(-1), st[key].reshape(-1), rtol=1e-5,
                                           atol=1e-8, err_msg=f"{key} of weight {i}, step {t}")
    return model


@pytest.mark.parametrize("kw", [{}, {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}])
def test_adamax_matches_keras_rule(kw):
    _against_rule(optimizers.Adamax(learning_rate=0.03, **kw), adamax_keras, lr=0.03, **kw)


@pytest.mark.parametrize("kw", [{}, {"beta_1": 0.5, "beta_2": 0.9}])
def test_lion_matches_keras_rule(kw):
    _against_rule(optimizers.Lion(learning_rate=0.01, **kw), lion_keras, lr=0.01, **kw)


def test_lion_with_weight_decay():
    _against_rule(optimizers.Lion(learning_rate=0.01, weight_decay=0.5), lion_keras,
                  weight_decay=0.5, lr=0.01)


def test_defaults_and_configs_as_keras():
    n, a, li = optimizers.Nadam(), optimizers.Adamax(), optimizers.Lion()
    assert (n.learning_rate, n.beta_1, n.beta_2, n.epsilon, n.weight_decay) == \
        (0.001, 0.9, 0.999, 1e-7, None)
    assert (a.learning_rate, a.beta_1, a.beta_2, a.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert (li.learning_rate, li.beta_1, li.beta_2) == (0.001, 0.9, 0.99)
    for name, cls in [("nadam", optimizers.Nadam), ("adamax", optimizers.Adamax),
                      ("lion", optimizers.Lion)]:
        assert type(optimizers.get(name)) is cls
    cfg = optimizers.Lion(weight_decay=0.1, use_ema=True).get_config()
    assert {"name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm",
            "clipvalue", "use_ema", "ema_momentum", "ema_overwrite_frequency", "beta_1",
            "beta_2"} <= set(cfg)
    back = optimizers.Lion.from_config(cfg)
    assert (back.weight_decay, back.use_ema, back.beta_2) == (0.1, True, 0.99)
    # A config as Keras 3.15 writes it (keras.optimizers.Nadam(weight_decay=0.01).get_config())
    keras_cfg = {"module": "keras.optimizers", "class_name": "Nadam", "config": {
        "name": "nadam", "learning_rate": 0.0010000000474974513, "weight_decay": 0.01,
        "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
        "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
        "gradient_accumulation_steps": None, "beta_1": 0.9, "beta_2": 0.999,
        "epsilon": 1e-07}, "registered_name": None}
    o = optimizers.get(keras_cfg)
    assert isinstance(o, optimizers.Nadam) and o.weight_decay == 0.01


@pytest.mark.parametrize("make,msg", [
    (lambda: optimizers.Lion(beta_1=0.0), "beta_1"),
    (lambda: optimizers.Lion(beta_1=1.5), "beta_1"),
    (lambda: optimizers.AdamW(weight_decay=None), "weight_decay"),
    (lambda: optimizers.SGD(weight_decay=-0.1), "weight_decay"),
    (lambda: optimizers.Adam(weight_decay="a"), "weight_decay"),
    (lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5), "ema_momentum"),
    (lambda: optimizers.Adam(use_ema=True, ema_overwrite_frequency=0.5),
     "ema_overwrite_frequency"),
    (lambda: optimizers.Nadam(gradient_accumulation_steps=2), "gradient_accumulation"),
    (lambda: optimizers.Adamax(learning_rate=-1.0), "learning_rate"),
])
def test_bad_arguments(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


# --- weight decay: Keras's decoupled w -= w * wd * lr before every optimizer's update ---------

_TORCH = {
    "SGD": (lambda: optimizers.SGD(0.05, momentum=0.9, weight_decay=0.3),
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), 0.05),
    "Adam": (lambda: optimizers.Adam(0.02, weight_decay=0.3),
             lambda ps: torch.optim.Adam(ps, lr=0.02, eps=1e-7), 0.02),
    "AdamW": (lambda: optimizers.AdamW(0.02, weight_decay=0.3),
              lambda ps: torch.optim.AdamW(ps, lr=0.02, eps=1e-7, weight_decay=0.3), 0.02),
    "RMSprop": (lambda: optimizers.RMSprop(0.01, weight_decay=0.3),
                lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-7), 0.01),
    "Adagrad": (lambda: optimizers.Adagrad(0.05, weight_decay=0.3),
                lambda ps: torch.optim.Adagrad(ps, lr=0.05, initial_accumulator_value=0.1,
                                               eps=1e-7), 0.05),
    "Nadam": (lambda: optimizers.Nadam(0.02, weight_decay=0.3),
              lambda ps: torch.optim.NAdam(ps, lr=0.02, eps=1e-7, momentum_decay=1.0), 0.02),
    "Adamax": (lambda: optimizers.Adamax(0.02, weight_decay=0.3),
               lambda ps: torch.optim.Adamax(ps, lr=0.02, eps=1e-7), 0.02),
}


@pytest.mark.parametrize("name", sorted(_TORCH))
def test_weight_decay_matches_torch(name):
    make, make_torch, lr = _TORCH[name]
    # torch's AdamW decays inside its step; the others get Keras's decay applied first.
    decay = 0.0 if name == "AdamW" else 0.3
    rtol = 2e-3 if name in ("RMSprop", "Adagrad") else 2e-4  # eps inside vs outside sqrt
    _against_torch(make(), make_torch, decay=decay, lr=lr, rtol=rtol)


def test_exclude_from_weight_decay_by_name_and_by_variable():
    """var_names=['bias'] keeps biases undecayed; var_list leaves out that very array."""
    opt = optimizers.SGD(0.05, momentum=0.9, weight_decay=0.3)
    opt.exclude_from_weight_decay(var_names=["bias"])
    _against_torch(opt, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), decay=0.3,
                   lr=0.05, decayed={"kernel"})
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3, activation="tanh"),
                                 layers.Dense(2)])
    opt = optimizers.SGD(0.05, weight_decay=0.3)
    opt.exclude_from_weight_decay(var_list=[model.layers[0].kernel])
    model.compile(optimizer=opt, loss="mse")
    model.set_weights([np.full(w.shape, 0.5, np.float32) for w in model.get_weights()])
    grads = _gradients(model)
    before = model.get_weights()
    _step(model)
    decayed = [False, True, True, True]
    for w0, w1, g, d in zip(before, model.get_weights(), grads, decayed):
        expect = (w0 - w0 * 0.3 * 0.05 if d else w0) - 0.05 * g
        np.testing.assert_allclose(w1, expect, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])
    copy = optimizers.SGD(0.05, weight_decay=0.3)
    copy.exclude_from_weight_decay(var_list=[model.get_weights()[0]])
    with pytest.raises(ValueError, match="not a weight of this model"):
        model.compile(optimizer=copy, loss="mse")
    assert model.optimizer is opt  # the failed compile changed nothing


def test_exclude_a_custom_layers_variable():
    class Scale(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, x):
            return x * self.w

    for exclude in (True, False):
        scale = Scale()
        model = shenjing.Sequential([layers.Input((4,)), scale, layers.Dense(2)])
        opt = optimizers.SGD(0.1, weight_decay=0.5)
        if exclude:
            opt.exclude_from_weight_decay(var_list=[scale.w])
        model.compile(optimizer=opt, loss="mse")
        model.layers[1].set_weights([np.zeros((4, 2), np.float32), np.zeros(2, np.float32)])
        # Zero Dense kernel: no gradient reaches w, so only decay could move it.
        model.fit(X, np.zeros((5, 2), np.float32), batch_size=5, verbose=0)
        expect = 1.0 if exclude else 1.0 - 0.1 * 0.5
        np.testing.assert_allclose(scale.w.numpy(), np.full(4, expect, np.float32), rtol=1e-7)


def test_weight_decay_moves_unused_embedding_rows():
    """Plain SGD updates only an Embedding's looked-up rows, but decay reaches every row."""
    model = shenjing.Sequential([layers.Input((2,)), layers.Embedding(10, 3),
                                 layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer=optimizers.SGD(0.1, weight_decay=0.5), loss="mse")
    table = model.layers[0].get_weights()[0].copy()
    model.fit(np.array([[1, 2]]), np.zeros((1, 1), np.float32), verbose=0)
    after = model.layers[0].get_weights()[0]
    np.testing.assert_allclose(after[5:], table[5:] * (1 - 0.1 * 0.5), rtol=1e-6)


# --- EMA ----------------------------------------------------------------------------------------

def test_ema_and_overwrite_frequency_follow_keras():
    """avg = m * avg + (1 - m) * w after each update (m = 0 at the first step); every
    ema_overwrite_frequency steps w = avg; fit's end copies the averages in."""
    lr, mom, freq = 0.1, 0.7, 3
    model = _tiny_model(optimizers.SGD(lr, use_ema=True, ema_momentum=mom,
                                       ema_overwrite_frequency=freq))
    w = [x.astype(np.float64) for x in model.get_weights()]
    avg = None
    for t in range(1, 6):
        g = _gradients(model)
        w = [a - lr * b for a, b in zip(w, g)]
        m = 0.0 if t == 1 else mom
        avg = list(w) if avg is None else [m * a + (1 - m) * b for a, b in zip(avg, w)]
        if t % freq == 0:
            w = list(avg)
        model._core.train_step(X, Y, None, 0, len(X))
        for a, b in zip(model.get_weights(), w):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"step {t}")
    g = _gradients(model)
    w = [a - lr * b for a, b in zip(w, g)]
    avg = [mom * a + (1 - mom) * b for a, b in zip(avg, w)]
    model.fit(X, Y, batch_size=len(X), epochs=1, verbose=0)  # step 6, then finalize
    for a, b, c in zip(model.get_weights(), avg, w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert np.abs(b - c).max() > 1e-4  # the average, not the last weights


def test_ema_state_round_trips(tmp_path):
    a = _tiny_model(optimizers.Adam(0.01, use_ema=True, ema_momentum=0.9))
    _step(a)
    a.save(tmp_path / "m.keras")
    b = shenjing.models.load_model(tmp_path / "m.keras")
    assert b.optimizer.use_ema and b.optimizer.ema_momentum == 0.9
    _step(a)
    _step(b)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
