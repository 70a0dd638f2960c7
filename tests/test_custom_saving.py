"""Models with custom layers, subclassed models and custom losses saved and loaded: weights
and config in the file, classes from custom_objects or register_keras_serializable (never
code from the file), and the traced graph stored so the C++ loader runs them without Python."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import layers, ops


@keras.saving.register_keras_serializable(package="tests")
class Scale(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.s = self.add_weight(shape=(), initializer="ones", name="scale")

    def call(self, x):
        return ops.tanh(ops.matmul(x, self.w)) * self.s


class Unregistered(layers.Layer):
    def call(self, x):
        return x * 2.0


class Tiny(keras.Model):
    def __init__(self, hidden=8, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(hidden, activation="relu")
        self.scale = Scale(2)

    def call(self, x):
        return self.scale(self.hidden(x))


def custom_mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


X = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(16, 2)).astype(np.float32)


def functional():
    inp = keras.Input((5,))
    h = layers.Dense(4)(inp)
    return keras.Model(inp, ops.relu(Scale(2)(h)) + 0.5)


def test_functional_with_custom_layer_round_trips(tmp_path):
    model = functional()
    model.compile(optimizer="adam", loss=custom_mse)
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects={"custom_mse": custom_mse})
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0),
                               rtol=1e-6)
    # Training resumes where it stopped: same optimizer state, same next step.
    a = model.fit(X, Y, epochs=1, batch_size=16, verbose=0, shuffle=False).history["loss"]
    b = loaded.fit(X, Y, epochs=1, batch_size=16, verbose=0, shuffle=False).history["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_the_cpp_loader_runs_the_traced_graph(tmp_path):
    from shenjing import _core
    model = functional()
    path = str(tmp_path / "m.keras")
    model.save(path)
    core, _, _ = _core.load_model_file(path)
    out = np.empty((len(X), 2), np.float32)
    core.predict(X, out, 0, len(X))
    np.testing.assert_allclose(out, model.predict(X, verbose=0), rtol=1e-6)


def test_weights_files_and_unknown_classes(tmp_path):
    model = functional()
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    other = functional()
    other.load_weights(path)
    np.testing.assert_allclose(other.predict(X, verbose=0), model.predict(X, verbose=0))
    inp = keras.Input((5,))
    plain = keras.Model(inp, Unregistered()(inp))
    plain.save(str(tmp_path / "u.keras"))
    with pytest.raises(ValueError, match="custom_objects"):
        keras.models.load_model(str(tmp_path / "u.keras"))
    again = keras.models.load_model(str(tmp_path / "u.keras"),
                                    custom_objects={"Unregistered": Unregistered})
    np.testing.assert_allclose(again.predict(X, verbose=0), 2 * X)


def test_subclassed_model_round_trips(tmp_path):
    model = Tiny(hidden=6)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects={"Tiny": Tiny})
    assert loaded.hidden.units == 6
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0),
                               rtol=1e-6)


def test_sequential_with_a_custom_layer_round_trips(tmp_path):
    model = keras.Sequential([keras.Input((5,)), Scale(3), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "seq.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # Scale is registered
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0),
                               rtol=1e-6)


def test_subclass_of_a_builtin_layer_keeps_its_config():
    class MyDense(layers.Dense):
        pass

    layer = MyDense(3, activation="relu")
    assert layer.get_config()["activation"] == "relu"
