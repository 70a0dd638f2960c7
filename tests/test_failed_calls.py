"""A failed call changes nothing (add, pop, build, compile, construction), and bad arguments
to fit/evaluate/predict/get_layer raise a ValueError or TypeError that says what is wrong."""
import numpy as np
import pytest

import shenjing
from shenjing import layers


def _state(model):
    return ([l.name for l in model.layers], model.input_shape,
            model.output_shape if model.built else None,
            [w.copy() for w in model.get_weights()])


def _same(a, b):
    assert a[:3] == b[:3]
    assert len(a[3]) == len(b[3])
    for u, v in zip(a[3], b[3]):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("make, bad", [
    (lambda: [layers.Input((28, 28)), layers.Flatten(), layers.Dense(3)],
     lambda: layers.Conv2D(2, 3)),                        # rank 2 input to a Conv2D
    (lambda: [layers.Input((28, 28)), layers.Dense(4)], lambda: layers.Conv2D(2, 3)),
    (lambda: [layers.Input((8,)), layers.Dense(4)], lambda: layers.Conv2D(2, 3)),  # 1-D input
    (lambda: [layers.Input((8,)), layers.Dense(4)], lambda: layers.Reshape((5,))),
    (lambda: [layers.Input((8,)), layers.Dense(4)], lambda: layers.MaxPooling1D(2)),
])
def test_failed_add_changes_nothing(tmp_path, make, bad):
    model = shenjing.Sequential(make())
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(4,) + model.input_shape[1:]).astype(np.float32)
    before, out = _state(model), model.predict(x, verbose=0)
    layer = bad()
    with pytest.raises(ValueError):
        model.add(layer)
    _same(_state(model), before)
    assert not layer.built
    np.testing.assert_array_equal(model.predict(x, verbose=0), out)
    model.save(tmp_path / "m.keras")  # raised IndexError from the core before
    restored = shenjing.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), out)
    model.fit(x, np.zeros((4,) + model.output_shape[1:], np.float32), verbose=0)
    # The layer is still usable in a model it fits.
    ok = shenjing.Sequential([layers.Input((6, 6, 1)) if isinstance(layer, layers.Conv2D)
                              else layers.Input((5,) if isinstance(layer, layers.Reshape)
                                                else (6, 2)), layer])
    assert ok.built and layer.built


def test_failed_construction_leaves_the_layers_unbuilt():
    dense, conv = layers.Dense(4), layers.Conv2D(2, 3)
    with pytest.raises(ValueError):
        shenjing.Sequential([layers.Input((8,)), dense, conv])
    assert not dense.built and dense.weights == [] and not conv.built
    model = shenjing.Sequential([layers.Input((8,)), dense])
    assert model.output_shape == (None, 4) and dense.kernel.shape == (8, 4)


def test_failed_build_changes_nothing():
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3)])
    before = _state(model)
    for bad, err in (((None, 28, 28, 0), ValueError), ("abc", TypeError), (5, TypeError),
                     ((None,), TypeError), ((None, 2.5), TypeError), ((None, 2, 2), None)):
        if err is None:  # builds the layers, then fails nowhere: a valid rebuild
            continue
        with pytest.raises(err, match="build"):
            model.build(bad)
        _same(_state(model), before)
    unbuilt = shenjing.Sequential([layers.Dense(3), layers.Conv1D(2, 3)])
    with pytest.raises(ValueError):
        unbuilt.build((None, 4))  # the Conv1D cannot take the Dense output
    assert unbuilt.input_shape is None and not unbuilt.built
    assert not any(l.built for l in unbuilt.layers)
    unbuilt.pop()
    unbuilt.build((None, 4))
    assert unbuilt.output_shape == (None, 3)


def test_failed_compile_and_pop_change_nothing():
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    optimizer, loss = model.optimizer, model.loss
    before = _state(model)
    # The core cannot compile an empty model: popping the only layer of a compiled model
    # fails and keeps the layer (it used to leave the layer list empty and the core stale).
    with pytest.raises(ValueError, match="no layers"):
        model.pop()
    _same(_state(model), before)
    assert model.predict(X[:2], verbose=0).shape == (2, 3)
    plain = shenjing.Sequential([layers.Input((4,)), layers.Dense(3)])
    plain.pop()
    assert plain.layers == []
    with pytest.raises(ValueError, match="no layers"):
        plain.compile(optimizer="adam", loss="mae")
    assert plain.optimizer is None and plain.loss is None
    with pytest.raises(ValueError, match="no layers to pop"):
        plain.pop()
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile(optimizer="adam", loss="nope")
    assert model.optimizer is optimizer and model.loss is loss


@pytest.fixture
def compiled():
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
Y = np.arange(10) % 3


def test_validation_split_bad_arguments_are_value_errors(compiled):
    with pytest.raises(ValueError, match="needs targets y"):  # was IndexError
        compiled.fit(X, None, validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="same number of samples: x has 10, y has 5"):
        compiled.fit(X, Y[:5], validation_split=0.5, verbose=0)
    for bad in ("0.5", None, [0.5], True):
        with pytest.raises(ValueError, match="validation_split must be in"):
            compiled.fit(X, Y, validation_split=bad, verbose=0)
    for bad in (0, -1, 2.5, "5", True):
        with pytest.raises(ValueError, match="steps_per_epoch"):
            compiled.fit(X, Y, steps_per_epoch=bad, verbose=0)


def test_missing_x_is_a_clear_value_error(compiled):
    for call, what in ((lambda: compiled.fit(None, Y, verbose=0), "fit"),
                       (lambda: compiled.fit(verbose=0), "fit"),
                       (lambda: compiled.evaluate(None, Y, verbose=0), "evaluate"),
                       (lambda: compiled.predict(None, verbose=0), "predict")):
        with pytest.raises(ValueError, match=f"{what} needs input data x"):
            call()


def test_get_layer_errors_as_keras(compiled):
    assert compiled.get_layer(index=-1) is compiled.layers[-1]
    with pytest.raises(ValueError, match="at index 3 but model only has 1 layers"):
        compiled.get_layer(index=3)
    with pytest.raises(ValueError, match="at index"):
        compiled.get_layer(index=-10 ** 30)
    with pytest.raises(TypeError, match="index must be an integer"):
        compiled.get_layer(index="0")
    with pytest.raises(ValueError, match="only a layer name or a layer index"):
        compiled.get_layer("dense", 0)
    with pytest.raises(ValueError, match="either a layer name or layer index"):
        compiled.get_layer()


def test_failed_first_build_from_data_leaves_no_input_shape():
    model = shenjing.Sequential([layers.Dense(3), layers.Conv1D(2, 3)])
    with pytest.raises(ValueError):
        model.predict(np.zeros((2, 4), np.float32), verbose=0)
    assert model.input_shape is None and not model.built
    model.pop()
    assert model.predict(np.zeros((2, 5), np.float32), verbose=0).shape == (2, 3)
