"""Functional models in configs, summaries and files: Keras 3's config layout both ways (a
config as Keras writes it loads), the summary table with its Connected to column, save/load
bit-exact through Python and through the C++ loader (shenjing._core.Model.load), resumed
training, and hostile functional configs refused by both loaders."""
import copy
import json
import struct

import numpy as np
import pytest

import shenjing
from shenjing import layers, saving
from shenjing.models import Functional, Model, Sequential, load_model, model_from_json


# -- the models ------------------------------------------------------------------------------
def _branching():
    a, b = shenjing.Input((6,), name="a"), shenjing.Input((4,), name="b")
    h = layers.Dense(5, activation="relu", name="h")(a)
    g = layers.Dense(5, activation="tanh", name="g")(b)
    cat = layers.Concatenate(name="cat")([h, g])
    return Model([a, b], {"score": layers.Dense(1, name="score")(cat),
                          "cls": layers.Dense(3, activation="softmax", name="cls")(h)},
                 name="branching")


def _siamese():
    a, b = shenjing.Input((6,), name="left"), shenjing.Input((6,), name="right")
    enc = layers.Dense(4, activation="relu", name="enc")
    diff = layers.Subtract(name="diff")([enc(a), enc(b)])
    return Model([a, b], layers.Dense(1, name="out")(diff), name="siamese")


def _merges():
    x = shenjing.Input((4, 3), name="x")
    p, q = layers.Dense(3, name="p")(x), layers.Dense(3, name="q")(x)
    m = [layers.Add()([p, q]), layers.Multiply()([p, q]), layers.Maximum()([p, q]),
         layers.Average()([p, q, x])]
    y = layers.Concatenate(axis=1)(m)
    return Model(x, layers.Dense(2)(layers.Flatten()(y)), name="merges")


def _nested():
    inner_seq = Sequential([layers.Input((6,)), layers.Dense(5, activation="relu"),
                            layers.Dropout(0.0), layers.Dense(4)], name="inner_seq")
    i = shenjing.Input((4,), name="fi")
    inner_fn = Model(i, layers.Dense(3, name="fd")(layers.Dense(4, name="fe")(i)),
                     name="inner_fn")
    a, b = shenjing.Input((6,), name="na"), shenjing.Input((6,), name="nb")
    s = layers.Add(name="sum")([inner_seq(a), inner_seq(b)])  # a nested model called twice
    return Model([a, b], [inner_fn(s), layers.Dense(2, name="side")(s)], name="nested")


def _cut():
    """An encoder cut out of an autoencoder: it shares the autoencoder's weights."""
    x = shenjing.Input((8,), name="img")
    code = layers.Dense(3, activation="relu", name="code")(layers.Dense(5, name="e1")(x))
    recon = layers.Dense(8, name="dec")(code)
    Model(x, recon, name="autoencoder")
    return Model(x, code, name="encoder")


def _reused_deeper():
    """A(B(A(x))): the shared layer's second call reads a layer listed after it."""
    x = shenjing.Input((4,), name="x")
    a, b = layers.Dense(4, activation="tanh", name="A"), layers.Dense(4, name="B")
    return Model(x, a(b(a(x))), name="aba")


ZOO = {"branching": _branching, "siamese": _siamese, "merges": _merges, "nested": _nested,
       "cut": _cut, "aba": _reused_deeper}


def _make(name, seed=0):
    shenjing.utils.set_random_seed(seed)
    model = ZOO[name]()
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def _xs(model, n=5, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, *t.shape[1:])).astype(np.float32) for t in model.inputs]


def _predict(core, xs):
    outs = [np.empty((len(xs[0]), *s), np.float32) for s in core.output_shapes]
    core.predict(xs if len(xs) > 1 else xs[0], outs if len(outs) > 1 else outs[0], 0,
                 len(xs[0]))
    return outs


def _same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


# -- configs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO)
def test_config_round_trip(name):
    model = _make(name)
    config = model.get_config()
    json.dumps(config)  # plain JSON
    again = Functional.from_config(copy.deepcopy(config))
    assert again.get_config() == config
    assert [l.name for l in again.layers] == [l.name for l in model.layers]
    again.set_weights(model.get_weights())
    _same(_predict(model._core, _xs(model)), _predict(again._core, _xs(model)))
    from_json = model_from_json(model.to_json())
    assert isinstance(from_json, Functional) and from_json.get_config() == config


def test_config_layout_is_keras():
    config = _make("siamese").get_config()
    assert config["input_layers"] == [["left", 0, 0], ["right", 0, 0]]
    assert config["output_layers"] == ["out", 0, 0]
    enc = next(l for l in config["layers"] if l["name"] == "enc")
    assert enc["class_name"] == "Dense" and enc["module"] == "keras.layers"
    assert [n["args"][0]["config"]["keras_history"] for n in enc["inbound_nodes"]] == \
        [["left", 0, 0], ["right", 0, 0]]
    diff = next(l for l in config["layers"] if l["name"] == "diff")
    assert [t["config"]["keras_history"] for t in diff["inbound_nodes"][0]["args"][0]] == \
        [["enc", 0, 0], ["enc", 1, 0]]
    assert diff["inbound_nodes"][0]["kwargs"] == {}
    nested = _make("nested").get_config()
    assert nested["output_layers"] == [["inner_fn", 1, 0], ["side", 0, 0]]  # Keras's +1
    seq = next(l for l in nested["layers"] if l["name"] == "inner_seq")
    assert seq["class_name"] == "Sequential" and len(seq["inbound_nodes"]) == 2
    branching = _make("branching").get_config()
    assert branching["output_layers"] == {"score": ["score", 0, 0], "cls": ["cls", 0, 0]}
    spec = json.loads(_make("cut").to_json())
    assert (spec["class_name"], spec["registered_name"]) == ("Functional", "Functional")


# Written as Keras 3 writes `model.get_config()` (keras/src/models/functional.py: layers with
# build_config, inbound_nodes of __keras_tensor__ args, a shared layer, a merge, a nested
# Sequential, a nested Functional numbered from 1 in output_layers), for:
#   x = Input((4,)); shared = Dense(3); y = Add()([shared(x), shared(Dense(4)(x))])
#   outputs = [seq(y), fn(y)] with seq = Sequential([Input((3,)), Dense(2)]) and
#   fn = Model(Input((3,)), Dense(2)(...)).
def _kt(shape, history):
    return {"class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": "float32", "keras_history": history}}


def _dense(name, units, shape, nodes):
    return {"module": "keras.layers", "class_name": "Dense",
            "config": {"name": name, "trainable": True,
                       "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                 "config": {"name": "float32"}, "registered_name": None},
                       "units": units, "activation": "linear", "use_bias": True,
                       "kernel_initializer": {"module": "keras.initializers",
                                              "class_name": "GlorotUniform",
                                              "config": {"seed": None},
                                              "registered_name": None},
                       "bias_initializer": {"module": "keras.initializers",
                                            "class_name": "Zeros", "config": {},
                                            "registered_name": None},
                       "kernel_regularizer": None, "bias_regularizer": None,
                       "kernel_constraint": None, "bias_constraint": None},
            "registered_name": None, "build_config": {"input_shape": shape},
            "name": name, "inbound_nodes": [{"args": [_kt(shape, h)], "kwargs": {}}
                                            for h in nodes]}


def _input(name, shape):
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": shape, "dtype": "float32", "sparse": False,
                       "ragged": False, "name": name, "optional": False},
            "registered_name": None, "name": name, "inbound_nodes": []}


KERAS_CONFIG = {
    "module": "keras.src.models.functional", "class_name": "Functional",
    "registered_name": "Functional", "build_config": {"input_shape": None},
    "config": {
        "name": "functional", "trainable": True,
        "layers": [
            _input("input_layer", [None, 4]),
            _dense("dense_1", 4, [None, 4], [["input_layer", 0, 0]]),
            # the shared layer: its second call reads dense_1 (listed before) and its first
            # the input
            _dense("shared", 3, [None, 4], [["input_layer", 0, 0], ["dense_1", 0, 0]]),
            {"module": "keras.layers", "class_name": "Add",
             "config": {"name": "add", "trainable": True, "dtype": "float32"},
             "registered_name": None, "build_config": {"input_shape": [[None, 3], [None, 3]]},
             "name": "add",
             "inbound_nodes": [{"args": [[_kt([None, 3], ["shared", 0, 0]),
                                          _kt([None, 3], ["shared", 1, 0])]],
                                "kwargs": {}}]},
            {"module": "keras", "class_name": "Sequential",
             "config": {"name": "seq", "trainable": True, "dtype": "float32",
                        "layers": [_input("input_layer_1", [None, 3]),
                                   {k: v for k, v in _dense("dense_2", 2, [None, 3], []).items()
                                    if k not in ("name", "inbound_nodes")}],
                        "build_input_shape": [None, 3]},
             "registered_name": None, "build_config": {"input_shape": [None, 3]},
             "name": "seq",
             "inbound_nodes": [{"args": [_kt([None, 3], ["add", 0, 0])], "kwargs": {}}]},
            {"module": "keras.src.models.functional", "class_name": "Functional",
             "config": {"name": "fn", "trainable": True,
                        "layers": [_input("input_layer_2", [None, 3]),
                                   _dense("dense_3", 2, [None, 3], [["input_layer_2", 0, 0]])],
                        "input_layers": ["input_layer_2", 0, 0],
                        "output_layers": ["dense_3", 0, 0]},
             "registered_name": "Functional", "build_config": {"input_shape": [None, 3]},
             "name": "fn",
             "inbound_nodes": [{"args": [_kt([None, 3], ["add", 0, 0])], "kwargs": {}}]},
        ],
        "input_layers": ["input_layer", 0, 0],
        "output_layers": [["seq", 0, 0], ["fn", 1, 0]],
    }}


def _keras_reference(x, w):
    """What the KERAS_CONFIG model computes, in numpy (w: weights by layer name)."""
    def dense(name, v):
        return v @ w[name][0] + w[name][1]
    y = dense("shared", x) + dense("shared", dense("dense_1", x))
    return [dense("dense_2", y), dense("dense_3", y)]


def _keras_weights(seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"dense_1": (4, 4), "shared": (4, 3), "dense_2": (3, 2), "dense_3": (3, 2)}
    return {n: (rng.normal(size=s).astype(np.float32),
                rng.normal(size=s[1]).astype(np.float32)) for n, s in shapes.items()}


def test_keras_written_config_loads():
    model = model_from_json(json.dumps(KERAS_CONFIG))
    assert [l.name for l in model.layers] == ["input_layer", "dense_1", "shared", "add",
                                              "seq", "fn"]
    assert [l.name for l in saving.weight_layers(model)] == ["dense_1", "shared", "add",
                                                             "dense_2", "dense_3"]
    w = _keras_weights()
    for layer in saving.weight_layers(model):
        if layer.weights:
            layer.set_weights(w[layer.name])
    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    for got, want in zip(_predict(model._core, [x]), _keras_reference(x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_keras_written_config_in_a_file_loads_in_cpp(tmp_path):
    """The C++ loader reads Keras's layout directly (weights named by the weight rule)."""
    w = _keras_weights()
    tensors = {}
    for i, name in enumerate(["dense_1", "shared", "add", "dense_2", "dense_3"]):
        if name in w:
            tensors[f"layers.{i}.kernel"], tensors[f"layers.{i}.bias"] = w[name]
    path = tmp_path / "keras_layout.keras"
    saving.write_safetensors(path, {"format": "shenjing", "format_version": "1",
                                    "kind": "model", "model_config": json.dumps(KERAS_CONFIG)},
                             tensors)
    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    want = _keras_reference(x, w)
    for core in (shenjing._core.Model.load(str(path)), load_model(path)._core):
        assert [core.layer_name(i) for i in range(core.num_layers)] == \
            ["dense_1", "shared", "add", "dense_2", "dense_3"]
        for got, ref in zip(_predict(core, [x]), want):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


# -- summary ---------------------------------------------------------------------------------
RESNET_SUMMARY = """\
Model: "resnet_block"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ img (InputLayer)    │ (None, 8, 8, 3)   │          0 │ -                 │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ conv_a (Conv2D)     │ (None, 8, 8, 4)   │        112 │ img[0][0]         │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ conv_b (Conv2D)     │ (None, 8, 8, 4)   │        148 │ conv_a[0][0]      │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ bn                  │ (None, 8, 8, 4)   │         16 │ conv_b[0][0]      │
│ (BatchNormalizatio… │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ add (Add)           │ (None, 8, 8, 4)   │          0 │ conv_a[0][0],     │
│                     │                   │            │ bn[0][0]          │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ gap                 │ (None, 4)         │          0 │ add[0][0]         │
│ (GlobalAveragePool… │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ head (Dense)        │ (None, 2)         │         10 │ gap[0][0]         │
└─────────────────────┴───────────────────┴────────────┴───────────────────┘
 Total params: 286 (1.12 KB)
 Trainable params: 278 (1.09 KB)
 Non-trainable params: 8 (32.00 B)"""

SIAMESE_SUMMARY = """\
Model: "siamese"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ left (InputLayer)   │ (None, 6)         │          0 │ -                 │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ right (InputLayer)  │ (None, 6)         │          0 │ -                 │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ enc (Dense)         │ (None, 4)         │         28 │ left[0][0],       │
│                     │                   │            │ right[0][0]       │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ diff (Subtract)     │ (None, 4)         │          0 │ enc[0][0],        │
│                     │                   │            │ enc[1][0]         │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ out (Dense)         │ (None, 1)         │          5 │ diff[0][0]        │
└─────────────────────┴───────────────────┴────────────┴───────────────────┘
 Total params: 33 (132.00 B)
 Trainable params: 33 (132.00 B)
 Non-trainable params: 0 (0.00 B)"""

CHAIN_SUMMARY = """\
Model: "chain"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ x (InputLayer)                  │ (None, 5)              │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ h (Dense)                       │ (None, 3)              │            18 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ d (Dense)                       │ (None, 2)              │             8 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 26 (104.00 B)
 Trainable params: 26 (104.00 B)
 Non-trainable params: 0 (0.00 B)"""


def _summary(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def test_summary_resnet_block():
    inp = shenjing.Input((8, 8, 3), name="img")
    x = layers.Conv2D(4, 3, padding="same", name="conv_a")(inp)
    y = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_b")(x)
    y = layers.BatchNormalization(name="bn")(y)
    z = layers.Add(name="add")([x, y])
    out = layers.Dense(2, name="head")(layers.GlobalAveragePooling2D(name="gap")(z))
    assert _summary(Model(inp, out, name="resnet_block")) == RESNET_SUMMARY


def test_summary_two_inputs_shared_layer():
    assert _summary(_make("siamese")) == SIAMESE_SUMMARY


def test_summary_of_a_chain_has_no_connected_to_column():
    x = shenjing.Input((5,), name="x")
    out = layers.Dense(2, name="d")(layers.Dense(3, name="h")(x))
    assert _summary(Model(x, out, name="chain")) == CHAIN_SUMMARY


NESTED_ROWS = """\
│ inner_seq           │ (None, 4)         │         59 │ na[0][0],         │
│ (Sequential)        │                   │            │ nb[0][0]          │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ sum (Add)           │ (None, 4)         │          0 │ inner_seq[0][0],  │
│                     │                   │            │ inner_seq[1][0]   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ inner_fn            │ (None, 3)         │         35 │ sum[0][0]         │
│ (Functional)        │                   │            │                   │"""


def test_summary_shows_a_nested_model_as_one_row_per_model():
    """A model used as a layer is one row (Keras's expand_nested=False), its calls listed."""
    text = _summary(_make("nested"))
    assert NESTED_ROWS in text
    assert " Total params: 104 (416.00 B)" in text


# -- files -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO)
def test_save_load_predicts_exactly(tmp_path, name):
    model = _make(name)
    xs = _xs(model)
    want = _predict(model._core, xs)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, Functional)
    assert loaded.get_config() == model.get_config()
    _same(_predict(loaded._core, xs), want)
    _same(loaded.get_weights(), model.get_weights())
    _same(_predict(shenjing._core.Model.load(str(path)), xs), want)
    # weights alone, into a fresh model of the same architecture
    fresh = _make(name, seed=9)
    model.save_weights(tmp_path / "w.weights.h5")
    fresh.load_weights(tmp_path / "w.weights.h5")
    _same(_predict(fresh._core, xs), want)


def test_weight_names_follow_model_layers():
    model = _make("nested")
    names = sorted(saving.weight_tensors(model))
    order = [l.name for l in saving.weight_layers(model)]
    # model.layers: na, nb, inner_seq (dense, dropout, dense), sum, inner_fn (fe, fd), side
    assert order[3] == "sum" and order[4:6] == ["fe", "fd"] and order[6] == "side"
    assert "layers.4.kernel" in names and "layers.6.bias" in names


def _resumable():
    """One input and output; core layer order differs from the weight order, and a Dropout
    and a BatchNormalization sit on the branches."""
    x = shenjing.Input((6,), name="x")
    d1 = layers.Dense(5, activation="relu", name="d1")(x)
    d2 = layers.BatchNormalization(name="bn")(layers.Dense(4, name="d2")(d1))
    d3 = layers.Dropout(0.3, name="drop")(layers.Dense(4, name="d3")(x))
    enc = Sequential([layers.Input((4,)), layers.Dense(4, activation="tanh")], name="enc")
    y = layers.Add(name="add")([enc(d3), enc(d2)])
    return Model(x, layers.Dense(3, activation="softmax", name="cls")(y), name="resumable")


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_resumed_training_equals_uninterrupted(tmp_path, opt):
    shenjing.utils.set_random_seed(5)
    model = _resumable()
    assert [l.name for l in model._core_layers] != \
        [l.name for l in saving.weight_layers(model)]
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "ckpt.keras"
    model.save(path)
    shenjing.utils.set_random_seed(123)
    resumed = load_model(path)
    assert resumed.optimizer.iterations == model.optimizer.iterations == 10
    h1 = model.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0).history
    h2 = resumed.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0).history
    assert h1 == h2
    _same(model.get_weights(), resumed.get_weights())


# -- hostile functional configs --------------------------------------------------------------
@pytest.fixture(scope="module")
def siamese_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "m.keras"
    _make("siamese").save(path)
    return path.read_bytes()


def _with_config(raw, edit):
    n = struct.unpack("<Q", raw[:8])[0]
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    spec = json.loads(header["__metadata__"]["model_config"])
    edit(spec["config"])
    header["__metadata__"]["model_config"] = json.dumps(spec)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data, spec


def _layer(cfg, name):
    return next(l for l in cfg["layers"] if l["name"] == name)


def _history(cfg, name, call=0, arg=None):
    args = _layer(cfg, name)["inbound_nodes"][call]["args"][0]
    return (args if arg is None else args[arg])["config"]["keras_history"]


def _set(seq, i, v):
    seq[i] = v


HOSTILE = {
    "cycle": (lambda c: _history(c, "enc", 0).__setitem__(0, "out"), "loops"),
    "self_loop": (lambda c: _history(c, "enc", 1).__setitem__(slice(None), ["enc", 1, 0]),
                  "loops"),
    "unknown_layer": (lambda c: _history(c, "diff", 0, 1).__setitem__(0, "nope"), "nope"),
    "node_index_out_of_range": (lambda c: _history(c, "diff", 0, 1).__setitem__(1, 7),
                                "loops|resolved"),
    "huge_node_index": (lambda c: _history(c, "diff", 0, 1).__setitem__(1, 10 ** 12),
                        "node index|loops"),
    "tensor_index": (lambda c: _history(c, "out", 0).__setitem__(2, 1), "tensor index"),
    "bad_history": (lambda c: _history(c, "out", 0).__setitem__(slice(None), ["diff"]),
                    "keras_history|tensor reference"),
    "two_args": (lambda c: _layer(c, "out")["inbound_nodes"][0]["args"].append(1),
                 "one argument"),
    "kwargs": (lambda c: _layer(c, "out")["inbound_nodes"][0].__setitem__(
        "kwargs", {"training": True}), "besides the inputs"),
    "never_called": (lambda c: _layer(c, "out").__setitem__("inbound_nodes", []),
                     "never called"),
    "duplicate_name": (lambda c: _layer(c, "diff").__setitem__("name", "enc"), "unique"),
    "input_not_listed": (lambda c: c.__setitem__("input_layers", [["left", 0, 0]]),
                         "input_layers|inputs"),
    "output_no_such_call": (lambda c: c.__setitem__("output_layers", ["out", 3, 0]),
                            "no call"),
    "output_unknown": (lambda c: c.__setitem__("output_layers", ["ghost", 0, 0]), "ghost"),
    "output_not_a_ref": (lambda c: c.__setitem__("output_layers", 5), "output_layers"),
    "input_is_not_input": (lambda c: c.__setitem__("input_layers", [["left", 0, 0],
                                                                     ["enc", 0, 0]]),
                           "InputLayer"),
    "too_many_calls": (lambda c: _layer(c, "out").__setitem__(
        "inbound_nodes", _layer(c, "out")["inbound_nodes"] * 70000), "calls"),
    "no_layers": (lambda c: c.pop("layers"), "layers"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_functional_configs(tmp_path, siamese_bytes, case):
    edit, pattern = HOSTILE[case]
    raw, spec = _with_config(siamese_bytes, edit)
    path = tmp_path / "bad.keras"
    path.write_bytes(raw)
    for loader in (load_model, lambda p: shenjing._core.Model.load(str(p))):
        with pytest.raises(ValueError, match=pattern) as e:
            loader(path)
        assert "bad.keras" in str(e.value)
    with pytest.raises(ValueError, match=pattern):
        model_from_json(json.dumps(spec))


def test_nesting_too_deep_is_refused(tmp_path):
    x = shenjing.Input((2,))
    model = Model(x, layers.Dense(2)(x))
    for _ in range(17):
        i = shenjing.Input((2,))
        model = Model(i, model(i))
    path = tmp_path / "deep.keras"
    model.save(path)
    for loader in (load_model, lambda p: shenjing._core.Model.load(str(p)),
                   lambda p: model_from_json(model.to_json())):
        with pytest.raises(ValueError, match="nested|deep"):
            loader(path)


def test_a_config_written_by_keras_3_15_loads_and_runs(tmp_path):
    """tests/fixtures/keras315_functional.json is Keras 3.15.1's ``model.to_json()`` (torch
    backend) of a 2-input/2-output graph: a residual block with BatchNormalization,
    Conv2DTranspose, bilinear UpSampling2D, a shared Dense, Dot(normalize=True). Keras writes
    options shenjing does not implement at their neutral values (renorm=False,
    quantization_config=None, ...): they must load."""
    import os
    path = os.path.join(os.path.dirname(__file__), "fixtures", "keras315_functional.json")
    with open(path) as f:
        text = f.read()
    model = shenjing.models.model_from_json(text)
    assert model.input_names == ["img", "aux"]
    assert model.output_names == ["cls", "dot"]
    # Keras's weight order (model.weights): 16 arrays with these shapes.
    assert [w.shape for w in model.get_weights()] == [
        (3, 3, 4, 4), (4,), (3, 3, 4, 4), (4,), (4,), (4,), (4,), (4,), (3, 3, 2, 4), (2,),
        (5, 6), (6,), (6, 3), (3,), (6, 2), (2,)]
    # The weights and inputs Keras was run with (uniform(-0.5, 0.5) per weight, drawn
    # in model.weights order, moving_variance + 1), and what Keras 3.15.1 predicted for them.
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.weights]
    for i in (7, ):  # batch_normalization's moving_variance
        weights[i] += 1.0
    model.set_weights(weights)
    xs = [rng.normal(size=(3, 8, 8, 4)).astype(np.float32),
          rng.normal(size=(3, 5)).astype(np.float32)]
    out = model.predict(xs, verbose=0)
    keras_out = [[[0.33065155148506165, 0.669348418712616],
                  [0.3274041712284088, 0.6725958585739136],
                  [0.30760249495506287, 0.6923975348472595]],
                 [[0.06750264763832092], [0.3969103693962097], [0.2500993013381958]]]
    for got, want in zip(out, keras_out):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "k.keras")
    core = shenjing._core.Model.load(str(tmp_path / "k.keras"))
    again = [np.empty_like(o) for o in out]
    core.predict(xs, again, 0, 3)
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a, b)
    bad = text.replace('"renorm": false', '"renorm": true')
    with pytest.raises(ValueError, match="renorm=True.*not supported"):
        shenjing.models.model_from_json(bad)


def test_initializer_configs_are_keras_s():
    # Keras's Zeros/Ones take no argument: a config with "seed" makes keras.models
    # .model_from_json fail on shenjing's JSON ("Zeros() takes no arguments").
    from shenjing import initializers
    assert initializers.Zeros().get_config() == {}
    assert initializers.Ones().get_config() == {}
    assert initializers.GlorotUniform(seed=3).get_config() == {"seed": 3}
    bn = layers.BatchNormalization().get_config()
    assert bn["beta_initializer"]["config"] == {} and bn["gamma_initializer"]["class_name"] == "Ones"
