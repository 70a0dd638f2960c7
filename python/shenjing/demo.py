"""Trains the Keras MNIST example and prints the test accuracy: ``python -m shenjing.demo``.

Looks for MNIST in $SHENJING_DATA, the cache folder, or downloads it; with no MNIST reachable it
trains on the UCI 8x8 handwritten digits shipped inside the package, and says so.
"""
import argparse
import sys
import time

import shenjing
from shenjing import layers
from shenjing.datasets import digits, mnist
from shenjing.datasets._files import DatasetNotFoundError


def load(dataset):
    if dataset in ("auto", "mnist"):
        try:
            return "MNIST", mnist.load_data()
        except DatasetNotFoundError as e:
            if dataset == "mnist":
                raise
            print("MNIST is not reachable here (set SHENJING_DATA to a folder with "
                  "mnist/*.gz to use it):\n" + str(e).splitlines()[0], file=sys.stderr)
            print("Training on the UCI 8x8 handwritten digits shipped with shenjing instead.\n")
    return "UCI 8x8 digits", digits.load_data()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("auto", "mnist", "digits"), default="auto")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)

    name, ((x_train, y_train), (x_test, y_test)) = load(args.dataset)
    scale = float(x_train.max()) or 1.0
    x_train, x_test = x_train / scale, x_test / scale
    print(f"{name}: {len(x_train)} training and {len(x_test)} test images of "
          f"{x_train.shape[1]}x{x_train.shape[2]}; {shenjing.config()['isa']} kernels, "
          f"{shenjing.get_num_threads()} threads.")

    shenjing.utils.set_random_seed(42)
    model = shenjing.Sequential([
        layers.Input(shape=x_train.shape[1:]),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, verbose=args.verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Trained {args.epochs} epochs in {seconds:.1f} s. "
          f"Test accuracy: {accuracy:.4f} (loss {loss:.4f}).")
    return accuracy


if __name__ == "__main__":
    main()
