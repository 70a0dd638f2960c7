"""Central finite-difference checks of every gradient the C++ core computes.

``model._core.compute_gradients(x, y)`` fills each parameter's gradient (no update) and returns
the mean loss plus the weight penalty. We perturb every weight by +-h (float32 forward, float64
differences of the returned loss) and compare. Inputs are chosen away from kinks (relu, leaky_relu,
mae, huber, l1) so that the loss is smooth within +-h of the weights being checked.
"""
import numpy as np
import pytest

import shenjing
from shenjing import layers, losses, regularizers

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "gelu",
               "softplus", "swish"]
KINKED = {"relu", "leaky_relu"}
N, D_IN, HIDDEN, D_OUT = 6, 4, 5, 3
H = 3e-3            # step of the central difference (float32 weights)
RTOL = 2e-2         # relative error allowed per gradient entry
MARGIN = 0.05       # distance kept between any pre-activation / residual and a kink


def _prepare(x, y):
    return (np.ascontiguousarray(x, dtype=np.float32),
            np.ascontiguousarray(y, dtype=np.float32))


def _randomize_weights(model, rng, scale=0.6):
    """Non-zero, well-conditioned weights (including biases, which are zeros after init)."""
    for layer in model.layers:
        for name, value, _ in layer._views:
            value[...] = rng.uniform(-scale, scale, value.shape)


def finite_difference_check(model, x, y, h=H, rtol=RTOL):
    """Compares every analytic gradient entry with a central difference of the loss."""
    x, y = _prepare(x, y)
    core = model._core
    loss0 = core.compute_gradients(x, y)
    assert np.isfinite(loss0)
    analytic = [[g.copy() for _, _, g in layer._views] for layer in model.layers]
    assert any(len(a) for a in analytic), "model has no parameters to check"
    checked = 0
    for layer, grads in zip(model.layers, analytic):
        if not layer.trainable:  # frozen: no gradient is computed for the optimizer
            continue
        for (pname, value, _), g in zip(layer._views, grads):
            flat = value.reshape(-1)
            assert np.shares_memory(flat, value)
            fd = np.empty(flat.size, dtype=np.float64)
            for i in range(flat.size):
                w = flat[i]
                wp, wm = np.float32(w + np.float32(h)), np.float32(w - np.float32(h))
                flat[i] = wp
                lp = core.compute_gradients(x, y)
                flat[i] = wm
                lm = core.compute_gradients(x, y)
                flat[i] = w
                fd[i] = (lp - lm) / (float(wp) - float(wm))
            an = g.reshape(-1).astype(np.float64)
            scale = max(np.abs(an).max(), np.abs(fd).max())
            atol = 2e-3 * scale + 2e-5
            err = np.abs(fd - an)
            bad = err > atol + rtol * np.abs(fd)
            assert not bad.any(), (
                f"{layer.name}.{pname}: analytic {an[bad][:5]} vs finite difference "
                f"{fd[bad][:5]} (max abs err {err.max():.3g}, scale {scale:.3g})")
            checked += flat.size
    # The loss must come back unchanged once every weight is restored.
    assert core.compute_gradients(x, y) == pytest.approx(loss0, rel=1e-6, abs=1e-7)
    return checked


def _mlp(first_activation="tanh", loss="mse", out_activation=None, middle=None, seed=0,
         use_bias=True, kernel_regularizer=None, out_units=D_OUT, input_shape=(D_IN,)):
    rng = np.random.default_rng(seed)
    model = shenjing.Sequential([layers.Input(input_shape)])
    if middle is None:
        model.add(layers.Dense(HIDDEN, activation=first_activation, use_bias=use_bias,
                               kernel_regularizer=kernel_regularizer))
    else:
        model.add(layers.Dense(HIDDEN, use_bias=use_bias,
                               kernel_regularizer=kernel_regularizer))
        model.add(layers.Activation(middle))
    model.add(layers.Dense(out_units, activation=out_activation, use_bias=use_bias))
    model.compile(optimizer="sgd", loss=loss)
    _randomize_weights(model, rng)
    return model, rng


def _inputs_away_from_kinks(model, rng, n=N):
    """Draws x until every first-layer pre-activation is at least MARGIN away from 0."""
    kernel = model.layers[0].kernel.astype(np.float64)
    bias = model.layers[0].bias if model.layers[0].use_bias else 0.0
    for _ in range(1000):
        x = rng.uniform(-1, 1, (n,) + kernel.shape[:1])
        z = x @ kernel + bias
        if np.abs(z).min() > MARGIN:
            return x
    raise AssertionError("could not draw inputs away from the kinks")


# ---------------------------------------------------------------------------------------------
# Dense and activations


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients(use_bias):
    model, rng = _mlp("tanh", use_bias=use_bias)
    assert len(model.layers[0].weights) == (2 if use_bias else 1)
    x = rng.normal(size=(N, D_IN))
    y = rng.normal(size=(N, D_OUT))
    assert finite_difference_check(model, x, y) == (
        D_IN * HIDDEN + HIDDEN * D_OUT + (HIDDEN + D_OUT) * use_bias)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_activation_gradients(activation):
    model, rng = _mlp(activation)
    x = _inputs_away_from_kinks(model, rng)
    y = rng.normal(size=(N, D_OUT))
    finite_difference_check(model, x, y)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_layer_gradients(activation):
    model, rng = _mlp(middle=activation)
    assert [type(l).__name__ for l in model.layers] == ["Dense", "Activation", "Dense"]
    x = _inputs_away_from_kinks(model, rng)
    y = rng.normal(size=(N, D_OUT))
    finite_difference_check(model, x, y)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_layer_matches_dense_activation(activation):
    """Dense(act) and Dense() -> Activation(act) are the same function with the same grads."""
    fused, rng = _mlp(activation, seed=3)
    split, _ = _mlp(middle=activation, seed=3)
    split.set_weights(fused.get_weights())
    x, y = _prepare(_inputs_away_from_kinks(fused, rng), rng.normal(size=(N, D_OUT)))
    la = fused._core.compute_gradients(x, y)
    lb = split._core.compute_gradients(x, y)
    assert la == pytest.approx(lb, rel=1e-5)
    ga = [g.copy() for l in fused.layers for _, _, g in l._views]
    gb = [g.copy() for l in split.layers for _, _, g in l._views]
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_activation_values_match_numpy_reference():
    """Forward values of each activation layer against shenjing.activations (float64)."""
    x = np.linspace(-4, 4, 24, dtype=np.float32).reshape(4, 6)
    for name in ACTIVATIONS:
        model = shenjing.Sequential([layers.Input((6,)), layers.Activation(name)])
        got = model.predict(x, verbose=0)
        ref = getattr(shenjing.activations, name)(x.astype(np.float64))
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, err_msg=name)
    # Keras 3 defaults: leaky_relu slope 0.2, elu alpha 1, exact (erf) gelu.
    model = shenjing.Sequential([layers.Input((3,)), layers.Activation("leaky_relu")])
    np.testing.assert_allclose(model.predict(np.array([[-1.0, 0.0, 2.0]]), verbose=0),
                               [[-0.2, 0.0, 2.0]], rtol=1e-6)
    model = shenjing.Sequential([layers.Input((1,)), layers.Activation("gelu")])
    assert model.predict(np.array([[1.0]]), verbose=0)[0, 0] == pytest.approx(0.8413447, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Losses


def _residual_targets(pred, rng, lo=0.3, hi=0.7, far=(1.4, 2.0)):
    """Targets whose residuals are away from 0 (mae kink) and from +-1 (huber's delta)."""
    mag = np.where(rng.random(pred.shape) < 0.5, rng.uniform(lo, hi, pred.shape),
                   rng.uniform(*far, pred.shape))
    return pred - mag * rng.choice([-1.0, 1.0], pred.shape)


def _check_loss_value(model, x, y, loss_obj):
    """compute_gradients' returned loss equals the NumPy definition of the loss."""
    x, y = _prepare(x, y)
    pred = model.predict(x, verbose=0).astype(np.float64)
    got = model._core.compute_gradients(x, y)
    assert got == pytest.approx(loss_obj(y, pred), rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", losses.Huber(delta=0.5)])
def test_regression_loss_gradients(loss):
    model, rng = _mlp("tanh", loss=loss)
    x = rng.normal(size=(N, D_IN))
    pred = model.predict(x.astype(np.float32), verbose=0).astype(np.float64)
    if isinstance(loss, losses.Huber):
        y = _residual_targets(pred, rng, 0.1, 0.35, (0.7, 1.2))
    else:
        y = _residual_targets(pred, rng)
    _check_loss_value(model, x, y, losses.get(loss))
    finite_difference_check(model, x, y)


def _soft_labels(rng, n=N, w=D_OUT):
    t = rng.random((n, w)) + 0.1
    return t / t.sum(axis=1, keepdims=True)


# (last activation of the model, extra layer after it, from_logits, fused expected)
CE_PATHS = [
    ("softmax", None, False),        # fused softmax + CE in the loss
    ("softmax", "reshape", False),   # softmax backward + CE on probabilities (not fused)
    (None, "softmax_layer", False),  # Activation('softmax') last: fused through the layer
    ("sigmoid", None, False),        # CE renormalises non-softmax probabilities
    (None, None, True),              # logits from a linear Dense
    ("tanh", None, True),            # logits from a non-linear Dense
]


def _ce_model(loss, last_activation, extra, seed):
    model = shenjing.Sequential([layers.Input((D_IN,)), layers.Dense(HIDDEN, "tanh"),
                                 layers.Dense(D_OUT, activation=last_activation)])
    if extra == "reshape":
        model.add(layers.Reshape((D_OUT,)))
    elif extra == "softmax_layer":
        model.add(layers.Activation("softmax"))
    model.compile(optimizer="sgd", loss=loss)
    rng = np.random.default_rng(seed)
    _randomize_weights(model, rng, scale=0.9)
    return model, rng


@pytest.mark.parametrize("last,extra,from_logits", CE_PATHS)
def test_categorical_crossentropy_gradients(last, extra, from_logits):
    loss = losses.CategoricalCrossentropy(from_logits=from_logits)
    model, rng = _ce_model(loss, last, extra, seed=1)
    x = rng.normal(size=(N, D_IN))
    y = _soft_labels(rng)
    y[:3] = np.eye(D_OUT)[rng.integers(0, D_OUT, 3)]  # some one-hot rows too
    _check_loss_value(model, x, y, loss)
    finite_difference_check(model, x, y)


@pytest.mark.parametrize("last,extra,from_logits", CE_PATHS)
def test_sparse_categorical_crossentropy_gradients(last, extra, from_logits):
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model, rng = _ce_model(loss, last, extra, seed=2)
    x = rng.normal(size=(N, D_IN))
    y = np.array([0, 1, 2, 2, 1, 0], dtype=np.float32)
    _check_loss_value(model, x, y, loss)
    finite_difference_check(model, x, y)


def test_sparse_and_categorical_crossentropy_agree():
    for last, extra, from_logits in CE_PATHS:
        sparse = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        dense = losses.CategoricalCrossentropy(from_logits=from_logits)
        ms, rng = _ce_model(sparse, last, extra, seed=4)
        md, _ = _ce_model(dense, last, extra, seed=4)
        x = rng.normal(size=(N, D_IN)).astype(np.float32)
        labels = np.array([2, 0, 1, 1, 2, 0], dtype=np.float32)
        onehot = shenjing.utils.to_categorical(labels, D_OUT)
        ls = ms._core.compute_gradients(x, labels)
        ld = md._core.compute_gradients(x, onehot)
        assert ls == pytest.approx(ld, rel=1e-6)
        for a, b in zip(ms.get_weights(), md.get_weights()):
            np.testing.assert_array_equal(a, b)
        for la, lb in zip(ms.layers, md.layers):
            for (_, _, ga), (_, _, gb) in zip(la._views, lb._views):
                np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-7)


BCE_PATHS = [
    ("sigmoid", None, False),          # fused sigmoid + BCE
    ("sigmoid", "reshape", False),     # sigmoid backward + BCE on probabilities
    (None, "sigmoid_layer", False),    # Activation('sigmoid') last: fused through the layer
    ("softmax", None, False),          # probabilities from a softmax (not fused)
    (None, None, True),                # logits
    ("tanh", None, True),
]


@pytest.mark.parametrize("last,extra,from_logits", BCE_PATHS)
def test_binary_crossentropy_gradients(last, extra, from_logits):
    loss = losses.BinaryCrossentropy(from_logits=from_logits)
    model = shenjing.Sequential([layers.Input((D_IN,)), layers.Dense(HIDDEN, "tanh"),
                                 layers.Dense(D_OUT, activation=last)])
    if extra == "reshape":
        model.add(layers.Flatten())
    elif extra == "sigmoid_layer":
        model.add(layers.Activation("sigmoid"))
    model.compile(optimizer="sgd", loss=loss)
    rng = np.random.default_rng(5)
    _randomize_weights(model, rng, scale=0.9)
    x = rng.normal(size=(N, D_IN))
    y = rng.integers(0, 2, (N, D_OUT)).astype(np.float64)
    y[:2] = rng.random((2, D_OUT))  # soft targets too
    _check_loss_value(model, x, y, loss)
    finite_difference_check(model, x, y)


def test_fused_and_unfused_paths_agree():
    """softmax+CE fused in the loss vs computed through the softmax Jacobian (Reshape after)."""
    for loss in ("categorical_crossentropy", "binary_crossentropy"):
        last = "softmax" if loss.startswith("cat") else "sigmoid"
        fused, rng = _ce_model(loss, last, None, seed=6)
        unfused, _ = _ce_model(loss, last, "reshape", seed=6)
        x = rng.normal(size=(N, D_IN)).astype(np.float32)
        y = _soft_labels(rng).astype(np.float32)
        assert fused._core.compute_gradients(x, y) == pytest.approx(
            unfused._core.compute_gradients(x, y), rel=1e-6)
        for la, lb in zip(fused.layers, unfused.layers):
            for (_, _, ga), (_, _, gb) in zip(la._views, lb._views):
                np.testing.assert_allclose(ga, gb, rtol=1e-4, atol=1e-6)


def test_categorical_crossentropy_clipped_probability_has_zero_gradient():
    """A probability clipped at 1e-7 makes the loss constant: Keras gives zero gradient."""
    model = shenjing.Sequential([layers.Input((2,)), layers.Dense(3, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.layers[0].kernel[...] = 0.0
    model.layers[0].bias[...] = [-30.0, 0.0, 0.0]  # p = [~1e-13, 0.5, 0.5]
    x = np.ones((2, 2), dtype=np.float32)
    y = np.array([[1, 0, 0], [1, 0, 0]], dtype=np.float32)
    loss = model._core.compute_gradients(x, y)
    assert loss == pytest.approx(-np.log(1e-7), rel=1e-5)
    for name, _, grad in model.layers[0]._views:
        np.testing.assert_allclose(grad, 0.0, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Regularizers and reshaping


@pytest.mark.parametrize("reg", ["l1", "l2", regularizers.L1L2(l1=0.05, l2=0.1)])
def test_kernel_regularizer_gradients(reg):
    model, rng = _mlp("tanh", kernel_regularizer=reg)
    kernel = model.layers[0].kernel
    # Keep every kernel entry away from 0, where l1 has its kink.
    kernel[...] = rng.uniform(0.1, 0.6, kernel.shape) * rng.choice([-1, 1], kernel.shape)
    x = rng.normal(size=(N, D_IN)).astype(np.float32)
    y = rng.normal(size=(N, D_OUT)).astype(np.float32)
    # The returned loss includes the penalty l1 * sum|w| + l2 * sum w^2 (Keras: l1=l2=0.01).
    r = regularizers.get(reg)
    k = kernel.astype(np.float64)
    penalty = r.l1 * np.abs(k).sum() + r.l2 * np.square(k).sum()
    data = losses.mean_squared_error(y, model.predict(x, verbose=0)).mean()
    assert model._core.compute_gradients(x, y) == pytest.approx(data + penalty, rel=1e-5)
    assert penalty > 1e-3
    finite_difference_check(model, x, y)
    # The penalty's gradient is actually there: compare with the unregularized model.
    plain, _ = _mlp("tanh")
    plain.set_weights(model.get_weights())
    model._core.compute_gradients(x, y)
    plain._core.compute_gradients(x, y)
    diff = model.layers[0]._views[0][2] - plain.layers[0]._views[0][2]
    np.testing.assert_allclose(diff, r.l1 * np.sign(k) + 2 * r.l2 * k, rtol=1e-4, atol=1e-6)


def test_flatten_in_the_middle_gradients():
    """Dense on a 3-D input (applied to the last axis), Flatten, Dense."""
    rng = np.random.default_rng(7)
    model = shenjing.Sequential([layers.Input((2, 4)), layers.Dense(HIDDEN, "tanh"),
                                 layers.Flatten(), layers.Dense(D_OUT, "sigmoid")])
    model.compile(optimizer="sgd", loss="mse")
    assert model.layers[1].output_shape == (None, 2 * HIDDEN)
    _randomize_weights(model, rng)
    x = rng.normal(size=(N, 2, 4))
    y = rng.random((N, D_OUT))
    finite_difference_check(model, x, y)


def test_reshape_in_the_middle_gradients():
    rng = np.random.default_rng(8)
    model = shenjing.Sequential([layers.Input((D_IN,)), layers.Dense(12, "swish"),
                                 layers.Reshape((4, 3)), layers.Dense(2, "elu"),
                                 layers.Reshape((-1,)), layers.Dense(D_OUT)])
    model.compile(optimizer="sgd", loss=losses.CategoricalCrossentropy(from_logits=True))
    assert model.layers[1].output_shape == (None, 4, 3)
    assert model.layers[2].output_shape == (None, 4, 2)
    assert model.layers[3].output_shape == (None, 8)
    _randomize_weights(model, rng)
    x = rng.normal(size=(N, D_IN))
    y = _soft_labels(rng)
    finite_difference_check(model, x, y)


def test_compute_gradients_does_not_update_and_overwrites_gradients():
    model, rng = _mlp("tanh")
    x, y = _prepare(rng.normal(size=(N, D_IN)), rng.normal(size=(N, D_OUT)))
    before = model.get_weights()
    l1 = model._core.compute_gradients(x, y)
    g1 = [g.copy() for l in model.layers for _, _, g in l._views]
    l2 = model._core.compute_gradients(x, y)  # not accumulated
    g2 = [g.copy() for l in model.layers for _, _, g in l._views]
    assert l1 == l2
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_recompile_with_another_loss_unfuses_the_activation():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(N, D_IN)).astype(np.float32)
    y = rng.random((N, D_OUT)).astype(np.float32)
    recompiled = shenjing.Sequential([layers.Input((D_IN,)), layers.Dense(D_OUT, "softmax")])
    recompiled.compile(optimizer="sgd", loss="categorical_crossentropy")
    recompiled.compile(optimizer="sgd", loss="mse")
    fresh = shenjing.Sequential([layers.Input((D_IN,)), layers.Dense(D_OUT, "softmax")])
    fresh.compile(optimizer="sgd", loss="mse")
    fresh.set_weights(recompiled.get_weights())
    assert recompiled._core.compute_gradients(x, y) == fresh._core.compute_gradients(x, y)
    for (_, _, a), (_, _, b) in zip(recompiled.layers[0]._views, fresh.layers[0]._views):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    finite_difference_check(recompiled, x, y)
