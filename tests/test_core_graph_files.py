"""Model files the C++ loader (Model::load, through _core.load_model_file) builds from a
"core_graph" (the graph as Python hands it to the core, written for models with traced
custom layers) and from functional configs with primitive-op "Operation" entries. Most files
are written here with saving.write_safetensors (so those tests do not depend on model.save),
and one test loads what model.save writes; results are checked against NumPy and against the
Python model. Hostile variants of both
must give ValueError: never a crash, a hang or a huge allocation (see .ci/sanitize)."""
import copy
import json
import random

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers, ops, saving

RNG = np.random.default_rng(0)


def _meta(graph, config):
    meta = {"format": "shenjing", "format_version": "1", "kind": "model"}
    if config is not None:
        meta["model_config"] = config if isinstance(config, str) else json.dumps(config)
    if graph is not None:
        meta["core_graph"] = graph if isinstance(graph, str) else json.dumps(graph)
    return meta


# A subclassed model's Keras config: a Python class the C++ loader cannot know, so it must
# build from the core_graph.
CUSTOM_CONFIG = {"module": None, "class_name": "MyModel", "config": {"units": 4},
                 "registered_name": "custom>MyModel"}


def _load(tmp_path, graph, tensors, config=CUSTOM_CONFIG):
    path = str(tmp_path / "model.shenjing")
    saving.write_safetensors(path, _meta(graph, config), tensors)
    core, meta, rest = _core.load_model_file(path)
    return core


def _predict(core, xs, out_shapes):
    n = xs[0].shape[0]
    outs = [np.zeros((n,) + tuple(s), np.float32) for s in out_shapes]
    core.predict(list(xs), outs, 0, n)
    return outs


def _f32(*shape):
    return RNG.normal(0, 0.5, shape).astype(np.float32)


def dense(units, name="d", **kw):
    return {"class_name": "Dense", "config": {"name": name, "units": units, **kw}}


def op(name, **attrs):
    return {"class_name": "Op", "config": {"name": name, "op": name, **attrs}}


def variable(name, shape, weight):
    return {"class_name": "Op", "config": {"name": name, "op": "variable", "shape": shape,
                                           "weight": weight, "trainable": True}}


def constant(values, shape):
    return {"class_name": "Op", "config": {"name": "constant", "op": "constant", "shape": shape,
                                           "values": values}}


# -- core graphs that load -------------------------------------------------------------------
def _dense_relu():
    graph = {"inputs": [[3]],
             "nodes": [{"layer": dense(4), "inputs": [0], "weights": 0},
                       {"layer": op("relu"), "inputs": [1]}],
             "outputs": [2]}
    return graph, {"layers.0.kernel": _f32(3, 4), "layers.0.bias": _f32(4)}


def test_chain_dense_then_relu_op(tmp_path):
    graph, t = _dense_relu()
    core = _load(tmp_path, graph, t)
    x = _f32(7, 3)
    (y,) = _predict(core, [x], [(4,)])
    np.testing.assert_allclose(y, np.maximum(x @ t["layers.0.kernel"] + t["layers.0.bias"], 0),
                               rtol=1e-5, atol=1e-6)


def test_model_config_is_not_needed_next_to_a_core_graph(tmp_path):
    graph, t = _dense_relu()
    core = _load(tmp_path, graph, t, config=None)
    assert core.num_inputs == 1 and core.output_shape == [4]


class Linear(layers.Layer):
    """A traced custom layer: two Variables, matmul and add."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.b = self.add_weight(shape=(self.units,), name="bias", initializer="zeros")

    def call(self, x):
        return ops.matmul(x, self.w) + self.b


def _linear_graph():
    # The graph Python emits for Model(inp, Linear(2)(inp)): a Variable's node is a source
    # node with its own weight index (saving.weight_layers), the ops hold no weights.
    return {"inputs": [[3]],
            "nodes": [{"layer": variable("linear_kernel", [3, 2], "kernel"), "inputs": [],
                       "weights": 0},
                      {"layer": op("matmul"), "inputs": [0, 1], "weights": -1},
                      {"layer": variable("linear_bias", [2], "bias"), "inputs": [],
                       "weights": 1},
                      {"layer": op("add"), "inputs": [2, 3]}],
            "outputs": [4]}


def test_traced_linear_layer_matches_the_python_model(tmp_path):
    inp = shenjing.Input((3,))
    model = shenjing.Model(inp, Linear(2)(inp))
    x = _f32(9, 3)
    model.predict(x, verbose=0)  # builds the core
    model.set_weights([_f32(3, 2), _f32(2)])
    tensors = saving.weight_tensors(model)
    assert sorted(tensors) == ["layers.0.kernel", "layers.1.bias"]
    core = _load(tmp_path, _linear_graph(), tensors)
    (y,) = _predict(core, [x], [(2,)])
    np.testing.assert_allclose(y, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, x @ tensors["layers.0.kernel"] + tensors["layers.1.bias"],
                               rtol=1e-5, atol=1e-6)


def _shared_graph():
    # A siamese pair: one Dense on both inputs, then |a - b| and a second output.
    graph = {"inputs": [[4], [4]],
             "nodes": [{"layer": dense(3, "enc", activation="tanh"), "inputs": [0],
                        "weights": 0},
                       {"shared": 0, "inputs": [1]},
                       {"layer": op("subtract"), "inputs": [2, 3]},
                       {"layer": op("abs"), "inputs": [4]},
                       {"layer": dense(1, "out"), "inputs": [5], "weights": 2}],
             "outputs": [6, 2]}
    tensors = {"layers.0.kernel": _f32(4, 3), "layers.0.bias": _f32(3),
               "layers.2.kernel": _f32(3, 1), "layers.2.bias": _f32(1)}
    return graph, tensors


def test_shared_layer_two_inputs_two_outputs(tmp_path):
    graph, t = _shared_graph()
    core = _load(tmp_path, graph, t)
    a, b = _f32(5, 4), _f32(5, 4)
    y, ea = _predict(core, [a, b], [(1,), (3,)])
    enc = lambda v: np.tanh(v @ t["layers.0.kernel"] + t["layers.0.bias"])  # noqa: E731
    np.testing.assert_allclose(ea, enc(a), rtol=1e-5, atol=1e-6)
    want = np.abs(enc(a) - enc(b)) @ t["layers.2.kernel"] + t["layers.2.bias"]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_constant_op(tmp_path):
    graph = {"inputs": [[2, 3]],
             "nodes": [{"layer": constant([1.0, -2.0, 0.5], [3]), "inputs": []},
                       {"layer": op("multiply"), "inputs": [0, 1]},
                       {"layer": constant([4.0], []), "inputs": [], "weights": None},
                       {"layer": op("add"), "inputs": [2, 3]}],
             "outputs": [4]}
    core = _load(tmp_path, graph, {})
    x = _f32(6, 2, 3)
    (y,) = _predict(core, [x], [(2, 3)])
    np.testing.assert_allclose(y, x * np.array([1.0, -2.0, 0.5], np.float32) + 4.0, rtol=1e-6)


def test_weight_index_of_a_paramless_layer_is_allowed_and_indices_may_skip(tmp_path):
    # Python numbers every weight layer, weights or not; indices need not be dense.
    graph = {"inputs": [[3]],
             "nodes": [{"layer": {"class_name": "Dropout", "config": {"name": "dr", "rate": 0.5}},
                        "inputs": [0], "weights": 0},
                       {"layer": dense(2), "inputs": [1], "weights": 7}],
             "outputs": [2]}
    t = {"layers.7.kernel": _f32(3, 2), "layers.7.bias": _f32(2)}
    core = _load(tmp_path, graph, t)
    x = _f32(4, 3)
    (y,) = _predict(core, [x], [(2,)])
    np.testing.assert_allclose(y, x @ t["layers.7.kernel"] + t["layers.7.bias"], rtol=1e-5,
                               atol=1e-6)


class Block(layers.Layer):
    """A custom layer with a sub-layer and a NumPy constant."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = layers.Dense(3, activation="tanh")

    def call(self, x):
        return self.d(x) - np.array([1.0, 2.0, 3.0], np.float32)


class Sub(shenjing.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a, self.b = Linear(4), layers.Dense(2)

    def call(self, x):
        return self.b(ops.relu(self.a(x)))


def _saved_shared():
    a, b = shenjing.Input((5,)), shenjing.Input((5,))
    lin, enc = Linear(3), layers.Dense(3)
    return shenjing.Model([a, b], [ops.abs(lin(a) - lin(b)), enc(a) + enc(b)])


def _saved_sequential():
    return shenjing.Sequential([shenjing.Input((5,)), layers.Dense(4), Linear(2)])


def _saved_block():
    inp = shenjing.Input((5,))
    return shenjing.Model(inp, Block()(Linear(4)(inp)))


def _saved_subclassed():
    model = Sub()
    model.build((None, 5))
    return model


@pytest.mark.parametrize("make", [_saved_shared, _saved_sequential, _saved_block,
                                  _saved_subclassed])
def test_model_save_files_of_traced_models_run_in_cpp(tmp_path, make):
    """The core_graph model.save writes: the C++ loader alone gives Python's predictions."""
    model = _with_weights(make())
    x = _f32(6, 5)
    xs = [x, x[::-1].copy()] if len(model.inputs) == 2 else [x]
    want = model.predict(xs if len(xs) == 2 else x, verbose=0)
    want = want if isinstance(want, list) else [want]
    path = str(tmp_path / "m.keras")
    model.save(path)
    core, meta, _ = _core.load_model_file(path)
    assert "core_graph" in meta
    outs = _predict(core, xs, [w.shape[1:] for w in want])
    for got, w in zip(outs, want):
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7)


# -- functional configs with Operation entries ------------------------------------------------
def _with_weights(model):
    model.set_weights([_f32(*w.shape) for w in model.get_weights()])
    return model


def _ops_after():
    inp = shenjing.Input((3,), name="x")
    return shenjing.Model(inp, ops.relu(layers.Dense(4)(inp) * 2.0))


def _ops_between():
    # Operations before and between Dense layers: their weight indices count the ops.
    inp = shenjing.Input((3,), name="x")
    h = layers.Dense(4, name="d1")(ops.tanh(inp * 2.0))
    return shenjing.Model(inp, layers.Dense(2, name="d2")(ops.sigmoid(h) + 1.0))


def _ops_nested():
    i = shenjing.Input((3,), name="i")
    inner = shenjing.Model(i, ops.relu(layers.Dense(3, name="e")(i)) - 0.5, name="inner")
    x = shenjing.Input((3,), name="x")
    return shenjing.Model(x, layers.Dense(2, name="out")(inner(ops.abs(x))))


@pytest.mark.parametrize("make", [_ops_after, _ops_between, _ops_nested])
def test_functional_config_with_operations_matches_python(tmp_path, make):
    model = _with_weights(make())
    config = json.loads(model.to_json())
    ops_entries = [e for e in config["config"]["layers"] if e["class_name"] == "Operation"]
    assert ops_entries and all(e["config"].get("output_dtype") == "float32"
                               for e in ops_entries)
    tensors = saving.weight_tensors(model)
    core = _load(tmp_path, None, tensors, config=config)
    x = _f32(8, 3)
    (y,) = _predict(core, [x], [model.outputs[0].shape[1:]])
    np.testing.assert_allclose(y, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_constant_operation_is_called_on_no_tensors_and_ops_are_counted(tmp_path):
    model = _with_weights(_ops_between())
    config = json.loads(model.to_json())
    entries = config["config"]["layers"][1:]  # the InputLayer is not counted
    consts = [e for e in entries if e["config"].get("op") == "constant"]
    assert consts and all(e["inbound_nodes"] == [{"args": [[]], "kwargs": {}}] for e in consts)
    # Weight index i counts every entry but the InputLayers, Operations included.
    idx = {e["name"]: i for i, e in enumerate(entries)}
    assert sorted(saving.weight_tensors(model)) == sorted(
        f"layers.{idx[n]}.{p}" for n in ("d1", "d2") for p in ("kernel", "bias"))
    assert idx["d1"] > 0 and idx["d2"] > idx["d1"] + 1


def test_weights_numbered_without_the_operations_are_refused(tmp_path):
    model = _with_weights(_ops_between())
    w = model.get_weights()
    old = {"layers.0.kernel": w[0], "layers.0.bias": w[1], "layers.1.kernel": w[2],
           "layers.1.bias": w[3]}
    with pytest.raises(ValueError, match="is missing"):
        _load(tmp_path, None, old, config=model.to_json())


def _edit_functional(edit):
    model = _with_weights(_ops_after())
    config = json.loads(model.to_json())
    # by role (names are numbered per session): "dense", or the op ("constant", "relu", ...)
    entries = {e["config"].get("op", e["class_name"].lower()): e
               for e in config["config"]["layers"]}
    edit(config, entries)
    return config, saving.weight_tensors(model)


def _set(entry, key, value):
    entry[key] = value


def _pop(entry, key):
    entry.pop(key)


FUNCTIONAL_HOSTILE = {
    "dense called on nothing": (
        lambda c, e: _set(e["dense"], "inbound_nodes", [{"args": [[]], "kwargs": {}}]),
        "layer inputs must be tensors"),
    "relu called on nothing": (
        lambda c, e: _set(e["relu"], "inbound_nodes", [{"args": [[]], "kwargs": {}}]),
        "needs at least one input|takes"),
    "constant called on a tensor": (
        lambda c, e: _set(e["constant"], "inbound_nodes", e["dense"]["inbound_nodes"]),
        "takes no inputs"),
    "operation never called": (
        lambda c, e: _set(e["constant"], "inbound_nodes", []), "never called"),
    "operation called twice": (
        lambda c, e: _set(e["relu"], "inbound_nodes", e["relu"]["inbound_nodes"] * 2),
        "cannot be shared"),
    "variable operation": (
        lambda c, e: e["constant"]["config"].update(op="variable", shape=[2], weight="w"),
        "cannot be a 'variable'"),
    "unknown op": (lambda c, e: e["relu"]["config"].update(op="launch"), "unknown op"),
    "no op": (lambda c, e: e["relu"]["config"].pop("op"), "'op' must be"),
    "config not an object": (lambda c, e: _set(e["relu"], "config", [1]), "'config' object"),
    "config missing": (lambda c, e: e["relu"].pop("config"), "'config' object"),
    "bad constant values": (
        lambda c, e: e["constant"]["config"].update(values=[1.0, 2.0]), "'values' must be"),
    "empty args nested": (
        lambda c, e: _set(e["constant"], "inbound_nodes", [{"args": [[[]]], "kwargs": {}}]),
        "layer inputs must be tensors"),
    "args of two": (
        lambda c, e: _set(e["constant"], "inbound_nodes", [{"args": [[], []], "kwargs": {}}]),
        "a call takes one argument"),
    "reads itself": (
        lambda c, e: e["relu"]["inbound_nodes"][0]["args"][0][0]["config"].update(
            keras_history=[e["relu"]["name"], 0, 0]), "loops"),
    "operation in a nested Sequential": (
        lambda c, e: _set(e["dense"], "class_name", "Sequential") or _set(
            e["dense"], "config", {"name": "s", "layers": [
                {"class_name": "InputLayer", "name": "i",
                 "config": {"batch_shape": [None, 3]}},
                {"class_name": "Operation", "name": "r", "config": {"name": "r", "op": "relu"}}]}),
        "Sequential model is not supported"),
}


@pytest.mark.parametrize("case", sorted(FUNCTIONAL_HOSTILE))
def test_hostile_operation_entries(tmp_path, case):
    edit, pattern = FUNCTIONAL_HOSTILE[case]
    config, tensors = _edit_functional(edit)
    with pytest.raises(ValueError, match=pattern):
        _load(tmp_path, None, tensors, config=config)


# -- hostile core graphs ---------------------------------------------------------------------
def _edit(edit, base=_dense_relu):
    graph, tensors = base()
    graph = copy.deepcopy(graph)
    out = edit(graph, tensors)
    return (graph if out is None else out), tensors


def _node(g, j):
    return g["nodes"][j]


HOSTILE = {
    # the text and its top level
    "not json": (lambda g, t: "{\"inputs\": [[3]],", "invalid JSON"),
    "not an object": (lambda g, t: [g], "must be an object"),
    "no inputs key": (lambda g, t: _pop(g, "inputs"), "missing 'inputs'"),
    "no nodes key": (lambda g, t: _pop(g, "nodes"), "missing 'nodes'"),
    "no outputs key": (lambda g, t: _pop(g, "outputs"), "missing 'outputs'"),
    "inputs not a list": (lambda g, t: _set(g, "inputs", {"0": [3]}), "'inputs' must be"),
    "no model inputs": (lambda g, t: _set(g, "inputs", []), "'inputs' must be"),
    "nodes empty": (lambda g, t: _set(g, "nodes", []), "'nodes' must be"),
    "too many nodes": (
        lambda g, t: _set(g, "nodes", [{"layer": op("relu"), "inputs": [0]}] * (65537)),
        "'nodes' must be a list of 1 to 65536"),
    # input shapes
    "input shape empty": (lambda g, t: _set(g, "inputs", [[]]), "1 to 8 positive sizes"),
    "input shape zero": (lambda g, t: _set(g, "inputs", [[0]]), "input 0"),
    "input shape negative": (lambda g, t: _set(g, "inputs", [[-3]]), "input 0"),
    "input shape fractional": (lambda g, t: _set(g, "inputs", [[1.5]]), "input 0"),
    "input shape string": (lambda g, t: _set(g, "inputs", [["3"]]), "input 0"),
    "input shape not a list": (lambda g, t: _set(g, "inputs", [3]), "1 to 8 positive sizes"),
    "input of nine axes": (lambda g, t: _set(g, "inputs", [[1] * 9]), "1 to 8 positive sizes"),
    "input axis over 2^24": (lambda g, t: _set(g, "inputs", [[2 ** 24 + 1]]), "input 0"),
    "input over 2^28 values": (
        lambda g, t: _set(g, "inputs", [[2 ** 14, 2 ** 14, 2 ** 14]]), "2\\^28"),
    # tensor ids
    "node input out of range": (lambda g, t: _set(_node(g, 1), "inputs", [99]), "tensor 99"),
    "node input negative": (lambda g, t: _set(_node(g, 1), "inputs", [-1]), "tensor id"),
    "node input huge": (lambda g, t: _set(_node(g, 1), "inputs", [2 ** 40]), "tensor id"),
    "node input fractional": (lambda g, t: _set(_node(g, 1), "inputs", [0.5]), "tensor id"),
    "node input string": (lambda g, t: _set(_node(g, 1), "inputs", ["1"]), "tensor id"),
    "node input null": (lambda g, t: _set(_node(g, 1), "inputs", [None]), "tensor id"),
    "node reads itself": (lambda g, t: _set(_node(g, 1), "inputs", [2]), "tensor 2 is not made"),
    "forward reference": (lambda g, t: _set(_node(g, 0), "inputs", [2]), "tensor 2 is not made"),
    "cycle": (lambda g, t: _set(_node(g, 0), "inputs", [2]) or _set(_node(g, 1), "inputs", [1]),
              "not made before"),
    "inputs not a list": (lambda g, t: _set(_node(g, 1), "inputs", 1), "'inputs' must be"),
    "inputs missing": (lambda g, t: _pop(_node(g, 1), "inputs"), "missing 'inputs'"),
    "65 inputs": (lambda g, t: _set(_node(g, 1), "inputs", [1] * 65), "0 to 64"),
    "64 inputs to relu": (lambda g, t: _set(_node(g, 1), "inputs", [1] * 64), "node 1"),
    # node kinds
    "node not an object": (lambda g, t: _set(g, "nodes", [3]), "node 0 must be an object"),
    "neither layer nor shared": (lambda g, t: _pop(_node(g, 1), "layer"), "one of"),
    "both layer and shared": (lambda g, t: _set(_node(g, 1), "shared", 0), "one of"),
    "layer not an object": (lambda g, t: _set(_node(g, 1), "layer", "relu"), "class_name"),
    "unknown layer class": (
        lambda g, t: _set(_node(g, 1), "layer", {"class_name": "MyLayer", "config": {}}),
        "Unknown layer type"),
    "unknown op": (lambda g, t: _set(_node(g, 1), "layer", op("launch")), "unknown op"),
    "bad layer field": (
        lambda g, t: _node(g, 0)["layer"]["config"].update(units=-4), "'units' must be"),
    "dense on no tensor": (lambda g, t: _set(_node(g, 0), "inputs", []), "at least one input"),
    "relu on no tensor": (lambda g, t: _set(_node(g, 1), "inputs", []), "at least one input"),
    "constant on a tensor": (
        lambda g, t: _set(_node(g, 1), "layer", constant([1.0], [1])), "takes no inputs"),
    "dense on a constant": (
        lambda g, t: g["nodes"].insert(0, {"layer": constant([1.0] * 3, [3]), "inputs": []})
        or _set(_node(g, 1), "inputs", [1]) or _set(_node(g, 2), "inputs", [2])
        or _set(g, "outputs", [3]), "batch axis"),
    "shape mismatch": (lambda g, t: _set(g, "inputs", [[5]]), "shape"),
    # shared nodes
    "shared out of range": (
        lambda g, t: _set(g, "nodes", g["nodes"] + [{"shared": 2, "inputs": [0]}]),
        "only 2 layers"),
    "shared negative": (
        lambda g, t: _set(g, "nodes", g["nodes"] + [{"shared": -1, "inputs": [0]}]), "'shared'"),
    "shared not an integer": (
        lambda g, t: _set(g, "nodes", g["nodes"] + [{"shared": "0", "inputs": [0]}]),
        "'shared'"),
    "shared with weights": (
        lambda g, t: _set(g, "nodes", g["nodes"] + [{"shared": 0, "inputs": [0],
                                                     "weights": 0}]), "'weights' belongs"),
    "shared on a wrong shape": (
        lambda g, t: _set(g, "nodes", g["nodes"] + [{"shared": 0, "inputs": [2]}]),
        "cannot be called again"),
    "shared op": (
        lambda g, t: _set(g, "nodes", g["nodes"] + [{"shared": 1, "inputs": [2]}]),
        "cannot be shared"),
    "shared before its layer": (
        lambda g, t: g["nodes"].insert(0, {"shared": 0, "inputs": [0]}), "only 0 layers"),
    # weights
    "weight tensor missing": (lambda g, t: _pop(t, "layers.0.bias"), "is missing"),
    "weight index points nowhere": (lambda g, t: _set(_node(g, 0), "weights", 3), "is missing"),
    "weight index at the cap": (
        lambda g, t: _set(_node(g, 0), "weights", 2 ** 31 - 1), "layers.2147483647.kernel"),
    "weight index over the cap": (
        lambda g, t: _set(_node(g, 0), "weights", 2 ** 31), "'weights'"),
    "weight index below -1": (lambda g, t: _set(_node(g, 0), "weights", -2), "'weights'"),
    "weight index fractional": (lambda g, t: _set(_node(g, 0), "weights", 0.5), "'weights'"),
    "weight index string": (lambda g, t: _set(_node(g, 0), "weights", "0"), "'weights'"),
    "params without an index": (lambda g, t: _set(_node(g, 0), "weights", -1),
                                 "no 'weights' index"),
    "params with the index absent": (lambda g, t: _pop(_node(g, 0), "weights"),
                                     "no 'weights' index"),
    "weight index used twice": (lambda g, t: _set(_node(g, 1), "weights", 0), "two layers"),
    "weight shape wrong": (lambda g, t: t.update({"layers.0.kernel": _f32(4, 3)}),
                           "has shape \\(4, 3\\)"),
    "weight dtype wrong": (lambda g, t: t.update({"layers.0.bias": np.zeros(4, np.int64)}),
                           "must be F32"),
    "weight not finite": (lambda g, t: t["layers.0.kernel"].__setitem__((1, 1), np.nan),
                          "NaN or infinity"),
    "extra weight tensor": (lambda g, t: t.update({"layers.5.kernel": _f32(2)}),
                            "3 layer weights, but its architecture uses 2"),
    "huge variable never allocated": (
        lambda g, t: g["nodes"].append({"layer": variable("v", [2 ** 14, 2 ** 14], "w"),
                                        "inputs": [], "weights": 9}), "layers.9.w"),
    "huge variable without an index": (
        lambda g, t: g["nodes"].append({"layer": variable("v", [2 ** 14, 2 ** 14], "w"),
                                        "inputs": []}), "no 'weights' index"),
    "variable beyond 2^31 values": (
        lambda g, t: g["nodes"].append({"layer": variable("v", [2 ** 24, 2 ** 24], "w"),
                                        "inputs": [], "weights": 9}), "'shape' must be"),
    # outputs
    "outputs empty": (lambda g, t: _set(g, "outputs", []), "'outputs' must be"),
    "outputs not a list": (lambda g, t: _set(g, "outputs", 2), "'outputs' must be"),
    "output out of range": (lambda g, t: _set(g, "outputs", [3]), "tensor 3"),
    "output is a model input": (lambda g, t: _set(g, "outputs", [0]), "model input"),
    "output negative": (lambda g, t: _set(g, "outputs", [-1]), "tensor id"),
    "output string": (lambda g, t: _set(g, "outputs", ["2"]), "tensor id"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_core_graphs(tmp_path, case):
    edit, pattern = HOSTILE[case]
    graph, tensors = _edit(edit)
    with pytest.raises(ValueError, match=pattern):
        _load(tmp_path, graph, tensors)


def test_errors_name_the_file_and_the_node(tmp_path):
    graph, tensors = _edit(lambda g, t: _set(_node(g, 1), "layer", op("launch")))
    with pytest.raises(ValueError, match=r"Cannot load '.*model.shenjing': core_graph: node 1: "
                                         r"Op 'launch': unknown op"):
        _load(tmp_path, graph, tensors)


def _leaves(v, path=()):
    """Paths of every number, string and null in a JSON value."""
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _leaves(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _leaves(x, path + (i,))
    else:
        yield path


def test_random_edits_load_or_give_value_error(tmp_path):
    """Every leaf of valid graphs replaced by odd values: each file loads (then predicts) or
    is refused with ValueError; anything else fails (and the sanitizer run sees the rest)."""
    rng = random.Random(1)
    odd = [-1, 0, 1, 2, 3, 4, 6, 7, 2 ** 31 - 1, 2 ** 31, -2 ** 31, 2 ** 53, 0.5, 1e308, None,
           True, "0", "relu", "variable", [], [0], {}, [2 ** 24, 2 ** 24]]
    bases = [_dense_relu, _shared_graph, lambda: (_linear_graph(),
                                                  {"layers.0.kernel": _f32(3, 2),
                                                   "layers.1.bias": _f32(2)})]
    loaded = refused = 0
    for k in range(300):
        graph, tensors = bases[k % len(bases)]()
        graph = copy.deepcopy(graph)
        for _ in range(rng.choice([1, 1, 2])):
            path = rng.choice(list(_leaves(graph)))
            where = graph
            for p in path[:-1]:
                where = where[p]
            where[path[-1]] = rng.choice(odd)
        try:
            core = _load(tmp_path, graph, tensors)
        except ValueError:
            refused += 1
            continue
        loaded += 1
        xs = [_f32(2, *core.input_shape(i)) for i in range(core.num_inputs)]
        try:
            _predict(core, xs, core.output_shapes)
        except ValueError:
            pass  # e.g. an output without the batch axis
    assert refused > 100 and loaded > 5
