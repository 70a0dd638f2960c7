"""Custom layers, models and losses (the keras.io guide "Making new layers and models via
subclassing" patterns), traced once into the C++ graph."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import layers, ops


class Linear(layers.Layer):
    """The guide's Linear, weights made in __init__."""

    def __init__(self, units=32, input_dim=32):
        super().__init__()
        self.w = self.add_weight(shape=(input_dim, units), initializer="random_normal",
                                 trainable=True)
        self.b = self.add_weight(shape=(units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class LazyLinear(layers.Layer):
    """The guide's deferred-build Linear."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                 trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class MLPBlock(layers.Layer):
    def __init__(self):
        super().__init__()
        self.linear_1 = LazyLinear(32)
        self.linear_2 = LazyLinear(32)
        self.linear_3 = LazyLinear(1)

    def call(self, inputs):
        x = self.linear_1(inputs)
        x = ops.relu(x)
        x = self.linear_2(x)
        x = ops.relu(x)
        return self.linear_3(x)


class ActivityRegularizationLayer(layers.Layer):
    def __init__(self, rate=1e-2):
        super().__init__()
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * ops.mean(inputs))
        return inputs


class OuterLayer(layers.Layer):
    def __init__(self):
        super().__init__()
        self.activity_reg = ActivityRegularizationLayer(1e-2)

    def call(self, inputs):
        return self.activity_reg(inputs)


def test_linear_on_arrays_and_its_weights():
    x = ops.ones((2, 2))
    layer = Linear(4, 2)
    y = layer(x)
    assert layer.weights == [layer.w, layer.b]
    np.testing.assert_allclose(y, np.ones((2, 2)) @ layer.w.numpy() + layer.b.numpy(),
                               rtol=1e-6)


def test_deferred_build_and_nested_block_count_weights():
    block = MLPBlock()
    y = block(ops.ones(shape=(3, 64)))
    assert y.shape == (3, 1)
    assert len(block.weights) == 6 and len(block.trainable_weights) == 6


def test_linear_in_a_model_predicts_what_numpy_computes():
    inp = keras.Input((5,))
    layer = LazyLinear(3)
    model = keras.Model(inp, ops.relu(layer(inp)))
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    want = np.maximum(x @ layer.w.numpy() + layer.b.numpy(), 0)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    # The Variables read the core's buffers: changing one changes the model.
    layer.b.assign(np.full((3,), 10.0, np.float32))
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np.maximum(x @ layer.w.numpy() + 10.0, 0), rtol=1e-5)


def test_losses_of_add_loss_on_arrays():
    layer = OuterLayer()
    assert len(layer.losses) == 0
    _ = layer(ops.zeros((1, 1)))
    assert len(layer.losses) == 1
    _ = layer(ops.zeros((1, 1)))
    assert len(layer.losses) == 1  # reset at each top-level call


def test_add_loss_joins_the_training_loss():
    inp = keras.Input((4,))
    x = layers.Dense(3, kernel_initializer="ones", use_bias=False)(inp)
    out = OuterLayer()(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(8, 4)).astype(np.float32)
    ys = rng.normal(size=(8, 3)).astype(np.float32)
    h = xs @ np.ones((4, 3), np.float32)
    want = np.mean((h - ys) ** 2) + 1e-2 * np.mean(h)
    got = model.evaluate(xs, ys, batch_size=8, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_mlp_of_custom_layers_trains():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 1))).astype(np.float32)
    inp = keras.Input((8,))
    model = keras.Model(inp, MLPBlock()(inp))
    model.compile(optimizer="adam", loss="mse")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.2 * first


class SubclassedMLP(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense1 = layers.Dense(16, activation="relu")
        self.block = LazyLinear(1)

    def call(self, inputs, training=False):
        return self.block(self.dense1(inputs))


def test_subclassed_model_fits_predicts_and_lists_layers():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(128, 4)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    model = SubclassedMLP()
    model.compile(optimizer="adam", loss="mse")
    model.build((None, 4))
    # The same layers as a functional model, from the same weights, train identically.
    inp = keras.Input((4,))
    twin = keras.Model(inp, LazyLinear(1)(layers.Dense(16, activation="relu")(inp)))
    twin.set_weights(model.get_weights())
    twin.compile(optimizer="adam", loss="mse")
    before = [np.array(w) for w in model.weights]
    h = model.fit(x, y, epochs=5, batch_size=16, verbose=0, shuffle=False)
    h2 = twin.fit(x, y, epochs=5, batch_size=16, verbose=0, shuffle=False)
    np.testing.assert_allclose(h.history["loss"], h2.history["loss"], rtol=1e-6)
    assert all(np.abs(np.array(w) - b).max() > 0 for w, b in zip(model.weights, before))
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert model.predict(x[:3], verbose=0).shape == (3, 1)
    assert [type(la).__name__ for la in model.layers] == ["Dense", "LazyLinear"]
    assert len(model.weights) == 4


def test_custom_train_step_is_refused_clearly():
    class WithStep(keras.Model):
        def train_step(self, data):
            return {}

        def call(self, x):
            return x

    with pytest.raises(ValueError, match="train_step"):
        WithStep()


def test_value_dependent_control_flow_names_the_layer():
    class Branchy(layers.Layer):
        def call(self, x):
            if ops.sum(x) > 0:
                return x
            return -x

    with pytest.raises(TypeError, match=r"(?s)layer 'branchy.*Python control flow"):
        Branchy()(keras.Input((3,)))


def test_custom_loss_function_and_subclass_train_to_their_values():
    def my_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    class CustomMSE(keras.losses.Loss):
        def __init__(self, regularization_factor=0.1, name="custom_mse"):
            super().__init__(name=name)
            self.regularization_factor = regularization_factor

        def call(self, y_true, y_pred):
            mse = ops.mean(ops.square(y_true - y_pred), axis=-1)
            reg = ops.mean(ops.square(0.5 - y_pred), axis=-1)
            return mse + reg * self.regularization_factor

    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = rng.normal(size=(64, 2)).astype(np.float32)
    for loss, extra in ((my_mse, 0.0), (CustomMSE(), 0.1)):
        inp = keras.Input((3,))
        model = keras.Model(inp, layers.Dense(2)(inp))
        model.compile(optimizer="sgd", loss=loss)
        p = model.predict(x, verbose=0)
        want = np.mean((y - p) ** 2) + extra * np.mean((0.5 - p) ** 2)
        np.testing.assert_allclose(model.evaluate(x, y, verbose=0), want, rtol=1e-5)
        # Same loss as the built-in mse when extra is 0: the same training.
        hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_lambda_is_traced():
    inp = keras.Input((3,))
    out = layers.Lambda(lambda t: ops.square(t) * 2.0 + 1.0)(inp)
    model = keras.Model(inp, out)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(model.predict(x, verbose=0), x ** 2 * 2 + 1, rtol=1e-6)


@pytest.mark.skipif(not __import__("os").environ.get("SHENJING_DATA"),
                    reason="SHENJING_DATA (the shared datasets folder) is not set")
def test_guide_patterns_train_to_keras_results():
    """examples/custom_layers.py; the figures are Keras 3.15.1's (torch backend) on the same
    script, data and starting weights."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "custom_layers.py")
    spec = importlib.util.spec_from_file_location("custom_layers_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    hist, ev = example.run()
    keras_hist = {"accuracy": [0.708, 0.8795, 0.90733], "loss": [1.25548, 0.472, 0.35718],
                  "mean_max_prob": [0.40251, 0.76565, 0.83685]}
    keras_eval = {"accuracy": 0.869, "loss": 0.45842, "mean_max_prob": 0.81032}
    assert set(hist) == set(keras_hist)
    for k, v in keras_hist.items():
        np.testing.assert_allclose(hist[k], v, atol=2e-4)
    for k, v in keras_eval.items():
        np.testing.assert_allclose(ev[k], v, atol=2e-4)


def test_summary_lists_custom_layers_and_model_level_ops_as_keras():
    """Keras 3.15.1 prints these rows for the same model (ops inside a custom layer are its
    insides and take no names; constants are arguments, not rows)."""
    from shenjing.layers import base
    inp = keras.Input((8,))
    block = MLPBlock()
    before = base._name_counts["relu"]
    hidden = block(inp)  # two relus inside
    assert base._name_counts["relu"] == before
    model = keras.Model(inp, ops.relu(hidden) * 2.0)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert f"{block.name} (MLPBlock)" in text and "1,377" in text
    assert "(Relu)" in text and "(Multiply)" in text and "Constant" not in text


def test_subclass_passing_inputs_and_outputs_is_a_functional_model():
    class Wrapped(keras.Model):
        def __init__(self, units=4):
            inputs = keras.Input((3,))
            super().__init__(inputs, layers.Dense(units)(inputs))

    model = Wrapped(5)
    assert isinstance(model, keras.models.Functional)
    assert model.output_shape == (None, 5)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 5), np.float32), verbose=0)

    class WithStep(keras.Model):
        def __init__(self):
            inputs = keras.Input((3,))
            super().__init__(inputs, layers.Dense(2)(inputs))

        def train_step(self, data):
            return {}

    with pytest.raises(ValueError, match="train_step"):
        WithStep()


class Encoder(layers.Layer):
    """The guide's VAE encoder shape: one call, several outputs."""

    def __init__(self, latent_dim=2, **kwargs):
        super().__init__(**kwargs)
        self.dense_proj = layers.Dense(8, activation="relu")
        self.dense_mean = layers.Dense(latent_dim)
        self.dense_log_var = layers.Dense(latent_dim)

    def call(self, inputs):
        x = self.dense_proj(inputs)
        return self.dense_mean(x), self.dense_log_var(x)


def test_custom_layer_with_several_outputs(tmp_path):
    inp = keras.Input((5,))
    z_mean, z_log_var = Encoder(name="encoder")(inp)
    model = keras.Model(inp, [z_mean, ops.exp(0.5 * z_log_var)])
    x = np.random.default_rng(5).normal(size=(6, 5)).astype(np.float32)
    enc = model.get_layer("encoder")
    h = np.maximum(x @ enc.dense_proj.kernel + enc.dense_proj.bias, 0)
    mean, scale = model.predict(x, verbose=0)
    np.testing.assert_allclose(mean, h @ enc.dense_mean.kernel + enc.dense_mean.bias, rtol=1e-5)
    np.testing.assert_allclose(scale, np.exp(0.5 * (h @ enc.dense_log_var.kernel +
                                                     enc.dense_log_var.bias)), rtol=1e-5)
    assert z_log_var._keras_history[2] == 1
    lines = []
    model.summary(print_fn=lines.append)
    assert "[(None, 2), (None, 2)]" in "\n".join(lines)
    model.compile(optimizer="adam", loss=["mse", "mse"])
    model.fit(x, [np.zeros((6, 2)), np.ones((6, 2))], epochs=2, verbose=0)
    path = str(tmp_path / "enc.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects={"Encoder": Encoder})
    for a, b in zip(loaded.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_training_argument_follows_the_run_and_branches_on_it_are_refused():
    class Block(layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(4)
            self.drop = layers.Dropout(0.5, seed=1)

        def call(self, x, training=None):
            return self.drop(self.dense(x), training=training)

    inp = keras.Input((3,))
    block = Block()
    model = keras.Model(inp, block(inp))
    x = np.ones((64, 3), np.float32)
    # Dropout is on in training (fit) and off in predict, as Keras's training=True/False.
    assert len(block.dense._inbound_nodes) == 1
    w = block.dense.kernel
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ w + block.dense.bias,
                               rtol=1e-6)

    class Branchy(layers.Layer):
        def call(self, x, training=None):
            return x * 2.0 if training else x

    with pytest.raises(ValueError, match="training=True than with training=False"):
        Branchy()(keras.Input((3,)))

    class BranchyModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x, training=False):
            return self.dense(x) + (1.0 if training else 0.0)

    with pytest.raises(ValueError, match="training=True than with training=False"):
        BranchyModel().build((None, 3))


def test_tracing_in_two_threads_keeps_each_trace_apart():
    import threading
    started, release = threading.Event(), threading.Event()

    class Slow(layers.Layer):
        def call(self, x):
            y = ops.relu(x)
            started.set()
            release.wait(5)  # another thread builds a model meanwhile
            return y

    names = {}

    def other():
        started.wait(5)
        t = ops.relu(keras.Input((2,)))
        names["other"] = t._node.layer.name
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    Slow()(keras.Input((2,)))
    thread.join()
    assert "/" not in names["other"]  # a model-level op, not one inside Slow's trace
