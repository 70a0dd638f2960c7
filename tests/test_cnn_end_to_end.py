"""End to end on real data: the Keras "simple MNIST convnet" and a small Fashion-MNIST CNN."""
import os
import time

import numpy as np
import pytest

import shenjing
from shenjing import layers

needs_data = pytest.mark.skipif(not os.environ.get("SHENJING_DATA"),
                                reason="SHENJING_DATA (the shared datasets folder) is not set")

# The Keras example's 15 epochs. Measured test accuracy after 9..15 epochs (2 threads):
#   seed 0: 99.06 99.01 99.12 99.02 99.01 99.14 99.15
#   seed 1: 98.99 99.11 99.09 99.14 99.16 99.20 99.18
# Epochs 9-12 sit within 0.1% of the bar, so a change in the random streams (the shuffle
# generator became per-model) moved 12 epochs to 98.96%; 15 clear it with margin.
MNIST_EPOCHS = 15


def _images(loader):
    (x, y), (xt, yt) = loader()
    x = np.expand_dims(x.astype("float32") / 255, -1)
    xt = np.expand_dims(xt.astype("float32") / 255, -1)
    return (x, y), (xt, yt)


@needs_data
def test_keras_mnist_convnet_reaches_99():
    (x_train, y_train), (x_test, y_test) = _images(shenjing.datasets.mnist.load_data)
    y_train = shenjing.utils.to_categorical(y_train, 10)
    y_test = shenjing.utils.to_categorical(y_test, 10)
    shenjing.utils.set_random_seed(1)
    model = shenjing.Sequential([
        shenjing.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    assert model.count_params() == 34_826
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    t = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=128, epochs=MNIST_EPOCHS,
                        validation_split=0.1, verbose=0)
    seconds = time.perf_counter() - t
    assert history.history["val_accuracy"][-1] >= 0.985
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"MNIST convnet: {MNIST_EPOCHS} epochs in {seconds:.1f} s, test accuracy "
          f"{accuracy:.4f}, loss {loss:.4f}")
    assert accuracy >= 0.990
    pred = model.predict(x_test, batch_size=256, verbose=0).argmax(axis=1)
    assert np.mean(pred == y_test.argmax(axis=1)) == pytest.approx(accuracy)


@needs_data
def test_fashion_mnist_small_cnn_reaches_90():
    """Conv + BatchNormalization + pooling; 90.3, 90.4, 90.8% test accuracy after 2, 3, 4
    epochs (seed 1, 2 threads)."""
    (x_train, y_train), (x_test, y_test) = _images(shenjing.datasets.fashion_mnist.load_data)
    shenjing.utils.set_random_seed(1)
    model = shenjing.Sequential([
        shenjing.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=4, verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Fashion-MNIST CNN: test accuracy {accuracy:.4f}, loss {loss:.4f}")
    assert accuracy >= 0.90
    bn = model.layers[1]
    assert np.all(bn.moving_variance != 1.0) and len(bn.non_trainable_weights) == 2
