"""One model used from several Python threads at once (issue 8, item 6), as web servers do.

Each call into the core holds the model's lock for the whole batch (waiting for it without
the GIL), so concurrent predict/evaluate/fit calls are serialised: outputs are exactly those
of a lone call, and workspaces that grow for a bigger batch are never freed under another
call."""
import threading

import numpy as np

import shenjing
from shenjing import layers

RNG = np.random.default_rng(0)


def _cnn():
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([
        layers.Input((12, 12, 1)), layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.3),
        layers.Dense(16, activation="relu"), layers.BatchNormalization(),
        layers.Dense(5, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _run_threads(targets):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # reported below, with the thread's traceback
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_concurrent_predicts_match_lone_predicts():
    model = _cnn()
    # Growing batch sizes make the workspaces grow while the other thread runs.
    inputs = [RNG.normal(size=(n, 12, 12, 1)).astype(np.float32) for n in (1, 7, 64, 300, 33)]
    expected = [model.predict(x, batch_size=len(x), verbose=0) for x in inputs]
    model = _cnn()  # fresh workspaces, same weights (same seed)

    def worker(order):
        def run():
            for _ in range(6):
                for i in order:
                    got = model.predict(inputs[i], batch_size=len(inputs[i]), verbose=0)
                    np.testing.assert_array_equal(got, expected[i])
        return run

    _run_threads([worker([0, 1, 2, 3, 4]), worker([4, 3, 2, 1, 0]), worker([2, 4, 0, 3, 1])])


def test_fit_in_one_thread_predict_and_evaluate_in_others():
    model = _cnn()
    x = RNG.normal(size=(512, 12, 12, 1)).astype(np.float32)
    y = RNG.integers(0, 5, size=512)
    outputs = []

    def fit():
        model.fit(x, y, epochs=3, batch_size=32, verbose=0)

    def predict():
        for n in (1, 5, 100, 700, 3):
            xs = RNG.normal(size=(n, 12, 12, 1)).astype(np.float32)
            outputs.append(model.predict(xs, verbose=0))

    def evaluate():
        for _ in range(4):
            loss, acc = model.evaluate(x[:200], y[:200], batch_size=64, verbose=0)
            assert np.isfinite(loss) and 0 <= acc <= 1

    _run_threads([fit, predict, evaluate])
    for out in outputs:
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_train_steps_from_two_threads_equal_the_same_steps_in_turn():
    """Serialised steps are whole steps: two threads stepping one model give a model that a
    single thread reaches by the same number of steps (SGD on one fixed batch is order-free)."""
    x = RNG.normal(size=(32, 12, 12, 1)).astype(np.float32)
    y = np.ascontiguousarray(RNG.integers(0, 5, size=32), dtype=np.float32)

    def model_sgd():
        shenjing.utils.set_random_seed(1)
        m = shenjing.Sequential([layers.Input((12, 12, 1)), layers.Flatten(),
                                 layers.Dense(5, activation="softmax")])
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return m

    ref = model_sgd()
    for _ in range(40):
        ref._core.train_step(x, y, None, 0, 32)
    model = model_sgd()

    def steps():
        for _ in range(20):
            model._core.train_step(x, y, None, 0, 32)

    _run_threads([steps, steps])
    for a, b in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
