"""TimeDistributed without PyTorch (run under the sanitizers too, see .ci/sanitize): the
per-step BatchNormalization path and the others checked by finite differences, Dropout in fit,
weights and trainable as Keras, the summary, configs and files (Python and the C++ loader), a
config written by Keras 3.15.1 (fixtures/keras315_time_distributed.json, made by
fixtures/keras315_time_distributed_gen.py, holding Keras's outputs and moving statistics), and
clear errors for what cannot be wrapped. PyTorch parity and ONNX: test_time_distributed.py."""
import json
import os

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers, saving

from test_gradients import finite_difference_check

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "keras315_time_distributed.json")


def _close(got, want, what, rtol=1e-5):
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()),
                               err_msg=what)


def _seq(input_shape, *stack):
    return shenjing.Sequential([layers.Input(input_shape), *stack])


def test_frozen_batch_norm_runs_in_inference_mode():
    n, T, C = 4, 3, 2
    td = layers.TimeDistributed(layers.BatchNormalization())
    model = _seq((T, C), td, layers.TimeDistributed(layers.Dense(1)))
    td.trainable = False
    assert not td.layer.trainable and td.trainable_weights == [] and len(td.weights) == 4
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(n, T, C)).astype(np.float32)
    before = [w.copy() for w in td.weights]
    model.fit(x, np.zeros((n, T, 1), np.float32), epochs=2, verbose=0)
    for a, b in zip(before, td.weights):
        np.testing.assert_array_equal(a, b)


def test_nested_wrappers_normalize_each_step_pair():
    """TimeDistributed(TimeDistributed(BatchNormalization)): Keras loops over both time axes,
    so each (t1, t2) has its own statistics and the moving ones are updated T1 * T2 times."""
    n, T1, T2, C, momentum, eps = 6, 2, 3, 2, 0.8, 1e-3
    td = layers.TimeDistributed(layers.TimeDistributed(
        layers.BatchNormalization(momentum=momentum, epsilon=eps, center=False, scale=False)))
    model = _seq((T1, T2, C), td)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(n, T1, T2, C)) * rng.uniform(0.5, 3, (T1, T2, C)) +
         rng.normal(size=(T1, T2, C)) * 3).astype(np.float32)
    xs = x.astype(np.float64)
    want = (xs - xs.mean(0)) / np.sqrt(xs.var(0) + eps)
    assert model._core.compute_gradients(x, want.astype(np.float32)) < 1e-11
    mean, var = np.zeros(C), np.ones(C)
    for t1 in range(T1):
        for t2 in range(T2):
            mean = mean * momentum + xs[:, t1, t2].mean(0) * (1 - momentum)
            var = var * momentum + xs[:, t1, t2].var(0) * (1 - momentum)
    _close(td.layer.layer.moving_mean, mean, "moving_mean")
    _close(td.layer.layer.moving_variance, var, "moving_variance")


def test_embedding_and_nested_wrappers_forward():
    rng = np.random.default_rng(0)
    emb = layers.TimeDistributed(layers.Embedding(10, 3))
    ids = rng.integers(0, 10, size=(4, 2, 5)).astype(np.float32)
    model = _seq((2, 5), emb)
    np.testing.assert_array_equal(model.predict(ids, verbose=0), emb.layer.embeddings[
        ids.astype(int)])
    nested = layers.TimeDistributed(layers.TimeDistributed(layers.Dense(2)))
    model = _seq((2, 3, 4), nested)
    x = rng.normal(size=(3, 2, 3, 4)).astype(np.float32)
    assert model.output_shape == (None, 2, 3, 2)
    _close(model.predict(x, verbose=0), x @ nested.layer.layer.kernel + nested.layer.layer.bias,
           "nested")


def test_finite_differences():
    rng = np.random.default_rng(1)
    model = _seq((3, 5, 4, 2),
                 layers.TimeDistributed(layers.Conv2D(3, 2, activation="tanh")),
                 layers.TimeDistributed(layers.BatchNormalization()),
                 layers.TimeDistributed(layers.Flatten()),
                 layers.TimeDistributed(layers.Dense(2, activation="sigmoid")))
    model.compile(optimizer="sgd", loss="mse")
    for layer in model.layers:
        for name, value, _ in layer._views:
            if name not in ("moving_mean", "moving_variance"):
                value[...] = rng.uniform(-0.6, 0.6, value.shape)
    x = rng.normal(size=(4, 3, 5, 4, 2))
    y = rng.uniform(size=(4, 3, 2))
    finite_difference_check(model, x, y, rtol=3e-2)


def test_finite_differences_shared_wrappers_and_embedding():
    """A wrapper called twice (its weight gradients summed over the nodes, per step for
    BatchNormalization), and an Embedding's row-sparse gradient through the wrapper."""
    rng = np.random.default_rng(2)
    a, b = shenjing.Input((3, 4)), shenjing.Input((3, 4))
    bn = layers.TimeDistributed(layers.BatchNormalization())
    dense = layers.TimeDistributed(layers.Dense(2, activation="tanh"))
    out = layers.Add()([dense(bn(a)), dense(bn(b))])
    model = shenjing.Model([a, b], out)
    model.compile(optimizer="sgd", loss="mse")
    for layer in model.layers:
        for name, value, _ in layer._views:
            if name not in ("moving_mean", "moving_variance"):
                value[...] = rng.uniform(-0.6, 0.6, value.shape)
    xs = [rng.normal(size=(5, 3, 4)).astype(np.float32) for _ in range(2)]
    y = rng.uniform(size=(5, 3, 2)).astype(np.float32)
    core = model._core
    loss0 = core.compute_gradients(xs, y)
    assert np.isfinite(loss0)
    for layer in (bn, dense):
        for (name, value, grad), trainable in zip(layer._views, layer._trainable_flags):
            if not trainable:
                continue
            flat, g = value.reshape(-1), grad.reshape(-1).copy()
            for i in range(flat.size):
                w = flat[i]
                flat[i] = w + np.float32(3e-3)
                lp = core.compute_gradients(xs, y)
                flat[i] = w - np.float32(3e-3)
                lm = core.compute_gradients(xs, y)
                flat[i] = w
                fd = (lp - lm) / (2 * 3e-3)
                assert abs(fd - g[i]) <= 2e-2 * max(abs(fd), 1e-2), (layer.name, name, i)
            core.compute_gradients(xs, y)

    model = _seq((2, 3), layers.TimeDistributed(layers.Embedding(6, 2)),
                 layers.TimeDistributed(layers.Flatten()),
                 layers.TimeDistributed(layers.Dense(1, activation="sigmoid")))
    model.compile(optimizer="sgd", loss="mse")
    for layer in model.layers:
        for _, value, _ in layer._views:
            value[...] = rng.uniform(-0.6, 0.6, value.shape)
    ids = rng.integers(0, 5, size=(4, 2, 3))  # row 5 is never used: its gradient stays 0
    finite_difference_check(model, ids, rng.uniform(size=(4, 2, 1)))


# -- Dropout, weights, trainable ---------------------------------------------------------------
def test_dropout_masks_each_slice_and_fit_trains():
    spec = json.dumps({"class_name": "TimeDistributed", "config": {
        "name": "td", "layer": {"class_name": "Dropout",
                                "config": {"name": "drop", "rate": 0.25, "seed": 7}}}})
    x = np.random.default_rng(0).uniform(1, 2, size=(64, 5, 8)).astype(np.float32)
    y, _, _ = _core._run_layer(spec, [[5, 8]], [x], None, True, None)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    assert abs(1 - kept.mean() - 0.25) < 0.02
    y, _, _ = _core._run_layer(spec, [[5, 8]], [x], None, False, None)
    np.testing.assert_array_equal(y, x)

    shenjing.utils.set_random_seed(0)
    model = _seq((5, 8), layers.TimeDistributed(layers.Dense(6, activation="relu")),
                 layers.TimeDistributed(layers.Dropout(0.5)),
                 layers.TimeDistributed(layers.Dense(1)))
    model.compile(optimizer="adam", loss="mse")
    target = x.sum(axis=-1, keepdims=True) / 8
    first = model.evaluate(x, target, verbose=0)
    history = model.fit(x, target, epochs=30, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(x, target, verbose=0) < first / 2
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_weights_are_the_wrapped_layers_views():
    dense = layers.Dense(3)
    td = layers.TimeDistributed(dense)
    model = _seq((4, 2), td)
    assert td.layer is dense and [w.shape for w in td.weights] == [(2, 3), (3,)]
    for a, b in zip(td.weights, dense.weights):
        assert np.shares_memory(a, b)
    td.set_weights([np.ones((2, 3)), np.arange(3.0)])
    np.testing.assert_array_equal(dense.kernel, np.ones((2, 3)))
    x = np.ones((1, 4, 2), np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), np.tile([2, 3, 4], (1, 4, 1)))
    assert td.count_params() == model.count_params() == 9
    # The wrapped layer built in another model keeps its weights here (one set, as Keras).
    inp = shenjing.Input((4, 2))
    other = shenjing.Model(inp, layers.TimeDistributed(dense)(inp))
    assert np.shares_memory(other.layers[1].weights[0], dense.kernel)
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_trainable_follows_keras():
    dense = layers.Dense(2)
    td = layers.TimeDistributed(dense)
    model = _seq((3, 2), td)
    dense.trainable = False  # the wrapper stays trainable, its weights do not train
    assert td.trainable and td.trainable_weights == [] and len(td.non_trainable_weights) == 2
    model.compile(optimizer="sgd", loss="mse")
    before = dense.get_weights()
    x = np.ones((4, 3, 2), np.float32)
    model.fit(x, np.zeros((4, 3, 2), np.float32), epochs=1, verbose=0)
    for a, b in zip(before, dense.get_weights()):
        np.testing.assert_array_equal(a, b)
    td.trainable = True  # sets the wrapped layer's too
    assert dense.trainable and len(td.trainable_weights) == 2
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((4, 3, 2), np.float32), epochs=1, verbose=0)
    assert not np.array_equal(before[0], dense.kernel)


def test_summary_matches_keras():
    inp = shenjing.Input((3, 8, 8, 2))
    x = layers.TimeDistributed(layers.Conv2D(4, 3, activation="relu"), name="time_distributed")(inp)
    x = layers.TimeDistributed(layers.MaxPooling2D(), name="time_distributed_1")(x)
    x = layers.TimeDistributed(layers.Flatten(), name="time_distributed_2")(x)
    x = layers.TimeDistributed(layers.Dense(5), name="time_distributed_3")(x)
    model = shenjing.Model(inp, x)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    # Keras 3.15.1's rows for the same model.
    for row in ["│ time_distributed                │ (None, 3, 6, 6, 4)     │            76 │",
                "│ (TimeDistributed)               │                        │               │",
                "│ time_distributed_1              │ (None, 3, 3, 3, 4)     │             0 │",
                "│ time_distributed_2              │ (None, 3, 36)          │             0 │",
                "│ time_distributed_3              │ (None, 3, 5)           │           185 │",
                " Total params: 261 (1.02 KB)"]:
        assert row in text, text


# -- configs and files -------------------------------------------------------------------------
def _stack():
    return _seq((3, 6, 6, 2),
                layers.TimeDistributed(layers.Conv2D(4, 3, activation="relu")),
                layers.TimeDistributed(layers.MaxPooling2D()),
                layers.TimeDistributed(layers.Flatten()),
                layers.TimeDistributed(layers.Dropout(0.2)),
                layers.TimeDistributed(layers.Dense(5, activation="softmax")))


def test_config_round_trip():
    td = layers.TimeDistributed(layers.Dense(3, activation="relu", name="inner"), name="wrap")
    config = td.get_config()
    assert list(config) == ["name", "trainable", "dtype", "layer"]
    assert config["layer"]["class_name"] == "Dense" and config["layer"]["config"]["units"] == 3
    again = layers.TimeDistributed.from_config(json.loads(json.dumps(config)))
    assert again.name == "wrap" and again.layer.name == "inner" and again.layer.units == 3
    nested = layers.TimeDistributed(layers.TimeDistributed(layers.Dense(2)))
    again = layers.TimeDistributed.from_config(nested.get_config())
    assert isinstance(again.layer, layers.TimeDistributed) and again.layer.layer.units == 2


def test_save_load_round_trip_in_python_and_cpp(tmp_path):
    model = _stack()
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = rng.normal(size=(4, 3, 6, 6, 2)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, size=(4, 3))]
    model.fit(x, y, epochs=1, verbose=0)
    want = model.predict(x, verbose=0)
    path = str(tmp_path / "td.keras")
    model.save(path)
    loaded = saving.load_model(path)
    assert [type(la).__name__ for la in loaded.layers] == ["TimeDistributed"] * 5
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Training resumes identically (optimizer state, Dropout's stream inside the wrapper).
    model.fit(x, y, epochs=1, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    core, _, _ = _core.load_model_file(path)
    got = np.zeros_like(want)
    core.predict([x], [got], 0, len(x))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # the file's weights


def test_keras_written_configs_load_and_compute_as_keras():
    with open(FIXTURE) as f:
        data = json.load(f)
    f = data["functional"]
    model = shenjing.models.model_from_json(f["json"])
    assert [la.name for la in model.layers[1:]] == ["td_conv", "td_pool", "td_flat", "td_dense"]
    assert model.layers[1].layer.name == "conv"
    model.set_weights([np.asarray(w, np.float32) for w in f["weights"]])
    x = np.asarray(f["x"], np.float32)
    _close(model.predict(x, verbose=0), f["y"], "Keras functional", rtol=1e-5)

    s = data["sequential"]
    model = shenjing.models.model_from_json(s["json"])
    assert isinstance(model.layers[1].layer, layers.TimeDistributed)
    model.set_weights([np.asarray(w, np.float32) for w in s["weights"]])
    x = np.asarray(s["x"], np.float32)
    _close(model.predict(x, verbose=0), s["y_predict"], "Keras sequential", rtol=1e-5)
    # Training mode (Keras's BatchNormalization per step), without the Dropout.
    part = shenjing.Sequential([layers.Input((3, 2, 4))] + model.layers[:2])
    part.compile(optimizer="sgd", loss="mse")
    want = np.asarray(s["y_train_no_dropout"], np.float32)
    # The mean squared error against Keras's training-mode output: 0 up to float rounding.
    assert part._core.compute_gradients(x, want) < 1e-10 * float(np.mean(want ** 2))
    for got, w in zip(model.layers[0].layer.get_weights()[2:], s["moving_after"]):
        _close(got, w, "moving statistics after one training call", rtol=1e-5)
    # The C++ reader builds the same from Keras's own JSON.
    core_out = tuple(_core.layer_output_shape(json.dumps(
        json.loads(s["json"])["config"]["layers"][2]), [[3, 2, 4]]))
    assert core_out == (3, 2, 3)


# -- errors --------------------------------------------------------------------------------------
def test_bad_layers_and_inputs_are_value_errors():
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        layers.TimeDistributed(layers.Dense(2))(shenjing.Input((3,)))
    with pytest.raises(ValueError, match="keras.layers.Layer"):
        layers.TimeDistributed("dense")
    with pytest.raises(ValueError, match="several inputs"):
        layers.TimeDistributed(layers.Add())
    inp = shenjing.Input((2,))
    with pytest.raises(ValueError, match="model"):
        layers.TimeDistributed(shenjing.Model(inp, layers.Dense(2)(inp)))

    class Custom(layers.Layer):
        def call(self, x):
            return x * 2.0

    with pytest.raises(ValueError, match="own call"):
        layers.TimeDistributed(Custom())
    deep = layers.Dense(1)
    for _ in range(4):  # allowed: 4 wrappers deep
        deep = layers.TimeDistributed(deep)
    with pytest.raises(ValueError, match="nested more than 4"):
        layers.TimeDistributed(deep)
    # The wrapped layer's own checks name it.
    with pytest.raises(ValueError, match="conv"):
        layers.TimeDistributed(layers.Conv2D(2, 3, name="conv"))(shenjing.Input((4, 5, 3)))
    # Used on its own and wrapped in one model: weights that cannot be shared.
    dense = layers.Dense(2)
    seq, vec = shenjing.Input((3, 2)), shenjing.Input((2,))
    outs = [layers.TimeDistributed(dense)(seq), dense(vec)]
    with pytest.raises(ValueError, match="both inside TimeDistributed"):
        shenjing.Model([seq, vec], outs)
    with pytest.raises(ValueError, match="both inside TimeDistributed"):
        shenjing.Model([seq, vec], outs[::-1])
    # ... or on a slice shape other than its own call's.
    with pytest.raises(ValueError, match=r"first called on input shape \(None, 2\)"):
        layers.TimeDistributed(dense)(shenjing.Input((3, 4)))


def _spec(inner, depth=1):
    for _ in range(depth):
        inner = {"class_name": "TimeDistributed", "config": {"name": "td", "layer": inner}}
    return json.dumps(inner)


@pytest.mark.parametrize("inner,match", [
    (None, "'layer' must be a layer config"),
    ({"class_name": "Add", "config": {}}, "several inputs"),
    ({"class_name": "Op", "config": {"op": "relu"}}, "not operations"),
    ({"class_name": "Sequential", "config": {"layers": []}}, "wrap a layer"),
    ({"class_name": "Dense", "config": {"units": -1}}, "units"),
    ({"class_name": "Nope", "config": {}}, "Unknown layer type"),
])
def test_bad_configs_in_cpp_are_value_errors(inner, match):
    spec = json.dumps({"class_name": "TimeDistributed", "config": {"name": "td"}}) \
        if inner is None else _spec(inner)
    with pytest.raises(ValueError, match=match):
        _core.layer_output_shape(spec, [[3, 4]])


def test_nesting_depth_and_rank_in_cpp():
    dense = {"class_name": "Dense", "config": {"name": "d", "units": 2}}
    assert tuple(_core.layer_output_shape(_spec(dense, 4), [[2, 2, 2, 2, 3]])) == (2, 2, 2, 2, 2)
    with pytest.raises(ValueError, match="nested more than 4"):
        _core.layer_output_shape(_spec(dense, 5), [[2, 2, 2, 2, 2, 3]])
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        _core.layer_output_shape(_spec(dense), [[3]])
    with pytest.raises(ValueError, match="nested more than 4"):
        layers.TimeDistributed.from_config(json.loads(_spec(dense, 5))["config"])


