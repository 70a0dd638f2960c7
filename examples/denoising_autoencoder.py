"""Convolutional autoencoder for image denoising: the Keras example
(keras.io/examples/vision/autoencoder), in shenjing, with only the imports changed.

A functional model: Conv2D + MaxPooling2D encoder, Conv2DTranspose decoder. It learns to
reconstruct MNIST digits, then to remove Gaussian noise from them. Prints the validation loss
of both trainings and, when matplotlib is installed, writes ``denoising_autoencoder.png``
(rows: noisy input, denoised output, clean digit).

Run: ``python examples/denoising_autoencoder.py [epochs] [denoise_epochs]`` (Keras trains 50
and 100; the defaults here, 3 and 3, already give clearly denoised digits).
MNIST is read from $SHENJING_DATA/mnist/ or downloaded.
"""
import sys

import numpy as np

from shenjing import layers
from shenjing.datasets import mnist
from shenjing.models import Model


def preprocess(array):
    """Normalizes the supplied array and reshapes it."""
    array = array.astype("float32") / 255.0
    array = np.reshape(array, (len(array), 28, 28, 1))
    return array


def noise(array):
    """Adds random noise to each image in the supplied array."""
    noise_factor = 0.4
    noisy_array = array + noise_factor * np.random.normal(
        loc=0.0, scale=1.0, size=array.shape
    )
    return np.clip(noisy_array, 0.0, 1.0)


def display(noisy, denoised, clean, path="denoising_autoencoder.png", n=10):
    """Writes n noisy / denoised / clean digits as three rows of a PNG (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG written (pip install matplotlib).")
        return
    indices = np.random.randint(len(noisy), size=n)
    plt.figure(figsize=(20, 6))
    for row, images in enumerate((noisy, denoised, clean)):
        for i, image in enumerate(images[indices]):
            ax = plt.subplot(3, n, row * n + i + 1)
            plt.imshow(image.reshape(28, 28))
            plt.gray()
            ax.get_xaxis().set_visible(False)
            ax.get_yaxis().set_visible(False)
    plt.savefig(path)
    print(f"Wrote {path} (rows: noisy, denoised, clean).")


epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
denoise_epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 3

# Since we only need images from the dataset to encode and decode, we
# won't use the labels.
(train_data, _), (test_data, _) = mnist.load_data()

# Normalize and reshape the data
train_data = preprocess(train_data)
test_data = preprocess(test_data)

# Create a copy of the data with added noise
noisy_train_data = noise(train_data)
noisy_test_data = noise(test_data)

input = layers.Input(shape=(28, 28, 1))

# Encoder
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = layers.MaxPooling2D((2, 2), padding="same")(x)

# Decoder
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

# Autoencoder
autoencoder = Model(input, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
autoencoder.summary()

# First, train it to reconstruct clean digits.
history = autoencoder.fit(
    x=train_data,
    y=train_data,
    epochs=epochs,
    batch_size=128,
    shuffle=True,
    validation_data=(test_data, test_data),
)
print(f"Reconstruction: validation loss {history.history['val_loss'][-1]:.4f}")

# Then train it to map noisy digits to clean ones.
history = autoencoder.fit(
    x=noisy_train_data,
    y=train_data,
    epochs=denoise_epochs,
    batch_size=128,
    shuffle=True,
    validation_data=(noisy_test_data, test_data),
)
print(f"Denoising: validation loss {history.history['val_loss'][-1]:.4f}")

predictions = autoencoder.predict(noisy_test_data)
display(noisy_test_data, predictions, test_data)
