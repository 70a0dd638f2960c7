"""Property-based fuzz of the public API: random layer stacks with random (sometimes bad)
constructor arguments, random input dtypes and shapes, random compile choices.

Every failure must be a ValueError or TypeError (anything else, or a crash, fails); every
success must give finite predictions that match one-sample-at-a-time prediction, a fit
epoch with a finite loss and a finite evaluation. Deterministic (derandomize) and a few
hundred cases by default; set SHENJING_FUZZ_EXAMPLES to run more locally.

Issue 8's bug classes are drawn on purpose, with an oracle each: outputs of rank > 2 (the head
Dense sometimes works on the last axis of an unflattened stack, with per-position targets),
metrics that need other targets than the loss's (refused with a ValueError naming the
metric exactly when Keras's rule says so), frozen layers (whose weights must not move), and
huge kernel sizes, strides and dilations (refused, never wrapped).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shenjing
from shenjing import layers

EXAMPLES = int(os.environ.get("SHENJING_FUZZ_EXAMPLES", "300"))

BAD_INTS = [0, -1, 2.5, None, "3", True, 2 ** 31, 2 ** 31 - 1, 2 ** 62]
BAD_ANY = [0, -1, 2.5, None, "x", 10 ** 12, [], object()]
ACTIVATIONS = [None, "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus",
               "swish", "gelu"]
OPTIMIZERS = ["sgd", "adam", "rmsprop", "adamw", "adagrad"]
LOSSES = ["mse", "mae", "huber", "binary_crossentropy", "categorical_crossentropy",
          "sparse_categorical_crossentropy"]
METRICS = ["accuracy", "mae", "mse", "binary_accuracy", "categorical_accuracy",
           "sparse_categorical_accuracy"]


def _arg(draw, good, bad=BAD_INTS):
    """A good value 9 times in 10, else one of ``bad``."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(bad))
    return draw(good)


def _size(draw, lo=1, hi=3, bad=BAD_INTS, rank=1):
    value = _arg(draw, st.integers(lo, hi), bad)
    if rank == 2 and isinstance(value, int) and not isinstance(value, bool) and \
            draw(st.booleans()):
        return (value, _arg(draw, st.integers(lo, hi), bad))
    return value


def _activation(draw):
    return _arg(draw, st.sampled_from(ACTIVATIONS), ["nope", 3, ""])


def _padding(draw):
    return _arg(draw, st.sampled_from(["valid", "same"]), ["full", 1, None])


@st.composite
def layer(draw):
    kind = draw(st.sampled_from(["Dense", "Activation", "Dropout", "Flatten", "Reshape",
                                 "Conv1D", "Conv2D", "MaxPooling1D", "MaxPooling2D",
                                 "AveragePooling1D", "AveragePooling2D",
                                 "GlobalAveragePooling1D", "GlobalMaxPooling2D",
                                 "BatchNormalization", "ZeroPadding1D", "ZeroPadding2D"]))
    if kind == "Dense":
        return kind, dict(units=_arg(draw, st.integers(1, 6), BAD_ANY),
                          activation=_activation(draw),
                          use_bias=_arg(draw, st.booleans(), ["yes"]))
    if kind == "Activation":
        return kind, dict(activation=_arg(draw, st.sampled_from(ACTIVATIONS[1:]),
                                          ["nope", 3, None]))
    if kind == "Dropout":
        return kind, dict(rate=_arg(draw, st.floats(0, 0.9), [1.0, -0.1, "x", None, 2]),
                          seed=_arg(draw, st.integers(0, 100), ["s", 2.5]))
    if kind == "Flatten":
        return kind, {}
    if kind == "Reshape":
        dims = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
        if draw(st.booleans()):
            dims[draw(st.integers(0, len(dims) - 1))] = -1
        return kind, dict(target_shape=_arg(draw, st.just(tuple(dims)),
                                            [(0,), (-1, -1), "x", None, (2.5,)]))
    if kind in ("Conv1D", "Conv2D"):
        rank = 1 if kind == "Conv1D" else 2
        args = dict(filters=_arg(draw, st.integers(1, 4), BAD_ANY),
                    kernel_size=_size(draw, 1, 3, rank=rank),
                    padding=_padding(draw), activation=_activation(draw))
        if draw(st.booleans()):
            args["strides"] = _size(draw, 1, 2, rank=rank)
        else:
            args["dilation_rate"] = _size(draw, 1, 2, rank=rank)
        return kind, args
    if kind in ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"):
        rank = 1 if kind.endswith("1D") else 2
        return kind, dict(pool_size=_size(draw, 1, 3, rank=rank),
                          strides=_arg(draw, st.sampled_from([None, 1, 2]), [0, -1, 2.5, "x"]),
                          padding=_padding(draw))
    if kind.startswith("Global"):
        return kind, dict(keepdims=False)
    if kind == "BatchNormalization":
        return kind, dict(axis=_arg(draw, st.sampled_from([-1, 1]), [5, "x", None, 2.5]),
                          momentum=_arg(draw, st.floats(0, 0.999), [2.0, -1, "x"]),
                          epsilon=_arg(draw, st.floats(1e-5, 0.1), [0.0, -1.0, "x"]))
    if kind == "ZeroPadding1D":
        return kind, dict(padding=_size(draw, 0, 2, bad=[-1, 2.5, None, "x"]))
    return kind, dict(padding=_size(draw, 0, 2, bad=[-1, 2.5, None, "x"], rank=2))


@st.composite
def case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=3)))
    if draw(st.integers(0, 19)) == 0:
        shape = shape[:-1] + (draw(st.sampled_from([0, -1])),)  # a bad Input shape
    n = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(["float32", "float64", "int32", "int64", "uint8", "bool"]))
    # Now and then values a model must refuse: NaN, beyond float32, or a non-numeric dtype.
    poison = draw(st.sampled_from([None] * 12 + ["nan", "huge", "complex", "str", "empty"]))
    stack = draw(st.lists(layer(), min_size=0, max_size=4))
    units = draw(st.integers(1, 4))
    head_activation = draw(st.sampled_from([None, "softmax", "sigmoid", "relu"]))
    loss = draw(st.sampled_from(LOSSES))
    metrics = draw(st.lists(st.sampled_from(METRICS), max_size=2, unique=True))
    flatten = draw(st.integers(0, 3)) > 0  # else the head works on the last axis
    frozen = draw(st.lists(st.booleans(), min_size=len(stack) + 1, max_size=len(stack) + 1))
    optimizer = draw(st.sampled_from(OPTIMIZERS))
    batch_size = draw(st.sampled_from([None, 1, 2, 5]))
    seed = draw(st.integers(0, 2 ** 16))
    return dict(shape=shape, n=n, dtype=dtype, poison=poison, stack=stack, units=units,
                head_activation=head_activation, loss=loss, metrics=metrics,
                optimizer=optimizer, batch_size=batch_size, seed=seed, flatten=flatten,
                frozen=frozen)


def _inputs(c):
    rng = np.random.default_rng(c["seed"])
    full = (c["n"],) + c["shape"]
    poison = c.get("poison")
    if poison == "empty":
        return np.zeros((0,) + c["shape"], np.float32)
    if poison == "complex":
        return rng.normal(size=full) + 1j
    if poison == "str":
        return np.full(full, "1")
    if poison in ("nan", "huge"):
        x = rng.normal(size=full)
        x.flat[rng.integers(0, x.size)] = np.nan if poison == "nan" else 1e39
        return x
    if c["dtype"] == "bool":
        return rng.integers(0, 2, full).astype(bool)
    if c["dtype"] == "uint8":
        return rng.integers(0, 256, full).astype(np.uint8)
    if c["dtype"].startswith("int"):
        return rng.integers(-3, 4, full).astype(c["dtype"])
    return rng.normal(size=full).astype(c["dtype"])


def _targets(c, rng, out_shape):
    """Targets for an output of ``out_shape`` (batched): per position of its last axis."""
    n, k, lead = c["n"], out_shape[-1], tuple(out_shape[1:-1])
    if c["loss"] == "sparse_categorical_crossentropy":
        return rng.integers(0, k, (n,) + lead)
    if c["loss"] == "categorical_crossentropy":
        return np.eye(k, dtype=np.float32)[rng.integers(0, k, (n,) + lead)]
    if c["loss"] == "binary_crossentropy":
        return rng.integers(0, 2, (n,) + lead + (k,)).astype(np.float32)
    return rng.normal(size=(n,) + lead + (k,)).astype(np.float32)


def _refused_metric(c, width):
    """The metric Keras's target rules refuse for this loss's targets, or None."""
    sparse = c["loss"] == "sparse_categorical_crossentropy"
    for m in c["metrics"]:
        if m == "categorical_accuracy" and sparse and width > 1:
            return m
        if m == "sparse_categorical_accuracy" and not sparse and width > 1:
            return m
    return None


def _run(c):
    """The case's calls; returns None on a ValueError/TypeError, else the checked outputs."""
    shenjing.utils.set_random_seed(c["seed"])
    try:
        built = [layers.Input(c["shape"])]
        built += [getattr(layers, kind)(**args) for kind, args in c["stack"]]
        built += [layers.Flatten()] if c.get("flatten", True) else []
        built += [layers.Dense(c["units"], activation=c["head_activation"])]
        model = shenjing.Sequential(built)
        for layer, frozen in zip(model.layers, c.get("frozen", ())):
            layer.trainable = not frozen
        model.compile(optimizer=c["optimizer"], loss=c["loss"], metrics=c["metrics"])
    except (ValueError, TypeError):
        return None
    x = _inputs(c)
    out = model.predict(x, batch_size=c["batch_size"], verbose=0)
    assert c.get("poison") is None, "predict accepted poisoned input"
    assert out.shape == (c["n"],) + model.output_shape[1:] and out.dtype == np.float32
    out = out.reshape(c["n"], -1)
    assert np.isfinite(out).all(), "non-finite predictions"
    for i in range(c["n"]):
        row = model.predict(x[i:i + 1], verbose=0)
        np.testing.assert_allclose(row.reshape(-1), out[i], rtol=1e-4, atol=1e-5,
                                   err_msg=f"row {i} alone differs from the batch")
    y = _targets(c, np.random.default_rng(c["seed"] + 1), model.output_shape)
    refused = _refused_metric(c, model.output_shape[-1])
    frozen = [(layer, layer.get_weights()) for layer in model.layers if not layer.trainable]
    try:
        history = model.fit(x, y, batch_size=c["batch_size"], epochs=1, verbose=0)
    except ValueError as e:
        # The acceptable fit failures: a metric Keras's rules refuse for these targets, or a
        # loss that blew up (TerminateOnNaN).
        if refused:
            assert f"Metric '{refused}' needs" in str(e), str(e)
        else:
            assert "The loss became" in str(e), str(e)
        return None
    assert refused is None, f"fit accepted metric {refused!r} for these targets"
    assert np.isfinite(history.history["loss"][0])
    for layer, weights in frozen:
        for before, after in zip(weights, layer.get_weights()):
            np.testing.assert_array_equal(before, after, err_msg=f"frozen {layer.name} moved")
    result = model.evaluate(x, y, batch_size=c["batch_size"], verbose=0, return_dict=True)
    assert all(np.isfinite(v) for v in result.values()), result
    return out


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case())
def test_fuzz_public_api(c):
    try:
        _run(c)
    except (ValueError, TypeError) as e:
        assert str(e), "a refusal must say what is wrong"


def test_fuzz_finds_nothing_in_a_known_good_case():
    """The harness itself: a plain valid case runs every check."""
    c = dict(shape=(6, 6, 2), n=3, dtype="uint8",
             stack=[("Conv2D", dict(filters=2, kernel_size=3, padding="same",
                                    activation="relu")),
                    ("MaxPooling2D", dict(pool_size=2, strides=None, padding="valid")),
                    ("BatchNormalization", dict(axis=-1, momentum=0.9, epsilon=1e-3))],
             units=3, head_activation="softmax", loss="sparse_categorical_crossentropy",
             metrics=["accuracy"], optimizer="adam", batch_size=2, seed=1)
    out = _run(c)
    assert out is not None and out.shape == (3, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 2.5, None, "x"])
def test_fuzz_bad_arguments_are_refused_not_crashed(bad):
    with pytest.raises((ValueError, TypeError)):
        shenjing.Sequential([layers.Input((5, 2)), layers.Conv1D(2, bad)])
