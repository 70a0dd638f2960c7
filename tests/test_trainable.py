"""Frozen layers (issue 8, item 1): ``layer.trainable = False`` and ``model.trainable = False``
as Keras 3 has them. Frozen weights get no update and no weight penalty, BatchNormalization
runs in inference mode, and a change takes effect at the next ``compile()``."""
import numpy as np
import pytest

import shenjing
from shenjing import layers, regularizers

from test_gradients import finite_difference_check

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 6)).astype(np.float32)
Y = RNG.integers(0, 3, size=64)


def _model(first_trainable=True, bn=False, seed=0):
    shenjing.utils.set_random_seed(seed)
    stack = [layers.Input((6,)),
             layers.Dense(8, activation="tanh", trainable=first_trainable, name="first")]
    if bn:
        stack.append(layers.BatchNormalization(name="bn"))
    stack.append(layers.Dense(3, activation="softmax", name="head"))
    return shenjing.Sequential(stack)


def _fit(model, epochs=2, optimizer="adam"):
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=epochs, batch_size=16, verbose=0)


def test_frozen_in_the_constructor():
    model = _model(first_trainable=False)
    first = [w.copy() for w in model.get_layer("first").weights]
    head = [w.copy() for w in model.get_layer("head").weights]
    _fit(model)
    for a, b in zip(first, model.get_layer("first").weights):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(head, model.get_layer("head").weights))
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2


def test_change_takes_effect_at_the_next_compile():
    model = _model()
    _fit(model, epochs=1)
    layer = model.get_layer("first")
    layer.trainable = False
    before = layer.kernel.copy()
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)  # compiled while trainable: moves
    assert not np.array_equal(before, layer.kernel)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = layer.kernel.copy()
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    np.testing.assert_array_equal(before, layer.kernel)
    layer.trainable = True  # and back
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(before, layer.kernel)


def test_model_trainable_false_freezes_every_layer():
    model = _model(bn=True)
    model.trainable = False
    assert all(not layer.trainable for layer in model.layers)
    assert model.trainable_weights == []
    before = [w.copy() for w in model.get_weights()]
    _fit(model)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # moving statistics included
    model.trainable = True
    assert all(layer.trainable for layer in model.layers)


def test_frozen_batch_normalization_runs_in_inference_mode():
    model = _model(bn=True)
    _fit(model, epochs=1)
    bn = model.get_layer("bn")
    bn.trainable = False
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    stats = [w.copy() for w in bn.weights]
    x, y = X[:16], np.ascontiguousarray(Y[:16], dtype=np.float32)
    # The training-mode loss equals the inference-mode loss: no batch statistics are used.
    train_loss = model._core.compute_gradients(x, y)
    assert train_loss == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(stats, bn.weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("frozen", ["first", "bn", "head"])
def test_gradients_through_frozen_layers(frozen):
    """The layers still training get exact gradients through (or before) the frozen one."""
    model = _model(bn=True, seed=3)
    model.get_layer(frozen).trainable = False
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    for layer in model.layers:
        for name, value, _ in layer._views:
            if name in ("kernel", "bias", "gamma", "beta"):
                value[...] = rng.uniform(-0.6, 0.6, value.shape)
    assert finite_difference_check(model, X[:6], Y[:6].astype(np.float32)) > 0


def test_frozen_weights_carry_no_penalty():
    """Keras adds regularization losses of trainable weights only."""
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((6,)),
                                 layers.Dense(4, kernel_regularizer=regularizers.l2(10.0),
                                              trainable=False),
                                 layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    y = np.zeros((64, 1), np.float32)
    data_loss = float(np.mean(model.predict(X, verbose=0) ** 2))
    assert model.evaluate(X, y, verbose=0) == pytest.approx(data_loss, rel=1e-5)
    model.layers[0].trainable = True
    model.compile(optimizer="sgd", loss="mse")
    penalty = 10.0 * float(np.sum(model.layers[0].kernel.astype(np.float64) ** 2))
    assert model.evaluate(X, y, verbose=0) == pytest.approx(data_loss + penalty, rel=1e-5)


def test_frozen_layers_survive_save_and_load(tmp_path):
    model = _model(first_trainable=False)
    _fit(model, epochs=1)
    model.save(tmp_path / "m.keras")
    loaded = shenjing.models.load_model(tmp_path / "m.keras")
    assert not loaded.get_layer("first").trainable
    before = loaded.get_layer("first").kernel.copy()
    loaded.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(before, loaded.get_layer("first").kernel)


def test_summary_counts_frozen_params():
    model = _model(first_trainable=False)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Trainable params: 27 " in text and "Non-trainable params: 56 " in text
