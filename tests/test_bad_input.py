"""Bad input: each case checks the exception type and that the message says what was wrong."""
import numpy as np
import pytest

import shenjing
from shenjing import layers, optimizers
from shenjing.data import DataLoader, Dataset

X = np.random.default_rng(0).random((6, 4)).astype(np.float32)
LABELS = np.array([0, 1, 2, 0, 1, 2])


def _model(loss="sparse_categorical_crossentropy", units=3, activation="softmax",
           compile_=True):
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(5, activation="relu",
                                                                  name="hidden"),
                                 layers.Dense(units, activation=activation, name="out")])
    if compile_:
        model.compile(optimizer="sgd", loss=loss)
    return model


def _regressor():
    return _model(loss="mse", activation=None)


# --- shapes and sample counts -------------------------------------------------------------


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("bad_shape", [(6, 5), (6, 4, 1), (6,)])
def test_input_shape_mismatch_names_layer_and_shapes(method, bad_shape):
    model = _model()
    x = np.ones(bad_shape, np.float32)
    args = (x,) if method == "predict" else (x, LABELS)
    with pytest.raises(ValueError) as info:
        getattr(model, method)(*args, verbose=0)
    msg = str(info.value)
    assert '"hidden"' in msg
    assert "(None, 4)" in msg and str(bad_shape) in msg


def test_input_shape_mismatch_after_lazy_build():
    model = shenjing.Sequential([layers.Dense(2, name="first")])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    with pytest.raises(ValueError, match=r'"first".*\(None, 3\).*\(4, 7\)'):
        model.predict(np.ones((4, 7)), verbose=0)


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_y_with_wrong_number_of_samples(method):
    with pytest.raises(ValueError, match="same number of samples: x has 6, y has 5"):
        getattr(_model(), method)(X, LABELS[:5], verbose=0)


def test_validation_data_with_wrong_number_of_samples():
    with pytest.raises(ValueError, match="x has 6, y has 4"):
        _model().fit(X, LABELS, validation_data=(X, LABELS[:4]), verbose=0)


# --- targets --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad,value", [(3, "3"), (-1, "-1"), (1e10, "1")])
@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_sparse_labels_out_of_range(method, bad, value):
    y = LABELS.astype(np.float64)
    y[3] = bad
    with pytest.raises(ValueError) as info:
        getattr(_model(), method)(X, y, verbose=0)
    msg = str(info.value)
    assert f"label value of {value}" in msg and "[0, 2]" in msg


def test_sparse_labels_must_be_integers():
    y = LABELS.astype(np.float64)
    y[2] = 0.5
    with pytest.raises(ValueError, match="integer class labels"):
        _model().fit(X, y, verbose=0)


def test_sparse_labels_one_hot_given():
    with pytest.raises(ValueError, match=r"one integer class label per sample.*\(6, 3\).*"
                                         r"categorical_crossentropy"):
        _model().fit(X, np.eye(3)[LABELS], verbose=0)


def test_sparse_labels_accepted_forms():
    """Integer, float-with-integer-values, (n, 1) and bool labels all train."""
    for y in (LABELS, LABELS.astype(np.float32), LABELS[:, None], LABELS > 0):
        h = _model().fit(X, y, verbose=0)
        assert np.isfinite(h.history["loss"][0])


def test_one_hot_shape_mismatch_with_categorical_crossentropy():
    model = _model(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"shape \(6, 4\).*output shape \(None, 3\)"):
        model.fit(X, np.eye(4)[LABELS], verbose=0)
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy.*to_categorical"):
        model.fit(X, LABELS, verbose=0)


def test_regression_target_shape_mismatch():
    with pytest.raises(ValueError, match=r"Target y has shape \(6, 2\).*\(None, 3\)"):
        _regressor().fit(X, np.ones((6, 2)), verbose=0)


# --- unknown names ----------------------------------------------------------------------------


def test_unknown_activation_lists_known():
    for make in (lambda: layers.Dense(3, activation="relux"),
                 lambda: layers.Activation("relux")):
        with pytest.raises(ValueError) as info:
            make()
        msg = str(info.value)
        assert "relux" in msg
        for known in ("relu", "sigmoid", "softmax", "gelu", "swish"):
            assert known in msg


def test_unsupported_activation_function():
    with pytest.raises(ValueError, match="Known activations"):
        layers.Dense(3, activation=lambda z: z)


def test_unknown_loss_lists_known():
    with pytest.raises(ValueError, match=r"Unknown loss 'msee'.*mse.*binary_crossentropy"
                                         r".*sparse_categorical_crossentropy"):
        _model(compile_=False).compile(optimizer="sgd", loss="msee")


def test_unknown_optimizer_lists_known():
    with pytest.raises(ValueError, match=r"Unknown optimizer 'sgdd'.*sgd.*adam.*rmsprop"):
        _model(compile_=False).compile(optimizer="sgdd", loss="mse")


def test_unknown_metric_lists_known_and_leaves_model_unchanged():
    model = _model()  # compiled with sgd + sparse CE
    with pytest.raises(ValueError, match=r"Unknown metric 'acuracy'.*accuracy.*mae"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])
    # The failed compile must not have half-applied the new optimizer and loss.
    assert isinstance(model.optimizer, optimizers.SGD)
    assert model.loss.name == "sparse_categorical_crossentropy"


def test_compile_without_loss():
    # Keras compiles it (the model may have add_loss terms) and refuses to train without one.
    model = _model(compile_=False)
    model.compile(optimizer="sgd")
    x = np.zeros((4,) + tuple(model.input_shape[1:]), np.float32)
    for method in (model.fit, model.evaluate):
        with pytest.raises(ValueError, match="No loss to compute"):
            method(x, None, verbose=0)


# --- empty, non-finite and non-float data ------------------------------------------------------


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_empty_arrays(method):
    x = np.zeros((0, 4), np.float32)
    args = (x,) if method == "predict" else (x, np.zeros(0))
    with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 4\)\)"):
        getattr(_model(), method)(*args, verbose=0)


def test_empty_y():
    with pytest.raises(ValueError, match="y is empty"):
        _model().fit(X, np.zeros(0), verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_non_finite_x(method, dtype, bad):
    x = X.astype(dtype)
    x[2, 1] = bad
    args = (x,) if method == "predict" else (x, LABELS)
    with pytest.raises(ValueError, match="NaN or infinity"):
        getattr(_model(), method)(*args, verbose=0)


def test_non_finite_validation_x():
    x = X.copy()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="validation x contains NaN"):
        _model().fit(X, LABELS, validation_data=(x, LABELS), verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_non_finite_y(method, bad):
    y = np.zeros((6, 3))
    y[4, 2] = bad
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        getattr(_regressor(), method)(X, y, verbose=0)
    labels = LABELS.astype(np.float64)
    labels[1] = bad
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        getattr(_model(), method)(X, labels, verbose=0)


def test_values_too_large_for_float32():
    big = np.full((6, 4), 1e300)
    with pytest.raises(ValueError, match="too large for float32"):
        _model().predict(big, verbose=0)
    with pytest.raises(ValueError, match="too large for float32"):
        _regressor().fit(X, np.full((6, 3), 1e300), verbose=0)


def test_loss_becoming_nan_or_inf_stops_fit():
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3)])
    model.compile(optimizer=optimizers.SGD(learning_rate=1e4), loss="mse")
    with pytest.raises(ValueError, match=r"loss became (nan|inf) at epoch \d+, batch \d+.*"
                                         r"learning rate"):
        model.fit(X * 100, np.full((6, 3), 1e6, np.float32), epochs=50, batch_size=2,
                  verbose=0)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, np.float16,
                                   np.float64])
def test_non_float32_inputs_are_converted(dtype):
    model = _model()
    x = (X * 3).astype(dtype)
    ref = model.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), ref)
    assert model.evaluate(x, LABELS, verbose=0) == pytest.approx(
        model.evaluate(x.astype(np.float32), LABELS, verbose=0), rel=1e-7)
    h = model.fit(x, LABELS.astype(np.int32), verbose=0)
    assert np.isfinite(h.history["loss"][0])


def test_python_lists_are_accepted():
    model = _model()
    np.testing.assert_array_equal(model.predict(X.tolist(), verbose=0),
                                  model.predict(X, verbose=0))
    model.fit(X.tolist(), LABELS.tolist(), verbose=0)


@pytest.mark.parametrize("bad", [np.array([["a", "b", "c", "d"]] * 6),
                                 np.array([[object()] * 4] * 6, dtype=object),
                                 np.ones((6, 4), np.complex64)])
def test_string_object_complex_x_raise_type_error(bad):
    with pytest.raises(TypeError, match=f"x must be a numeric array, received dtype "
                                        f"{bad.dtype}"):
        _model().predict(bad, verbose=0)
    with pytest.raises(TypeError, match="x must be a numeric array"):
        _model().fit(bad, LABELS, verbose=0)


def test_string_y_raises_type_error():
    with pytest.raises(TypeError, match="y must be a numeric array, received dtype <U"):
        _model().fit(X, np.array(list("abcdef")), verbose=0)


def test_non_contiguous_inputs_work():
    model = _model()
    wide = np.repeat(X, 2, axis=1)             # columns [x0 x0 x1 x1 ...]
    strided = wide[:, ::2]                     # non-contiguous view equal to X
    fortran = np.asfortranarray(X)
    ref = model.predict(X, verbose=0)
    for x in (strided, fortran, X.T.copy().T):
        assert not x.flags.c_contiguous
        np.testing.assert_array_equal(model.predict(x, verbose=0), ref)
    np.testing.assert_array_equal(model.predict(X[::-1], verbose=0), ref[::-1])  # negative
    assert model.evaluate(strided, LABELS, verbose=0) == pytest.approx(
        model.evaluate(X, LABELS, verbose=0), rel=1e-7)
    # Non-contiguous labels too.
    model.fit(strided, np.repeat(LABELS, 2)[::2], verbose=0)


def test_scalar_input():
    with pytest.raises(ValueError, match=r"x is empty \(shape \(\)\)"):
        _model().predict(np.float32(1.0), verbose=0)


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_bad_batch_size(method, bad):
    args = (X,) if method == "predict" else (X, LABELS)
    with pytest.raises(ValueError, match=f"batch_size must be a positive integer, "
                                         f"received {bad!r}"):
        getattr(_model(), method)(*args, batch_size=bad, verbose=0)


def test_batch_size_numpy_integer_and_larger_than_data():
    model = _model()
    model.fit(X, LABELS, batch_size=np.int64(4), verbose=0)
    assert model.optimizer.iterations == 2
    model.fit(X, LABELS, batch_size=100, verbose=0)
    assert model.optimizer.iterations == 3


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "4"])
def test_bad_dense_units(bad):
    with pytest.raises(ValueError, match=f"Dense: units must be a positive integer, "
                                         f"received {bad!r}"):
        layers.Dense(units=bad)


@pytest.mark.parametrize("bad", [1.5, 1.0, -0.1, "0.5"])
def test_bad_dropout_rate(bad):
    with pytest.raises(ValueError, match=r"Dropout: rate must be a float in \[0, 1\)"):
        layers.Dropout(rate=bad)


def test_bad_reshape_target():
    with pytest.raises(ValueError, match=r"'r' \(Reshape\) cannot reshape input of shape "
                                         r"\(None, 4\).*target shape \(3\)"):
        shenjing.Sequential([layers.Input((4,)), layers.Reshape((3,), name="r")])


def test_bad_input_shape():
    with pytest.raises(ValueError, match="positive integers"):
        layers.Input((0, 3))
    with pytest.raises(TypeError, match="tuple of integers"):
        layers.Input(("a",))
    with pytest.raises(TypeError, match="tuple of integers"):
        layers.Input(None, input_shape=3.5)
    with pytest.raises(TypeError, match="input_shape must be a tuple of integers"):
        layers.Dense(3, input_shape=(4.5,))


def test_unexpected_layer_keyword():
    with pytest.raises(TypeError, match="unexpected keyword argument.*unitz"):
        layers.Dense(3, unitz=4)


def test_bad_verbose_and_validation_split():
    with pytest.raises(ValueError, match="verbose must be"):
        _model().fit(X, LABELS, verbose=3)
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="validation_split must be in"):
            _model().fit(X, LABELS, validation_split=bad, verbose=0)
    with pytest.raises(ValueError, match="leaves no samples"):  # int(6 * 0.1) == 0 to train
        _model().fit(X, LABELS, validation_split=0.9, verbose=0)


def test_fit_and_evaluate_before_compile():
    model = _model(compile_=False)
    with pytest.raises(ValueError, match=r"compile\(\) before fit"):
        model.fit(X, LABELS, verbose=0)
    with pytest.raises(ValueError, match=r"compile\(\) before evaluate"):
        model.evaluate(X, LABELS, verbose=0)
    # Keras allows predict on an uncompiled model.
    assert model.predict(X, verbose=0).shape == (6, 3)


def test_fit_without_targets():
    with pytest.raises(ValueError, match="fit needs targets y"):
        _model().fit(X, verbose=0)


def test_dataloader_with_separate_y():
    with pytest.raises(ValueError, match="pass y inside the DataLoader"):
        _model().fit(DataLoader(Dataset(X, LABELS)), LABELS, verbose=0)
    with pytest.raises(ValueError, match="no complete batch"):
        _model().fit(DataLoader(Dataset(X, LABELS), batch_size=8, drop_last=True), verbose=0)


def test_set_weights_wrong_shapes_and_counts():
    model = _model()
    good = model.get_weights()
    bad = list(good)
    bad[0] = np.ones((5, 4))
    with pytest.raises(ValueError, match=r"'hidden' weight 'kernel' has shape \(4, 5\), "
                                         r"received \(5, 4\)"):
        model.set_weights(bad)
    with pytest.raises(ValueError, match="expects 4 arrays, received 3"):
        model.set_weights(good[:3])
    with pytest.raises(ValueError, match=r"'out' weight 'bias' has shape \(3,\), received "
                                         r"\(4,\)"):
        model.layers[1].set_weights([good[2], np.zeros(4)])
    with pytest.raises(ValueError, match="'hidden' expects 2 weight arrays, received 1"):
        model.layers[0].set_weights([good[0]])
    nan = [w.copy() for w in good]
    nan[1][0] = np.nan
    with pytest.raises(ValueError, match="contains NaN or inf"):
        model.set_weights(nan)
    # Nothing above changed the model... except layers set before the failing one.
    for a, b in zip(model.get_weights()[2:], good[2:]):
        np.testing.assert_array_equal(a, b)


def test_set_weights_before_build():
    with pytest.raises(ValueError, match="not yet been built"):
        shenjing.Sequential([layers.Dense(3)]).set_weights([np.ones((4, 3)), np.ones(3)])


def test_bad_optimizer_and_loss_arguments():
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="unsupported argument.*gradient_accumulation_steps"):
        optimizers.Adam(gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="clipnorm must be a positive number"):
        optimizers.Adam(clipnorm=0.0)
    with pytest.raises(ValueError, match="delta must be positive"):
        shenjing.losses.Huber(delta=0)
    with pytest.raises(ValueError, match="sum_over_batch_size"):
        shenjing.losses.MeanSquaredError(reduction="sum")


def test_set_random_seed_rejects_non_integers():
    with pytest.raises(ValueError, match="integer"):
        shenjing.utils.set_random_seed(1.5)


def test_core_batch_bounds_cannot_overflow():
    """Direct _core calls with absurd offsets are ValueErrors, not wrapped arithmetic."""
    model = _model()
    core = model._core
    x = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(LABELS, dtype=np.float32)
    out = np.empty((6, 3), np.float32)
    big = 2 ** 63 - 2
    with pytest.raises(ValueError, match="out of range"):
        core.predict(x, out, big, 4)
    with pytest.raises(ValueError, match="out of range"):
        core.test_step(x, y, None, big, 4)
    with pytest.raises((ValueError, TypeError)):
        core.test_step(x, y, np.arange(6, dtype=np.int64), big, 4)
