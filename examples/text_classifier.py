"""Text classification with a bidirectional LSTM on padded sequences of any length.

keras.io's "Bidirectional LSTM on IMDB" (examples/nlp/bidirectional_lstm_imdb.py), with the
padding masked (``Embedding(mask_zero=True)``) and an input of unknown length
(``Input(shape=(None,))``). The IMDB download needs a network, so the reviews here are
synthetic: a vocabulary of 2,000 ids (0 is padding), "positive" ids 2..101 and "negative" ids
102..201 among neutral ones, reviews of 10 to 200 tokens, labelled positive when they hold
more positive than negative ids. Only the import line differs from Keras code.

    python examples/text_classifier.py [--epochs 3] [--samples 12000] [--quick]

Prints the test accuracy, and checks that a review's prediction does not depend on how much
padding it gets (the mask makes the LSTMs skip the padded steps).
"""
import argparse
import time

import numpy as np

import shenjing as keras
from shenjing import layers

MAX_FEATURES = 2000  # the vocabulary
MAXLEN = 200  # reviews are cut/padded to this many tokens


def synthetic_reviews(n, rng):
    reviews, labels = [], []
    for _ in range(n):
        length = int(rng.integers(10, MAXLEN + 1))
        ids = rng.integers(202, MAX_FEATURES, length)  # neutral words
        polar = rng.random(length) < 0.15
        ids[polar] = rng.integers(2, 202, polar.sum())  # positive 2..101, negative 102..201
        pos, neg = np.sum((ids >= 2) & (ids < 102)), np.sum((ids >= 102) & (ids < 202))
        if pos == neg:  # no ties: one more word decides
            ids[0] = 2 if rng.random() < 0.5 else 102
            pos, neg = pos + (ids[0] == 2), neg + (ids[0] == 102)
        reviews.append(list(ids))
        labels.append(int(pos > neg))
    return reviews, np.array(labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=12000)
    ap.add_argument("--quick", action="store_true", help="a few hundred samples, one epoch")
    a = ap.parse_args()
    n, epochs = (400, 1) if a.quick else (a.samples, a.epochs)
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x_train, y_train = synthetic_reviews(n, rng)
    x_val, y_val = synthetic_reviews(max(n // 5, 50), rng)
    print(len(x_train), "training sequences,", len(x_val), "validation sequences")
    x_train = keras.utils.pad_sequences(x_train, maxlen=MAXLEN)
    x_val = keras.utils.pad_sequences(x_val, maxlen=MAXLEN)

    # Input for variable-length sequences of integers
    inputs = keras.Input(shape=(None,), dtype="int32")
    # Embed each integer in a 64-dimensional vector; id 0 (padding) is masked
    x = layers.Embedding(MAX_FEATURES, 64, mask_zero=True)(inputs)
    # Add 2 bidirectional LSTMs
    x = layers.Bidirectional(layers.LSTM(32, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(32))(x)
    # Add a classifier
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.summary()

    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_data=(x_val, y_val))
    seconds = (time.perf_counter() - start) / epochs
    loss, accuracy = model.evaluate(x_val, y_val, verbose=0)
    print(f"validation accuracy {accuracy:.4f}, loss {loss:.4f}, {seconds:.1f} s per epoch")

    # The same reviews with twice the padding: the masked steps change nothing.
    longer = np.pad(x_val[:64], ((0, 0), (MAXLEN, 0)))
    gap = np.abs(model.predict(longer, verbose=0) - model.predict(x_val[:64], verbose=0)).max()
    print(f"largest change of a prediction with {MAXLEN} more padding steps: {gap:.2e}")


if __name__ == "__main__":
    main()
