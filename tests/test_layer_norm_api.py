"""LayerNormalization without PyTorch (the sanitizer build runs this file): Keras's arguments,
weights and configs, refused axes and fields, finite-difference gradients, a Keras 3.15.1
written model, save/load round trips and results that do not depend on the thread count.
PyTorch parity and ONNX export are in test_layer_norm.py."""
import json
import warnings

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers, regularizers
from shenjing.models import load_model, model_from_json

from test_gradients import finite_difference_check


def _ln_model(input_shape, *stack, loss="mse"):
    model = shenjing.Sequential([layers.Input(input_shape), *stack])
    model.compile(optimizer="sgd", loss=loss)
    return model


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if layer.name.startswith("ln")
                           else rng.uniform(-0.6, 0.6, w.shape) for w in layer.get_weights()])
    return rng


# ---- arguments, weights, configs --------------------------------------------------------------

def test_defaults_weights_and_config_are_keras_s():
    ln = layers.LayerNormalization()
    model = _ln_model((3, 4), ln)
    assert [w.shape for w in ln.weights] == [(4,), (4,)]
    assert [n for n, _, _ in ln._views] == ["gamma", "beta"]
    np.testing.assert_array_equal(ln.gamma, 1.0)
    np.testing.assert_array_equal(ln.beta, 0.0)
    assert ln.count_params() == 8 and model.output_shape == (None, 3, 4)
    cfg = ln.get_config()
    assert {k: cfg[k] for k in ("axis", "epsilon", "center", "scale", "rms_scaling",
                                "beta_regularizer", "gamma_regularizer", "beta_constraint",
                                "gamma_constraint")} == {
        "axis": -1, "epsilon": 0.001, "center": True, "scale": True, "rms_scaling": False,
        "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
        "gamma_constraint": None}
    assert cfg["gamma_initializer"]["class_name"] == "Ones"
    assert cfg["beta_initializer"]["class_name"] == "Zeros"
    again = layers.LayerNormalization.from_config(json.loads(json.dumps(cfg)))
    assert again.get_config() == cfg


@pytest.mark.parametrize("shape, axis, wshape", [
    ((5,), -1, (5,)), ((5,), 1, (5,)), ((3, 5), [-2, -1], (3, 5)), ((3, 5), (1, 2), (3, 5)),
    ((2, 3, 4), [1, 2, 3], (2, 3, 4)), ((2, 3, 4), [3, 2], (3, 4)), ((2, 3, 4), [-2, 3], (3, 4)),
    ((2, 3, 4), 3, (4,))])
def test_trailing_axes_give_weights_of_their_dims(shape, axis, wshape):
    ln = layers.LayerNormalization(axis=axis)
    _ln_model(shape, ln)
    assert [w.shape for w in ln.weights] == [wshape, wshape]
    assert ln.get_config()["axis"] == (list(axis) if isinstance(axis, (list, tuple)) else axis)


@pytest.mark.parametrize("kwargs, names", [
    ({"center": False}, ["gamma"]), ({"scale": False}, ["beta"]),
    ({"center": False, "scale": False}, []), ({"rms_scaling": True}, ["gamma"]),
    ({"rms_scaling": True, "scale": False}, ["gamma"])])  # Keras: rms_scaling keeps gamma
def test_weights_follow_center_scale_and_rms_scaling(kwargs, names):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ln = layers.LayerNormalization(**kwargs)
    _ln_model((6,), ln)
    assert [n for n, _, _ in ln._views] == names


def test_rms_scaling_warns_as_keras_does():
    with pytest.warns(UserWarning, match="rms_scaling=True.*deprecated"):
        layers.LayerNormalization(rms_scaling=True)


@pytest.mark.parametrize("shape, axis, match", [
    ((4,), 0, "batch axis"), ((3, 4), 0, "batch axis"), ((3, 4), [0, 1, 2], "batch axis"),
    ((3, 4), 1, "only trailing axes"), ((3, 4), -2, "only trailing axes"),
    ((2, 3, 4), [1, 3], "only trailing axes"), ((2, 3, 4), [1, 2], "only trailing axes"),
    ((3, 4), 3, "out of bounds"), ((3, 4), -4, "out of bounds"),
    ((3, 4), [-1, 2], "duplicate"), ((3, 4), [2, 2], "duplicate"),
    ((3, 4), [1, -1], "input's order")])
def test_other_axes_are_a_value_error_naming_the_layer(shape, axis, match):
    ln = layers.LayerNormalization(axis=axis, name="ln_bad")
    with pytest.raises(ValueError, match=match) as e:
        _ln_model(shape, ln)
    assert "'ln_bad' (LayerNormalization)" in str(e.value) and "axis=" in str(e.value)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"axis": "last"}, TypeError, "axis"), ({"axis": 1.0}, TypeError, "axis"),
    ({"axis": True}, TypeError, "axis"), ({"axis": [1, "2"]}, TypeError, "axis"),
    ({"axis": []}, ValueError, "1 to 8"), ({"epsilon": 0}, ValueError, "epsilon"),
    ({"epsilon": -1e-3}, ValueError, "epsilon"), ({"epsilon": "small"}, ValueError, "epsilon"),
    ({"gamma_constraint": "non_neg"}, ValueError, "gamma_constraint is not supported"),
    ({"beta_constraint": "max_norm"}, ValueError, "beta_constraint is not supported"),
    ({"gamma_regularizer": "l3"}, ValueError, "regularizer")])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        layers.LayerNormalization(**kwargs)


def _spec(**config):
    return json.dumps({"class_name": "LayerNormalization", "config": {"name": "ln", **config}})


@pytest.mark.parametrize("config, match", [
    ({"axis": "x"}, "'axis' must be"), ({"axis": []}, "'axis' must be"),
    ({"axis": [1] * 9}, "'axis' must be"), ({"axis": [1.5]}, "'axis' must be"),
    ({"axis": 1e9}, "'axis' must be"), ({"axis": {"a": 1}}, "'axis' must be"),
    ({"epsilon": -1}, "'epsilon' must be"), ({"epsilon": 0}, "'epsilon' must be"),
    ({"epsilon": "1"}, "'epsilon' must be"), ({"center": 1}, "'center' must be"),
    ({"rms_scaling": "no"}, "'rms_scaling' must be"),
    ({"gamma_constraint": {"class_name": "NonNeg", "config": {}}}, "not supported"),
    ({"beta_constraint": "max_norm"}, "not supported"),
    ({"beta_regularizer": {"class_name": "L3"}}, "'beta_regularizer' must be"),
    ({"gamma_regularizer": {"class_name": "L2", "config": {"l2": -1}}}, "'l2' must be")])
def test_hostile_core_configs_are_value_errors(config, match):
    with pytest.raises(ValueError, match=match) as e:
        _core.layer_output_shape(_spec(**config), [[3, 4]])
    assert "'ln' (LayerNormalization)" in str(e.value)


def test_core_config_defaults_and_shapes():
    assert list(_core.layer_output_shape(_spec(), [[3, 4]])) == [3, 4]
    assert list(_core.layer_output_shape(_spec(axis=[1, 2, 3]), [[2, 3, 4]])) == [2, 3, 4]
    with pytest.raises(ValueError, match="only trailing axes"):
        _core.layer_output_shape(_spec(axis=[1]), [[2, 3, 4]])


# ---- gradients ------------------------------------------------------------------------------

FD_CASES = [({}, (4, 5)), ({"axis": [-2, -1]}, (3, 4)), ({"center": False}, (2, 5)),
            ({"scale": False}, (2, 5)), ({"rms_scaling": True}, (3, 4)),
            ({"axis": [1, 2], "rms_scaling": True}, (2, 3)), ({"epsilon": 0.5}, (2, 4)),
            ({"gamma_regularizer": "l2", "beta_regularizer": regularizers.L1L2(0.01, 0.02)},
             (2, 4))]


@pytest.mark.parametrize("kwargs, shape", FD_CASES, ids=[str(i) for i in range(len(FD_CASES))])
def test_finite_differences(kwargs, shape):
    """Every weight's gradient, LayerNormalization's input gradient included (through the
    Dense before it), against central differences of the loss."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ln = layers.LayerNormalization(name="ln", **kwargs)
    model = _ln_model(shape, layers.Dense(shape[-1], name="pre"), ln,
                      layers.Dense(2, activation="tanh", name="post"))
    rng = _randomize(model)
    x = rng.normal(size=(3,) + shape)
    y = rng.normal(size=(3,) + shape[:-1] + (2,))
    assert finite_difference_check(model, x, y) == sum(w.size for w in model.get_weights())


def test_weight_penalties_join_the_loss():
    ln = layers.LayerNormalization(gamma_regularizer=regularizers.L2(0.1),
                                   beta_regularizer=regularizers.L1(0.05), name="ln")
    model = _ln_model((4,), ln)
    rng = _randomize(model)
    x, y = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    loss = model._core.compute_gradients(x, y)
    plain = float(np.mean((model.predict(x, verbose=0) - y) ** 2, dtype=np.float64))
    penalty = 0.1 * np.sum(ln.gamma.astype(np.float64) ** 2) + 0.05 * np.abs(ln.beta).sum()
    assert loss == pytest.approx(plain + penalty, rel=1e-5)


def test_frozen_layer_passes_gradients_and_keeps_its_weights():
    ln = layers.LayerNormalization(name="ln")
    model = shenjing.Sequential([layers.Input((6,)), layers.Dense(6), ln, layers.Dense(1)])
    ln.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    rng = _randomize(model)
    before = ln.get_weights()
    first = model.layers[0].get_weights()
    model.fit(rng.normal(size=(16, 6)), rng.normal(size=(16, 1)), epochs=1, verbose=0)
    for a, b in zip(ln.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(model.layers[0].get_weights(), first))


@pytest.mark.parametrize("axis", [-1, [-2, -1]])
def test_results_do_not_depend_on_the_thread_count(axis):
    """Big enough to run in parallel (rows x features > 65536; 1920 rows of 64 or 48 of 2560):
    forward, loss and every gradient are bit-identical for 1, 2 and 3 threads."""
    model = _ln_model((40, 64), layers.Dense(64, name="pre"),
                      layers.LayerNormalization(axis=axis, name="ln"), layers.Dense(3))
    rng = _randomize(model)
    x = rng.normal(size=(48, 40, 64)).astype(np.float32)
    y = rng.normal(size=(48, 40, 3)).astype(np.float32)
    before = shenjing.get_num_threads()
    results = []
    try:
        for nt in (1, 2, 3):
            shenjing.set_num_threads(nt)
            loss = model._core.compute_gradients(x, y)
            results.append([loss] + [g.copy() for l in model.layers for _, _, g in l._views])
    finally:
        shenjing.set_num_threads(before)
    for other in results[1:]:
        assert other[0] == results[0][0]
        for a, b in zip(other[1:], results[0][1:]):
            np.testing.assert_array_equal(a, b)


def test_large_means_keep_their_precision():
    """Rows of mean 1e4 and std 1: the output is the exact one to float precision (a float
    mean alone would be 6e-4 off)."""
    rng = np.random.default_rng(3)
    x = (1e4 + rng.normal(size=(8, 256))).astype(np.float32)
    ln = layers.LayerNormalization()
    got = ln(x)
    xd = x.astype(np.float64)
    want = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(got, want, atol=3e-6)


# ---- Keras 3.15.1 configs and model files -----------------------------------------------------

def _keras_layer(name, axis, epsilon, center, rms, gamma_reg=None):
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
              "registered_name": None}
    init = lambda cls: {"module": "keras.initializers", "class_name": cls, "config": {},
                        "registered_name": None}
    return {"module": "keras.layers", "class_name": "LayerNormalization", "config": {
        "name": name, "trainable": True, "dtype": policy, "axis": axis, "epsilon": epsilon,
        "center": center, "scale": True, "rms_scaling": rms,
        "beta_initializer": init("Zeros"), "gamma_initializer": init("Ones"),
        "beta_regularizer": None, "gamma_regularizer": gamma_reg, "beta_constraint": None,
        "gamma_constraint": None}, "registered_name": None,
        "build_config": {"input_shape": [None, 3, 4]}}


# Keras 3.15.1's model.to_json() (torch backend) of Input((3, 4)) -> LayerNormalization() ->
# LayerNormalization(axis=[1, 2], epsilon=0.01, center=False, gamma_regularizer='l2') ->
# LayerNormalization(rms_scaling=True); built layers write axis as a list.
KERAS_MODEL = {"module": "keras", "class_name": "Sequential", "config": {
    "name": "sequential", "trainable": True, "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {
            "batch_shape": [None, 3, 4], "dtype": "float32", "sparse": False, "ragged": False,
            "name": "input_layer", "optional": False}, "registered_name": None},
        _keras_layer("ln_last", [-1], 0.001, True, False),
        _keras_layer("ln_both", [1, 2], 0.01, False, False,
                     {"module": "keras.regularizers", "class_name": "L2",
                      "config": {"l2": 0.01}, "registered_name": None}),
        _keras_layer("ln_rms", [-1], 0.001, True, True)],
    "build_input_shape": [None, 3, 4]}, "registered_name": None,
    "build_config": {"input_shape": [None, 3, 4]}, "compile_config": {}}
# What Keras predicted with weights uniform(-0.5, 0.5) + 1 drawn from default_rng(0) in
# model.weights order, on x = 2 * normal + 5 drawn next from the same generator.
KERAS_OUT = [
    [[0.9482335448265076, 0.35088691115379333, -0.9910035729408264, -0.3617798388004303],
     [-0.2523432970046997, 0.5636826157569885, -2.146411180496216, 0.12093585729598999],
     [-0.9969000220298767, 0.5214490294456482, -0.1842794269323349, 0.1332690715789795]],
    [[-0.9584068655967712, -0.15937568247318268, 0.7184520363807678, 0.7465637922286987],
     [-1.0274858474731445, 0.28472381830215454, 0.5108950734138489, 0.16950346529483795],
     [-0.5580613017082214, -0.6711244583129883, 0.6289744973182678, 1.3906075954437256]]]


def test_keras_written_layer_config_builds():
    spec = KERAS_MODEL["config"]["layers"][2]
    ln = layers.LayerNormalization.from_config(spec["config"])
    assert ln.axis == [1, 2] and ln.epsilon == 0.01 and not ln.center
    assert isinstance(ln.gamma_regularizer, regularizers.L2) and ln.gamma_regularizer.l2 == 0.01
    _ln_model((3, 4), ln)
    assert [w.shape for w in ln.weights] == [(3, 4)]


def test_keras_written_model_loads_and_predicts_as_keras(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rms_scaling's deprecation
        model = model_from_json(json.dumps(KERAS_MODEL))
    assert [l.name for l in model.layers] == ["ln_last", "ln_both", "ln_rms"]
    assert [w.shape for w in model.weights] == [(4,), (4,), (3, 4), (4,)]
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) + 1.0
                       for w in model.weights])
    x = (rng.normal(size=(2, 3, 4)) * 2 + 5).astype(np.float32)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, KERAS_OUT, rtol=1e-5, atol=1e-5)
    # The same file layout read by the C++ loader.
    model.save(tmp_path / "k.keras")
    core = _core.Model.load(str(tmp_path / "k.keras"))
    again = np.empty_like(out)
    core.predict([x], [again], 0, len(x))
    np.testing.assert_array_equal(again, out)


def test_save_load_round_trip_and_resumed_training(tmp_path):
    model = shenjing.Sequential([
        layers.Input((5, 6)), layers.Dense(6),
        layers.LayerNormalization(axis=[-2, -1], epsilon=0.01, gamma_regularizer="l2",
                                  name="ln_a"),
        layers.LayerNormalization(center=False, name="ln_b"), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    rng = _randomize(model)
    x = rng.normal(size=(32, 5, 6)).astype(np.float32)
    y = rng.normal(size=(32, 5, 2)).astype(np.float32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    shenjing.saving.save_model(model, path)
    loaded = load_model(path)
    assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_functional_model_with_a_shared_layer_norm():
    inp = layers.Input((4, 6))
    ln = layers.LayerNormalization(name="ln")
    a = ln(layers.Dense(6, name="d1")(inp))
    b = ln(layers.Dense(6, name="d2")(inp))
    model = shenjing.Model(inp, layers.Add()([a, b]))
    model.compile(optimizer="sgd", loss="mse")
    rng = _randomize(model)
    x, y = rng.normal(size=(4, 4, 6)), rng.normal(size=(4, 4, 6))
    finite_difference_check(model, x, y)
    again = model_from_json(model.to_json())
    again.set_weights(model.get_weights())
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
