"""End to end on real data: the Keras MNIST example, XOR, Boston housing, the demo."""
import os

import numpy as np
import pytest

import shenjing
from shenjing import layers

needs_data = pytest.mark.skipif(not os.environ.get("SHENJING_DATA"),
                                reason="SHENJING_DATA (the shared datasets folder) is not set")


@needs_data
def test_keras_mnist_example_reaches_975():
    (x_train, y_train), (x_test, y_test) = shenjing.datasets.mnist.load_data()
    x_train, x_test = x_train / 255.0, x_test / 255.0
    shenjing.utils.set_random_seed(0)
    model = shenjing.models.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.975
    assert loss < 0.1
    # predict agrees with evaluate's accuracy
    pred = model.predict(x_test, verbose=0).argmax(axis=1)
    assert np.mean(pred == y_test) == pytest.approx(accuracy)


def test_xor_is_learned():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    shenjing.utils.set_random_seed(3)
    model = shenjing.Sequential([
        layers.Dense(4, activation="sigmoid", input_dim=2),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=shenjing.optimizers.SGD(learning_rate=1.0, momentum=0.9),
                  loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=4, epochs=1500, verbose=0)
    out = model.predict(x, verbose=0)
    assert np.all((out > 0.5) == (y > 0.5)), out
    assert model.evaluate(x, y, verbose=0)[1] == 1.0


@needs_data
def test_boston_housing_beats_the_mean_by_far():
    (x_train, y_train), (x_test, y_test) = shenjing.datasets.boston_housing.load_data()
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    shenjing.utils.set_random_seed(1)
    model = shenjing.Sequential([
        layers.Input(shape=(13,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(1),
    ])
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    model.fit(x_train, y_train, epochs=80, batch_size=16, verbose=0)
    mse, mae = model.evaluate(x_test, y_test, verbose=0)
    baseline = float(np.mean((y_test - y_train.mean()) ** 2))
    assert mse < 0.3 * baseline, (mse, baseline)
    assert mae < 4.0


def test_demo_trains_on_shipped_digits(capsys):
    from shenjing import demo
    accuracy = demo.main(["--dataset", "digits", "--epochs", "20", "--verbose", "0"])
    assert accuracy > 0.9
    assert "UCI 8x8 digits" in capsys.readouterr().out
