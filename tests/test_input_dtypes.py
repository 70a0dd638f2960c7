"""Inputs of any numeric dtype are converted per batch inside the core's gather (issue 8,
item 12): results equal those of float32 input, and memory stays at the input's own size."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import shenjing
from shenjing import layers

RNG = np.random.default_rng(0)
X8 = RNG.integers(0, 256, size=(200, 6, 6, 1), dtype=np.uint8)
Y = RNG.integers(0, 4, size=200)


def _train(x, seed=0):
    shenjing.utils.set_random_seed(seed)
    model = shenjing.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(3, 3),
                                 layers.Flatten(), layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, Y, epochs=2, batch_size=32, verbose=0, validation_split=0.2)
    return model, hist.history


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32,
                                   np.int64, np.uint64, np.float64, np.float16, np.bool_])
def test_any_numeric_dtype_trains_like_float32(dtype):
    x = (X8 > 127) if dtype is np.bool_ else X8.astype(dtype) if dtype is not np.int8 else \
        (X8.astype(np.int16) - 128).astype(np.int8)
    ref_model, ref = _train(np.asarray(x, dtype=np.float32))
    model, hist = _train(x)
    assert hist == ref
    for a, b in zip(ref_model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  model.predict(np.asarray(x, np.float32), verbose=0))
    assert model.evaluate(x, Y, verbose=0) == model.evaluate(x.astype(np.float32), Y,
                                                             verbose=0)


def test_non_contiguous_input_is_accepted():
    model, _ = _train(X8)
    view = np.asfortranarray(X8)
    np.testing.assert_array_equal(model.predict(view, verbose=0), model.predict(X8, verbose=0))


def test_float64_beyond_float32_or_not_finite_is_refused():
    model, _ = _train(X8)
    for bad, match in ((1e39, "too large for float32"), (np.nan, "NaN or infinity"),
                       (-np.inf, "NaN or infinity")):
        # (C++ checks each converted batch as well; Python names the problem first.)
        x = X8.astype(np.float64)
        x[150, 2, 3, 0] = bad
        with pytest.raises(ValueError, match=match):
            model.fit(x, Y, epochs=1, verbose=0)
        with pytest.raises(ValueError, match=match):
            model.evaluate(x, Y, verbose=0)
        with pytest.raises(ValueError, match=match):
            model.predict(x, verbose=0)


_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import shenjing
    from shenjing import layers
    n, dtype = int(sys.argv[1]), sys.argv[2]
    x = np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    x = x.astype(dtype)
    y = np.zeros(n, np.int64)
    model = shenjing.Sequential([layers.Input((28, 28)), layers.Flatten(),
                                 layers.Dense(10, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:64], y[:64], verbose=0)  # warm up the core's workspaces
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = peak()
    model.fit(x, y, batch_size=1024, epochs=1, verbose=0)
    model.evaluate(x, y, batch_size=1024, verbose=0)
    model.predict(x, batch_size=1024, verbose=0)
    print(x.nbytes, peak() - base)
""")


@pytest.mark.parametrize("dtype", ["uint8", "float64"])
def test_fit_does_not_copy_the_data_set_as_float32(dtype):
    n = 200_000 if dtype == "uint8" else 60_000
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(n), dtype],
                         capture_output=True, text=True, check=True)
    nbytes, grown = map(int, out.stdout.split())
    float32_copy = n * 28 * 28 * 4
    # predict's float32 output (n x 10) is the only data-set-sized allocation left.
    assert grown < 0.15 * float32_copy, (
        f"peak RSS grew by {grown / 2**20:.0f} MiB during fit/evaluate/predict of a "
        f"{nbytes / 2**20:.0f} MiB {dtype} data set (a float32 copy is "
        f"{float32_copy / 2**20:.0f} MiB)")
