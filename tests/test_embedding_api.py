"""Embedding without PyTorch (the sanitizer CI runs this file): the lookup against NumPy,
Keras's arguments and config, bad ids (a ValueError that changes nothing), id dtypes, the
row-sparse gradient and update (only the used rows, deterministic for any thread count,
correct at a shared layer's two nodes), finite differences, training and save/load.
PyTorch parity and ONNX export are in test_embedding.py."""
import json
import warnings

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers, optimizers
from shenjing.models import load_model

from test_gradients import finite_difference_check

V, D, T = 11, 4, 6


def _spec(**cfg):
    return json.dumps({"class_name": "Embedding",
                       "config": {"name": "emb", "input_dim": V, "output_dim": D, **cfg}})


def _run(ids, table, dy=None, **cfg):
    ids = np.asarray(ids, np.float32)
    return _core._run_layer(_spec(**cfg), [list(ids.shape[1:])], [ids],
                            None if dy is None else np.asarray(dy, np.float32), True, [table])


def _table(seed=0, v=V, d=D):
    return np.random.default_rng(seed).normal(size=(v, d)).astype(np.float32)


def _model(optimizer="sgd", v=V, d=D, t=T, regularizer=None, seed=0):
    shenjing.utils.set_random_seed(seed)
    model = shenjing.Sequential([
        layers.Input((t,), dtype="int32"),
        layers.Embedding(v, d, embeddings_regularizer=regularizer),
        layers.GlobalAveragePooling1D(), layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    model.layers[0].embeddings[...] = _table(seed, v, d)
    return model


def _data(n=16, v=V, t=T, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, v, (n, t)).astype(np.int32), rng.normal(size=(n, 1)).astype(np.float32)


# -- the lookup ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2), (2, 2, 3, 2)])
def test_lookup_and_gradient_every_rank(shape):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, shape)
    table = _table()
    dy = rng.normal(size=shape + (D,)).astype(np.float32)
    y, dxs, grads = _run(ids, table, dy)
    np.testing.assert_array_equal(y, table[ids])
    want = np.zeros_like(table, dtype=np.float64)
    np.add.at(want, ids.reshape(-1), dy.reshape(-1, D))  # repeated ids add up
    np.testing.assert_allclose(grads[0], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(dxs[0], 0.0)  # ids get no gradient


def test_non_integer_ids_are_truncated_toward_zero():
    table = _table()
    y = _run([[2.7, -0.5, 3.0, 10.99, -0.0]], table)[0]
    np.testing.assert_array_equal(y[0], table[[2, 0, 3, 10, 0]])


@pytest.mark.parametrize("bad", [-1.0, -1.5, V, V + 0.5, 1e10, -1e10, np.nan, np.inf, -np.inf])
def test_bad_ids_are_value_errors_naming_the_layer_and_id(bad):
    ids = np.array([[1.0, 2.0, bad]], np.float32)
    with pytest.raises(ValueError, match=r"Layer 'emb' \(Embedding\): input id .* \(sample 0 of "
                                         r"the batch, position 2\) is not in \[0, 11\)"):
        _run(ids, _table())


def test_output_shapes_and_keras_arguments():
    inp = layers.Input((3, 5), dtype="int64")
    emb = layers.Embedding(100, 7)
    assert emb(inp).shape == (None, 3, 5, 7)
    assert emb.output_shape == (None, 3, 5, 7)
    model = shenjing.Model(inp, emb(inp))
    assert emb.embeddings.shape == (100, 7) and emb.weights[0].shape == (100, 7)
    assert [w.shape for w in model.trainable_weights] == [(100, 7)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers.Embedding(10, 3, input_length=5)
    assert any("input_length" in str(w.message) for w in caught)


def test_uniform_initializer_is_keras_random_uniform():
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((2,)), layers.Embedding(1000, 50)])
    w = model.layers[0].embeddings
    assert -0.05 <= w.min() < -0.049 and 0.049 < w.max() <= 0.05
    cfg = model.layers[0].get_config()["embeddings_initializer"]
    assert cfg["class_name"] == "RandomUniform"
    assert cfg["config"] == {"minval": -0.05, "maxval": 0.05, "seed": None}


def test_get_config_has_keras_keys_and_round_trips():
    emb = layers.Embedding(10, 4, embeddings_regularizer="l2", name="e")
    cfg = emb.get_config()
    # Keras 3.15.1's keys, in its order
    assert list(cfg) == ["name", "trainable", "dtype", "input_dim", "output_dim",
                         "embeddings_initializer", "embeddings_regularizer",
                         "activity_regularizer", "embeddings_constraint", "mask_zero",
                         "quantization_config"]
    assert cfg["embeddings_regularizer"]["config"] == {"l2": 0.01}
    assert layers.Embedding.from_config(cfg).get_config() == cfg


def test_keras_written_config_loads():
    keras_cfg = {
        "name": "embedding", "trainable": True,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                  "registered_name": None},
        "input_dim": 10, "output_dim": 4,
        "embeddings_initializer": {"module": "keras.initializers", "class_name": "RandomUniform",
                                   "config": {"seed": None, "minval": -0.05, "maxval": 0.05},
                                   "registered_name": None},
        "embeddings_regularizer": None, "activity_regularizer": None,
        "embeddings_constraint": None, "mask_zero": False, "quantization_config": None}
    emb = layers.Embedding.from_config(keras_cfg)
    assert (emb.input_dim, emb.output_dim, emb.mask_zero) == (10, 4, False)
    # The core reads the same dict.
    assert _core.layer_output_shape(json.dumps({"class_name": "Embedding",
                                                "config": keras_cfg}), [[3]]) == [3, 4]


def test_weights_argument_sets_the_initial_table():
    table = _table(3, 10, 4)
    for weights in (table, [table], table.tolist()):
        model = shenjing.Sequential([layers.Input((2,)), layers.Embedding(10, 4, weights=weights)])
        np.testing.assert_array_equal(model.layers[0].embeddings, table)
    assert "weights" not in layers.Embedding(10, 4, weights=table).get_config()
    with pytest.raises(ValueError, match=r"weight shape \(10, 4\) is not compatible with "
                                         r"provided weight shape \(4, 10\)"):
        layers.Embedding(10, 4, weights=table.T)
    with pytest.raises(ValueError, match="NaN"):
        layers.Embedding(10, 4, weights=np.full((10, 4), np.nan))


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_dim=0, output_dim=3), "`input_dim` must be a positive integer"),
    (dict(input_dim=2.5, output_dim=3), "`input_dim` must be a positive integer"),
    (dict(input_dim=True, output_dim=3), "`input_dim` must be a positive integer"),
    (dict(input_dim=3, output_dim=-1), "`output_dim` must be a positive integer"),
    (dict(input_dim=2 ** 24 + 1, output_dim=1), "at most 2\\^24"),
    (dict(input_dim=3, output_dim=2, lora_rank=4), "lora_rank is not supported"),
    (dict(input_dim=3, output_dim=2, embeddings_constraint="non_neg"), "constraint"),
])
def test_refused_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.Embedding(**kwargs)


@pytest.mark.parametrize("cfg, match", [
    (dict(input_dim=2 ** 24 + 1), "'input_dim' must be an integer in \\[1, 16777216\\]"),
    (dict(output_dim=0), "'output_dim' must be an integer"),
    (dict(mask_zero="yes"), "'mask_zero' must be true or false"),
    (dict(embeddings_constraint={"class_name": "NonNeg"}), "'embeddings_constraint' must be null"),
    (dict(activity_regularizer="l2"), "'activity_regularizer' must be null"),
    (dict(lora_rank=4), "'lora_rank' must be null"),
    (dict(quantization_config={}), "'quantization_config' must be null"),
    (dict(embeddings_regularizer="l3"), "embeddings_regularizer"),
])
def test_core_config_fields_are_checked(cfg, match):
    with pytest.raises(ValueError, match=match):
        _core.layer_output_shape(_spec(**cfg), [[3]])


def test_core_accepts_mask_zero_in_configs():
    # The Python constructor refuses it for now; files and native programs may carry it.
    assert _core.layer_output_shape(_spec(mask_zero=True), [[3]]) == [3, D]


# -- ids of every dtype; bad ids change nothing ---------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.int16, np.float32,
                                   np.float64])
def test_id_dtypes_train_and_predict_alike(dtype):
    x, y = _data()
    ref = _model()
    ref.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model = _model()
    model.fit(x.astype(dtype), y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], ref.get_weights()[0])
    np.testing.assert_array_equal(model.predict(x.astype(dtype), verbose=0),
                                  ref.predict(x, verbose=0))
    assert model.evaluate(x.astype(dtype), y, verbose=0) == ref.evaluate(x, y, verbose=0)


@pytest.mark.parametrize("bad", [-1, V, 1000])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_bad_ids_in_fit_predict_evaluate_change_nothing(bad, optimizer):
    x, y = _data(n=8)
    model = _model(optimizer)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # a step first: optimizer state exists
    before = [w.copy() for w in model.get_weights()]
    iterations = model.optimizer.iterations
    x_bad = x.astype(np.int64)
    x_bad[3, 2] = bad
    for call in (lambda: model.fit(x_bad, y, batch_size=8, epochs=1, verbose=0),
                 lambda: model.predict(x_bad, verbose=0),
                 lambda: model.evaluate(x_bad, y, verbose=0)):
        with pytest.raises(ValueError, match=rf"input id {bad} .* is not in \[0, {V}\)"):
            call()
        assert model.optimizer.iterations == iterations
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
    # ... and the next good step is the one an untouched model takes.
    twin = _model(optimizer)
    twin.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    twin.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_nan_ids_in_fit_are_refused():
    x, y = _data(n=8)
    model = _model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.where(x == 3, np.nan, x), y, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# -- the row-sparse gradient and update -----------------------------------------------------------

def _step(model, x, y):
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)


def test_sgd_updates_only_the_rows_used_other_optimizers_all():
    x = np.array([[1, 2, 2, 5, 1, 1]] * 4, np.int32)
    x2 = np.array([[7, 7, 8, 8, 7, 7]] * 4, np.int32)
    y = np.ones((4, 1), np.float32)
    for opt, moves_old_rows in (("sgd", False), (optimizers.SGD(0.01, momentum=0.9), True),
                                ("adam", True), ("rmsprop", False)):
        model = _model(opt)
        t0 = model.layers[0].embeddings.copy()
        _step(model, x, y)
        t1 = model.layers[0].embeddings.copy()
        changed = np.flatnonzero((t1 != t0).any(axis=1))
        assert list(changed) == [1, 2, 5], opt
        _step(model, x2, y)
        t2 = model.layers[0].embeddings.copy()
        # Rows of the first batch move again only by momentum / moments, as in Keras.
        assert (t2[[1, 2, 5]] != t1[[1, 2, 5]]).any() == moves_old_rows, opt
        untouched = [r for r in range(V) if r not in (1, 2, 5, 7, 8)]
        np.testing.assert_array_equal(t2[untouched], t0[untouched])


def test_gradient_rows_of_the_previous_step_are_cleared():
    """compute_gradients twice on different ids: the second holds only its own rows, exactly
    as a fresh model computes them."""
    x1, y = _data(n=4, seed=2)
    x2 = (x1 + 5) % V
    model = _model()
    model._core.compute_gradients(x1.astype(np.float32), y)
    model._core.compute_gradients(x2.astype(np.float32), y)
    fresh = _model()
    fresh._core.compute_gradients(x2.astype(np.float32), y)
    got = model.layers[0]._views[0][2]
    np.testing.assert_array_equal(got, fresh.layers[0]._views[0][2])
    assert not got[np.setdiff1d(np.arange(V), x2)].any()


def test_regularized_table_gets_its_penalty_gradient_on_every_row():
    x, y = _data(n=4)
    x %= 6  # rows 6.. unused
    model = _model(regularizer="l2")
    model._core.compute_gradients(x.astype(np.float32), y)
    model._core.compute_gradients(x.astype(np.float32), y)  # the dense gradient is rebuilt
    g = model.layers[0]._views[0][2]
    unused = np.setdiff1d(np.arange(V), x)
    assert len(unused)
    np.testing.assert_allclose(g[unused], 0.02 * model.layers[0].embeddings[unused], rtol=1e-6)
    t0 = model.layers[0].embeddings.copy()
    _step(model, x, y)  # SGD: the penalty moves unused rows too
    assert (model.layers[0].embeddings[unused] != t0[unused]).all()


def test_shared_embedding_gradient_is_the_sum_of_both_calls():
    shenjing.utils.set_random_seed(0)
    # (a shared layer needs the same input shape at both calls: shenjing's rule for every layer)
    a, b = layers.Input((3,), dtype="int32"), layers.Input((3,), dtype="int32")
    emb = layers.Embedding(V, D)
    out = layers.Dense(1)(layers.Concatenate()([layers.Flatten()(emb(a)),
                                                 layers.Flatten()(emb(b))]))
    model = shenjing.Model([a, b], out)
    model.compile("sgd", "mse")
    emb.embeddings[...] = _table()
    rng = np.random.default_rng(0)
    for step in range(3):  # new rows each time: the previous ones must be cleared
        xa = rng.integers(0, V, (5, 3)).astype(np.float32)
        xb = rng.integers(0, V, (5, 3)).astype(np.float32)
        xb[0, 0] = xa[0, 0]  # a row used at both calls
        y = rng.normal(size=(5, 1)).astype(np.float32)
        model._core.compute_gradients([xa, xb], y)
        w = model.layers[-1].kernel[:, 0]
        dz = 2 * (model.predict([xa, xb], verbose=0)[:, 0] - y[:, 0]) / 5
        want = np.zeros((V, D))
        for i in range(5):
            for t in range(3):
                want[int(xa[i, t])] += dz[i] * w[t * D:(t + 1) * D]
                want[int(xb[i, t])] += dz[i] * w[(3 + t) * D:(4 + t) * D]
        np.testing.assert_allclose(emb._views[0][2], want, rtol=1e-5, atol=1e-6)


def test_gradient_is_identical_for_any_thread_count():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (64, 40))  # 64 * 40 * 32 floats: the parallel scatter
    table = _table(0, 50, 32)
    dy = rng.normal(size=(64, 40, 32)).astype(np.float32)
    spec = json.dumps({"class_name": "Embedding", "config": {"input_dim": 50, "output_dim": 32}})
    threads = shenjing.get_num_threads()
    grads = []
    try:
        for n in (1, 2, 3):
            shenjing.set_num_threads(n)
            grads.append(_core._run_layer(spec, [[40]], [ids.astype(np.float32)], dy, True,
                                          [table])[2][0].copy())
    finally:
        shenjing.set_num_threads(threads)
    for g in grads[1:]:
        np.testing.assert_array_equal(g, grads[0])


def test_finite_differences_of_the_table():
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((3,)), layers.Embedding(5, 3), layers.Flatten(),
                                 layers.Dense(2, activation="tanh")])
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    model.layers[0].embeddings[...] = rng.uniform(-0.6, 0.6, (5, 3))
    x = np.array([[0, 1, 1], [4, 2, 0], [3, 3, 3], [1, 0, 4]], np.float32)  # row used twice
    y = rng.normal(size=(4, 2)).astype(np.float32)
    assert finite_difference_check(model, x, y) > 0


# -- training, saving ------------------------------------------------------------------------------

def _classifier(seed=0):
    shenjing.utils.set_random_seed(seed)
    model = shenjing.Sequential([layers.Input((8,), dtype="int32"), layers.Embedding(30, 8),
                                 layers.GlobalAveragePooling1D(),
                                 layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def _sentiment(n=256, seed=0):
    # Ids below 15 are "negative words", the rest "positive": the label is the majority.
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 30, (n, 8)).astype(np.int32)
    return x, ((x >= 15).sum(axis=1) > 4).astype(np.float32)


def test_trains_and_round_trips_through_a_file(tmp_path):
    x, y = _sentiment()
    model = _classifier()
    hist = model.fit(x, y, batch_size=16, epochs=15, verbose=0).history
    assert hist["loss"][-1] < 0.6 * hist["loss"][0]
    assert hist["accuracy"][-1] > 0.8
    path = tmp_path / "emb.keras"
    model.save(path)
    loaded = load_model(path)
    assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    core = _core.Model.load(str(path))  # the native loader
    out = np.empty((len(x), 1), np.float32)
    core.predict(x.astype(np.float32), out, 0, len(x))
    np.testing.assert_array_equal(out, model.predict(x, verbose=0))
    # Resumed training equals uninterrupted training.
    h1 = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history
    h2 = loaded.fit(x, y, batch_size=16, epochs=2, verbose=0).history
    assert h1 == h2
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_eager_call_on_an_array():
    emb = layers.Embedding(6, 2, weights=_table(0, 6, 2))
    np.testing.assert_array_equal(emb(np.array([[5, 0], [1, 1]])), _table(0, 6, 2)[[[5, 0], [1, 1]]])


def test_one_id_per_sample():
    inp = layers.Input(shape=(), dtype="int32")  # (batch,) ids -> (batch, output_dim)
    emb = layers.Embedding(6, 3, weights=_table(0, 6, 3))
    model = shenjing.Model(inp, emb(inp))
    assert model.output_shape == (None, 3)
    np.testing.assert_array_equal(model.predict(np.array([5, 0, 2]), verbose=0),
                                  _table(0, 6, 3)[[5, 0, 2]])
