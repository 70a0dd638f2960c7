"""Several inputs and outputs in compile/fit/evaluate/predict, as Keras 3.

The model has the shape of keras.io's "multi-input and multi-output models" example (ticket
triage): title, body and tags in; a priority score (sigmoid, regression-like) and a department
(softmax over 4) out. Dense layers on float features stand in for Embedding/LSTM.

Expected names follow Keras 3's rules (keras/src/trainers/compile_utils.py, trainer.py):
  * 'loss': the trainer's loss tracker (the weighted total);
  * CompileMetrics.result(): '<output>_<metric>' when the model has several outputs;
  * CompileLoss.build(): a Mean '<output>_loss' per output loss when there are several;
  * fit/evaluate logs go through pythonify_logs (python_utils.py), which sorts the keys, so
    History and the progress bar list them alphabetically, 'val_' ones after;
  * evaluate's list: Trainer._flatten_metrics_in_order: 'loss', the loss trackers in output
    order, then the remaining (prefixed metric) keys sorted.
"""
import numpy as np
import pytest

import shenjing
from shenjing import layers
from shenjing.data import DataLoader

N = 48
OUTS = ["priority", "department"]


def _model(dict_io=False, seed=0):
    shenjing.utils.set_random_seed(seed)
    title = layers.Input((12,), name="title")
    body = layers.Input((20,), name="body")
    tags = layers.Input((6,), name="tags")
    t = layers.Dense(8, activation="relu", name="title_dense")(title)
    b = layers.Dense(8, activation="relu", name="body_dense")(body)
    h = layers.Concatenate(name="features")([t, b, tags])
    priority = layers.Dense(1, activation="sigmoid", name="priority")(h)
    department = layers.Dense(4, activation="softmax", name="department")(h)
    if dict_io:
        return shenjing.Model({"title": title, "body": body, "tags": tags},
                              {"priority": priority, "department": department})
    return shenjing.Model([title, body, tags], [priority, department])


def _compile(model, **kw):
    args = dict(optimizer=shenjing.optimizers.SGD(0.05),
                loss={"priority": "binary_crossentropy",
                      "department": "categorical_crossentropy"},
                loss_weights={"priority": 1.0, "department": 0.2},
                metrics={"priority": ["mae"], "department": ["accuracy"]})
    args.update(kw)
    model.compile(**args)
    return model


def _data(n=N, seed=1):
    rng = np.random.default_rng(seed)
    x = [rng.normal(size=(n, 12)).astype(np.float32), rng.normal(size=(n, 20)).astype(np.float32),
         rng.integers(0, 2, (n, 6)).astype(np.float32)]
    y = [rng.uniform(size=(n, 1)).astype(np.float32),
         np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)]]
    return x, y


def _named(arrays, names):
    return dict(zip(names, arrays))


# Keras 3's keys for this compile: loss, the CompileMetrics keys, the CompileLoss trackers.
TRAIN_KEYS = ["loss", "priority_mae", "department_accuracy", "priority_loss", "department_loss"]
HISTORY_KEYS = sorted(TRAIN_KEYS + ["val_" + k for k in TRAIN_KEYS])  # pythonify_logs sorts
EVAL_ORDER = ["loss", "priority_loss", "department_loss", "department_accuracy", "priority_mae"]


def test_history_keys_are_keras_3s():
    model = _compile(_model())
    x, y = _data()
    hist = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    assert list(hist.history) == HISTORY_KEYS
    assert all(len(v) == 2 for v in hist.history.values())
    assert model.metrics_names == EVAL_ORDER


def test_list_and_dict_data_train_the_same():
    x, y = _data()
    runs = []
    for as_dict in (False, True):
        model = _compile(_model(seed=3))
        xx = _named(x, ["title", "body", "tags"]) if as_dict else x
        yy = _named(y, OUTS) if as_dict else y
        vx = _named(x, ["title", "body", "tags"]) if as_dict else tuple(x)
        hist = model.fit(xx, yy, epochs=2, batch_size=16, shuffle=False,
                         validation_data=(vx, yy), verbose=0)
        runs.append((hist.history, model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def _bce(y, p):
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def _cce(y, p):
    p = p.astype(np.float64)
    p = np.clip(p / p.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
    return float(np.mean(-(y * np.log(p)).sum(-1)))


def test_total_loss_is_the_weighted_sum_of_the_output_losses():
    model = _compile(_model())
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    p_pri, p_dep = model.predict(x, verbose=0)
    assert p_pri.shape == (N, 1) and p_dep.shape == (N, 4)
    logs = model.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    assert list(logs) == sorted(TRAIN_KEYS)
    pri, dep = _bce(y[0], p_pri), _cce(y[1], p_dep)
    np.testing.assert_allclose(logs["priority_loss"], pri, rtol=1e-5)
    np.testing.assert_allclose(logs["department_loss"], dep, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], 1.0 * pri + 0.2 * dep, rtol=1e-5)
    np.testing.assert_allclose(logs["priority_mae"], np.abs(p_pri - y[0]).mean(), rtol=1e-5)
    acc = np.mean(p_dep.argmax(-1) == y[1].argmax(-1))  # categorical: one-hot targets
    np.testing.assert_allclose(logs["department_accuracy"], acc)
    values = model.evaluate(x, y, batch_size=N, verbose=0)
    assert values == [logs[k] for k in EVAL_ORDER]


def test_dict_io_model_names_predict_and_sorted_list_order():
    model = _compile(_model(dict_io=True))
    assert model.output_names == ["priority", "department"]
    x, y = _data()
    xd, yd = _named(x, ["title", "body", "tags"]), _named(y, OUTS)
    hist = model.fit(xd, yd, epochs=1, batch_size=16, validation_data=(xd, yd), verbose=0)
    assert list(hist.history) == HISTORY_KEYS
    out = model.predict(xd, verbose=0)
    assert isinstance(out, dict) and list(out) == OUTS
    assert out["priority"].shape == (N, 1) and out["department"].shape == (N, 4)
    # A list for dict outputs follows Keras's flattening order: sorted keys (department
    # first), not insertion order; the other order has the wrong shapes.
    ref = model.evaluate(xd, yd, batch_size=N, verbose=0)
    assert model.evaluate(xd, [y[1], y[0]], batch_size=N, verbose=0) == ref
    with pytest.raises(ValueError, match="shape \\(48, 4\\).* of output 'priority'"):
        model.evaluate(xd, y, batch_size=N, verbose=0)
    # A list for dict inputs whose keys are not sorted: Keras refuses it.
    with pytest.raises(ValueError, match="structure of `inputs`"):
        model.predict(x, verbose=0)


def test_single_loss_applies_to_every_output_and_metric_lists():
    model = _compile(_model(), loss="mse", loss_weights=None,
                     metrics=[["mae", "mse"], "accuracy"])  # one entry per output
    x, y = _data()
    logs = model.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    assert sorted(logs) == sorted(["loss", "priority_loss", "department_loss", "priority_mae",
                                   "priority_mse", "department_accuracy"])
    np.testing.assert_allclose(logs["loss"], logs["priority_loss"] + logs["department_loss"],
                               rtol=1e-6)
    assert isinstance(model.loss, shenjing.losses.MeanSquaredError)


def test_repeated_metric_names_get_a_suffix_as_keras():
    model = _compile(_model(), metrics={"priority": ["mae", "mae"]})
    x, y = _data()
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert "priority_mae" in logs and "priority_mae_1" in logs


def test_loss_list_and_weights_list():
    model = _compile(_model(), loss=["binary_crossentropy", "categorical_crossentropy"],
                     loss_weights=[0.5, 2.0], metrics=None)
    x, y = _data()
    values = model.evaluate(x, y, batch_size=N, verbose=0)
    assert model.metrics_names == ["loss", "priority_loss", "department_loss"]
    np.testing.assert_allclose(values[0], 0.5 * values[1] + 2.0 * values[2], rtol=1e-6)


@pytest.mark.parametrize("kw, match", [
    (dict(loss={"priority": "mse", "dept": "mse"}), r"Expected keys \['priority', 'department'\]"),
    (dict(loss=["mse"]), "list of 1 losses, but the model has 2"),
    (dict(loss_weights={"priority": 1.0, "dept": 1.0}), r"keyed by the output names"),
    (dict(loss_weights=[1.0]), "must match the number of losses, got 2 losses and 1"),
    (dict(loss="mse", loss_weights=[1.0, 2.0]), "got 1 losses and 2 weights"),
    (dict(loss_weights={"priority": -1.0, "department": 1.0}), "output 'priority'"),
    (dict(metrics={"dept": ["mae"]}), r"Invalid `metrics`.*\['priority', 'department'\]"),
    (dict(metrics=["accuracy"]), "Invalid `metrics`"),  # Keras 3: no broadcast of a flat list
    (dict(metrics="accuracy"), "Expected `metrics` argument to be a list"),
    (dict(metrics={"priority": ["nope"]}), "Unknown metric"),
    (dict(loss={"priority": "mse", "department": "nope"}), "Unknown loss"),
])
def test_bad_compile_is_a_value_error_and_changes_nothing(kw, match):
    model = _compile(_model())
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    before = (model.optimizer, model.loss, model.metrics_names,
              model.evaluate(x, y, batch_size=N, verbose=0))
    with pytest.raises(ValueError, match=match):
        _compile(model, **kw)
    after = (model.optimizer, model.loss, model.metrics_names,
             model.evaluate(x, y, batch_size=N, verbose=0))
    assert after == before


def test_outputs_without_a_loss():
    """loss=None for an output (Keras 3): it adds nothing, needs no targets, logs no loss;
    a dict naming only some outputs of a list-output model compiles and fails at fit with
    Keras's message (Keras checks it when training starts)."""
    x, y = _data()
    model = _model()
    model.compile(optimizer="sgd", loss={"priority": "mse", "department": None})
    assert model.evaluate(x, y, batch_size=N, verbose=0) == pytest.approx(
        float(np.mean((model.predict(x, verbose=0)[0] - y[0]) ** 2)), rel=1e-5)
    assert model.metrics_names == ["loss"]
    weights = model.get_weights()
    model.fit(x, {"priority": y[0]}, epochs=1, batch_size=16, verbose=0)  # no department y
    # The loss-free output trains nothing of its own: its head's weights stay as they were.
    head = [layer.name for layer in model.layers if layer.weights].index("department")
    changed = [not np.array_equal(a, b) for a, b in zip(weights, model.get_weights())]
    assert changed[2 * head:2 * head + 2] == [False, False] and any(changed)
    model.compile(optimizer="sgd", loss=[None, None])
    with pytest.raises(ValueError, match="No loss to compute"):
        model.fit(x, y, verbose=0)


@pytest.mark.parametrize("make, match", [
    (lambda x, y: (x[:2], y), r"3 inputs \['title', 'body', 'tags'\], but x is a list of 2"),
    (lambda x, y: (x[0], y), r"3 inputs \['title', 'body', 'tags'\], but x is a single"),
    (lambda x, y: (x, y[:1]), r"2 outputs \['priority', 'department'\], but y is a list of 1"),
    (lambda x, y: (x, y[1]), "but y is a single array"),
    (lambda x, y: ({"title": x[0], "body": x[1], "tag": x[2]}, y), r"unknown: \['tag'\]"),
    (lambda x, y: ({"title": x[0], "body": x[1]}, y), r"missing: \['tags'\]"),
    (lambda x, y: (x, {"priority": y[0], "dept": y[1]}), r"outputs are named \['priority'"),
    (lambda x, y: ([x[0], x[1][:-1], x[2]], y), "cardinality.*body=47"),
    (lambda x, y: (x, [y[0], y[1][:-1]]), "cardinality.*department=47"),
    (lambda x, y: ([x[0], x[1][:, :5], x[2]], y),
     r"Input 1 of layer .* expected shape \(None, 20\).*\(input 'body'\)"),
    (lambda x, y: (x, [y[0], y[1][:, :3]]), r"shape \(None, 4\) of output 'department'"),
    (lambda x, y: (x, [y[0][:, 0] * np.nan, y[1]]), "y for output 'priority' contains NaN"),
    (lambda x, y: ([x[0], x[1] * np.inf, x[2]], y), "input 'body' contains NaN"),
])
def test_bad_data_is_a_value_error_naming_the_input_or_output(make, match):
    model = _compile(_model())
    x, y = _data()
    bx, by = make(x, y)
    w = model.get_weights()
    for call in (lambda: model.fit(bx, by, verbose=0), lambda: model.evaluate(bx, by, verbose=0),
                 lambda: model.fit(x, y, validation_data=(bx, by), verbose=0)):
        with pytest.raises(ValueError, match=match):
            call()
    for a, b in zip(model.get_weights(), w):  # nothing trained
        np.testing.assert_array_equal(a, b)


def test_sparse_labels_checked_per_output():
    model = _compile(_model(), loss={"priority": "mse",
                                     "department": "sparse_categorical_crossentropy"})
    x, y = _data()
    labels = y[1].argmax(-1)
    logs = model.evaluate(x, [y[0], labels], verbose=0, return_dict=True)
    assert "department_accuracy" in logs  # resolved to sparse accuracy by the shapes
    with pytest.raises(ValueError, match="label value of 4 .*output 'department'"):
        model.fit(x, [y[0], labels + 1], verbose=0)
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy \(output 'department"):
        model.fit(x, y, verbose=0)


def test_failed_fit_changes_nothing():
    model = _compile(_model())
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    names, w = model.metrics_names, model.get_weights()
    ref = model.evaluate(x, y, verbose=0)
    # Metrics resolve for the training targets, then the validation targets fail.
    with pytest.raises(ValueError, match="output 'department'"):
        model.fit(x, y, validation_data=(x, [y[0], y[1][:, :2]]), verbose=0)
    assert model.metrics_names == names and model.evaluate(x, y, verbose=0) == ref
    for a, b in zip(model.get_weights(), w):
        np.testing.assert_array_equal(a, b)


def test_dataloader_is_refused_for_several_inputs():
    model = _compile(_model())
    x, y = _data()
    with pytest.raises(ValueError, match="3 input.*2 output"):
        model.fit(DataLoader((x[0], y[0])), verbose=0)
    with pytest.raises(ValueError, match="3 input"):
        model.predict(DataLoader(x[0]), verbose=0)


def test_predict_and_call_structures():
    model = _model()
    x, _ = _data()
    out = model.predict(x, batch_size=7, verbose=0)
    assert isinstance(out, list) and [o.shape for o in out] == [(N, 1), (N, 4)]
    whole = model(x)
    for a, b in zip(out, whole):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    by_name = model.predict(_named(x, ["title", "body", "tags"]), verbose=0)
    for a, b in zip(out, by_name):
        np.testing.assert_array_equal(a, b)


def test_compile_config_round_trips_through_compile():
    model = _compile(_model())
    x, y = _data()
    cfg = model._compile_config()
    assert cfg["loss"] == {"priority": "binary_crossentropy",
                           "department": "categorical_crossentropy"}
    assert cfg["loss_weights"] == {"priority": 1.0, "department": 0.2}
    assert cfg["metrics"] == {"priority": ["mae"], "department": ["accuracy"]}
    other = _model()
    other.set_weights(model.get_weights())
    other.compile(**cfg)
    assert other.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    objects = _compile(_model(), loss=[shenjing.losses.BinaryCrossentropy(),
                                       shenjing.losses.CategoricalCrossentropy()])
    cfg = objects._compile_config()
    assert [c["class_name"] for c in cfg["loss"]] == ["BinaryCrossentropy",
                                                       "CategoricalCrossentropy"]
    _model().compile(**cfg)


def test_single_output_names_unchanged():
    inp = layers.Input((5,), name="x")
    model = shenjing.Model(inp, layers.Dense(3, activation="softmax", name="out")(inp))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    y = np.arange(20) % 3
    hist = model.fit(x, y, validation_data=([x], {"out": y}), epochs=1, verbose=0)
    assert list(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert model.metrics_names == ["loss", "accuracy"]
    assert isinstance(model.predict(x, verbose=0), np.ndarray)


def test_outputs_of_one_shared_layer_take_list_arguments_by_position():
    a, b = layers.Input((3,), name="a"), layers.Input((3,), name="b")
    shared = layers.Dense(2, name="shared")
    model = shenjing.Model([a, b], [shared(a), shared(b)])
    assert model.output_names == ["shared", "shared"]
    model.compile(optimizer="sgd", loss=["mse", "mae"], loss_weights=[1.0, 0.0])
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(10, 3)).astype(np.float32) for _ in range(2)]
    y = [rng.normal(size=(10, 2)).astype(np.float32) for _ in range(2)]
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=10, verbose=0)[0],
                               np.mean((p[0] - y[0]) ** 2), rtol=1e-5)
