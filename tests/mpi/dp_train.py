"""Run by tests/test_distribution.py under mpirun (and alone, as the reference): trains a
model on fixed data with a DataParallel distribution set when asked, and rank 0 saves the
weights, the history and evaluate's result to an .npz."""
import argparse
import json

import numpy as np

import shenjing as keras
from shenjing import layers

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--parallel", action="store_true")
ap.add_argument("--model", default="mlp")
ap.add_argument("--optimizer", default="adam")
ap.add_argument("--samples", type=int, default=100)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--dropout", type=float, default=0.0)
ap.add_argument("--checkpoint", default="")
ap.add_argument("--weighted", action="store_true", help="sample weights, weighted metrics")
ap.add_argument("--raise-at", type=int, default=-1, help="rank 1 raises at this batch")
a = ap.parse_args()

if a.parallel:
    keras.distribution.set_distribution(keras.distribution.DataParallel())
keras.set_num_threads(1)
keras.utils.set_random_seed(3)
rng = np.random.default_rng(0)
if a.model == "mlp":
    x = rng.normal(size=(a.samples, 12)).astype(np.float32)
    y = rng.integers(0, 3, a.samples)
    model = keras.Sequential([layers.Input((12,)), layers.Dense(16, activation="relu"),
                              layers.Dropout(a.dropout), layers.Dense(3, activation="softmax")])
else:  # "cnn", or "cnn_bn" with (synchronized) BatchNormalization
    x = rng.normal(size=(a.samples, 10, 10, 1)).astype(np.float32)
    y = rng.integers(0, 3, a.samples)
    bn = [layers.BatchNormalization(momentum=0.5)] if a.model == "cnn_bn" else []
    # No bias before a BatchNormalization: its gradient is 0 up to rounding, which Adam
    # would blow up into steps of ±lr whose signs differ between any two summation orders.
    model = keras.Sequential([layers.Input((10, 10, 1)), layers.Conv2D(4, 3, use_bias=not bn),
                              *bn, layers.Activation("relu"), layers.MaxPooling2D(),
                              layers.Flatten(), *[layers.BatchNormalization()] * bool(bn),
                              layers.Dense(3, activation="softmax")])
model.compile(optimizer=a.optimizer, loss="sparse_categorical_crossentropy",
              metrics=["accuracy"], weighted_metrics=["accuracy"] if a.weighted else None)
sw = rng.uniform(0.1, 2.0, a.samples).astype(np.float32) if a.weighted else None


class RaiseAt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == a.raise_at and keras.distribution.rank() == 1:
            raise RuntimeError("rank 1 fails on purpose")


callbacks = [RaiseAt()] if a.raise_at >= 0 else []
if a.checkpoint:
    callbacks.append(keras.callbacks.ModelCheckpoint(a.checkpoint))
hist = model.fit(x, y, batch_size=a.batch, epochs=3, validation_split=0.2, verbose=0,
                 callbacks=callbacks, sample_weight=sw)
ev = model.evaluate(x, y, batch_size=a.batch, verbose=0, sample_weight=sw)
# Rank 0 writes; every rank may read it right after (save waits for the write).
model.save(a.out + ".model.keras")
again = keras.models.load_model(a.out + ".model.keras")
assert np.array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
r = keras.distribution.rank()
# Every rank reports what it saw; rank 0 also keeps the weights.
np.savez(a.out if r == 0 else f"{a.out}.rank{r}.npz", *model.get_weights(),
         history=json.dumps(hist.history), evaluate=np.array(ev))
