"""Calling a loss object directly (Keras 3's Loss.__call__): eager on arrays with
sample_weight, and traced inside a custom layer's call() when given symbolic tensors (keras.io's
LogisticEndpoint pattern: a layer taking (targets, logits) positionally, adding the loss)."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import losses, ops


def _keras_reduce(values, sw):
    """Keras's reduce_weighted_values with sum_over_batch_size: sum(values * w) / size."""
    values = np.asarray(values, np.float64)
    if sw is not None:
        sw = np.asarray(sw, np.float64)
        while sw.ndim < values.ndim:
            sw = sw[..., None]
        values = values * sw
    return values.sum() / values.size


@pytest.mark.parametrize("loss,fn", [
    (losses.MeanSquaredError(), losses.mean_squared_error),
    (losses.MeanAbsoluteError(), losses.mean_absolute_error),
    (losses.BinaryCrossentropy(), losses.binary_crossentropy),
    (losses.CategoricalCrossentropy(), losses.categorical_crossentropy),
])
@pytest.mark.parametrize("shape", [(4, 3), (4, 5, 3)])
def test_eager_sample_weight(loss, fn, shape):
    rng = np.random.default_rng(0)
    y_pred = rng.uniform(0.05, 0.95, shape).astype(np.float32)
    y_true = rng.uniform(0, 1, shape).astype(np.float32)
    sw = rng.uniform(0, 2, shape[:-1]).astype(np.float32)
    expected = _keras_reduce(fn(y_true, y_pred), sw)
    assert loss(y_true, y_pred, sample_weight=sw) == pytest.approx(expected, rel=1e-5)
    assert loss(y_true, y_pred) == pytest.approx(_keras_reduce(fn(y_true, y_pred), None),
                                                 rel=1e-6)


def test_eager_value_matches_keras_number():
    # keras 3.15: BinaryCrossentropy()([[0., 1.]], [[0.2, 0.7]], sample_weight=[2.0]) = 0.5798
    got = losses.BinaryCrossentropy()(np.array([[0., 1.]]), np.array([[0.2, 0.7]]),
                                      sample_weight=np.array([2.0]))
    assert got == pytest.approx(0.5798, abs=1e-4)


class LogisticEndpoint(keras.layers.Layer):
    def __init__(self, name=None):
        super().__init__(name=name)
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    def call(self, targets, logits, sample_weights=None):
        self.add_loss(self.loss_fn(targets, logits, sample_weights))
        return ops.softmax(logits)


def _endpoint_model():
    inputs = keras.Input(shape=(3,), name="inputs")
    targets = keras.Input(shape=(10,), name="targets")
    logits = keras.layers.Dense(10)(inputs)
    predictions = LogisticEndpoint(name="predictions")(targets, logits)
    return keras.Model(inputs=[inputs, targets], outputs=predictions)


def test_symbolic_loss_in_custom_layer_is_traced():
    model = _endpoint_model()
    rng = np.random.default_rng(1)
    x = rng.random((6, 3)).astype(np.float32)
    t = rng.random((6, 10)).astype(np.float32)
    probs = model.predict([x, t], verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    # The traced add_loss term is the mean binary cross-entropy of the logits.
    dense = next(layer for layer in model.layers if layer.weights)
    kernel, bias = dense.get_weights()
    want = losses.BinaryCrossentropy(from_logits=True)(t, x @ kernel + bias)
    model.compile(optimizer="sgd", loss=lambda y_true, y_pred: ops.mean(y_pred * 0.0, axis=-1))
    got = model.evaluate([x, t], np.zeros((6, 10), np.float32), verbose=0)
    assert got == pytest.approx(want, rel=1e-5)


def test_model_trained_on_add_loss_alone():
    """keras.io's LogisticEndpoint: compile(optimizer) with no loss, fit(dict of inputs) with no
    targets; the add_loss term is what is minimised and logged as 'loss'."""
    model = _endpoint_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    rng = np.random.default_rng(2)
    data = {"inputs": rng.random((64, 3)), "targets": (rng.random((64, 10)) > 0.5) * 1.0}
    first = model.evaluate(data, verbose=0)
    dense = next(layer for layer in model.layers if layer.weights)
    kernel, bias = dense.get_weights()
    assert first == pytest.approx(losses.BinaryCrossentropy(from_logits=True)(
        data["targets"], data["inputs"] @ kernel + bias), rel=1e-5)
    hist = model.fit(data, epochs=5, batch_size=16, verbose=0)
    assert list(hist.history) == ["loss"] and hist.history["loss"][-1] < first
