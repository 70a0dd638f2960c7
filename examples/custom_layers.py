"""keras.io's "Making new layers and models via subclassing" patterns on MNIST, with only the
import changed: a Linear layer built lazily with add_weight, an activity regularizer through
add_loss, a block of layers, a subclassed Model, a custom loss and a custom metric function.

shenjing traces each call() once into its C++ graph; Keras 3.15.1 (torch backend) run on the
same script, data and starting weights gives the same history to 5 digits
(tests/test_custom_layers.py pins it).

    python examples/custom_layers.py
"""
import numpy as np

import shenjing as keras
from shenjing import ops


class Linear(keras.layers.Layer):
    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                 trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class ActivityRegularizationLayer(keras.layers.Layer):
    def __init__(self, rate=1e-2):
        super().__init__()
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * ops.mean(inputs))
        return inputs


class MLPBlock(keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.linear_1 = Linear(64)
        self.reg = ActivityRegularizationLayer(1e-2)
        self.linear_2 = Linear(10)

    def call(self, inputs):
        x = ops.relu(self.linear_1(inputs))
        x = self.reg(x)
        return self.linear_2(x)


class Classifier(keras.Model):
    def __init__(self):
        super().__init__()
        self.block = MLPBlock()

    def call(self, inputs):
        return ops.softmax(self.block(inputs))


def my_cce(y_true, y_pred):
    return ops.categorical_crossentropy(y_true, y_pred)


def mean_max_prob(y_true, y_pred):
    return ops.max(y_pred, axis=-1)


def run(n_train=6000, n_test=2000, epochs=3, verbose=0):
    """Trains the guide's classifier from fixed starting weights; returns (history, eval)."""
    (x, y), (xt, yt) = keras.datasets.mnist.load_data()
    x = (x[:n_train].reshape(-1, 784) / 255).astype("float32")
    y = np.eye(10, dtype="float32")[y[:n_train]]
    xt = (xt[:n_test].reshape(-1, 784) / 255).astype("float32")
    yt = np.eye(10, dtype="float32")[yt[:n_test]]
    model = Classifier()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=my_cce,
                  metrics=["accuracy", mean_max_prob])
    model(x[:2])  # builds the model (the trace)
    rng = np.random.default_rng(0)  # the same start in any framework
    model.set_weights([rng.normal(0, 0.05, w.shape).astype("float32")
                       for w in model.get_weights()])
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=verbose, shuffle=False)
    return history.history, model.evaluate(xt, yt, verbose=0, return_dict=True)


if __name__ == "__main__":
    hist, ev = run(verbose=2)
    print("test:", {k: round(float(v), 4) for k, v in ev.items()})
