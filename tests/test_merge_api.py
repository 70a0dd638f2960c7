"""Merge layers from the user's side: Keras's constructor arguments and get_config keys, bad
arguments, the configs the C++ core reads (the Python ones and hostile ones), and the ONNX
converters run in onnxruntime against the core."""
import inspect
import json

import numpy as np
import pytest

from shenjing import _core, _onnx, _onnx_layers, layers

MERGES = [layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum,
          layers.Minimum]


def run(config_layer, shapes, xs):
    spec = json.dumps({"class_name": type(config_layer).__name__,
                       "config": config_layer.get_config()})
    return _core._run_layer(spec, [list(s) for s in shapes], xs, None, False, None)[0]


def test_configs_have_keras_keys_and_round_trip():
    for cls in MERGES:
        layer = cls(name="m")
        assert layer.get_config() == {"name": "m", "trainable": True, "dtype": "float32"}
        assert cls.from_config(layer.get_config()).get_config() == layer.get_config()
    c = layers.Concatenate(axis=1, name="c")
    assert c.get_config() == {"name": "c", "trainable": True, "dtype": "float32", "axis": 1}
    assert layers.Concatenate().axis == -1
    d = layers.Dot((1, 2), normalize=True, name="d")
    assert d.get_config() == {"name": "d", "trainable": True, "dtype": "float32",
                              "axes": [1, 2], "normalize": True}
    assert layers.Dot.from_config(d.get_config()).get_config() == d.get_config()
    assert layers.Dot(-1).get_config()["axes"] == -1
    assert "axes" in inspect.signature(layers.Dot).parameters  # required, as in Keras
    assert inspect.signature(layers.Dot).parameters["axes"].default is inspect.Parameter.empty
    assert layers.add is not None and layers.Add().name.startswith("add")


def test_functional_helpers_take_keras_arguments():
    sig = {f.__name__: inspect.signature(f) for f in
           (layers.add, layers.subtract, layers.multiply, layers.average, layers.maximum,
            layers.minimum, layers.concatenate, layers.dot)}
    assert sig["concatenate"].parameters["axis"].default == -1
    assert sig["dot"].parameters["axes"].default == -1  # keras.layers.dot's default
    assert sig["dot"].parameters["normalize"].default is False
    for s in sig.values():
        assert list(s.parameters)[0] == "inputs"


@pytest.mark.parametrize("make,error,pattern", [
    (lambda: layers.Concatenate(axis="1"), TypeError, "axis must be an integer"),
    (lambda: layers.Concatenate(axis=1.0), TypeError, "axis must be an integer"),
    (lambda: layers.Concatenate(axis=True), TypeError, "axis must be an integer"),
    (lambda: layers.Concatenate(axis=0), ValueError, "batch axis"),
    (lambda: layers.Dot("1"), TypeError, "Invalid type for argument `axes`"),
    (lambda: layers.Dot([1]), ValueError, "should contain two elements"),
    (lambda: layers.Dot([1, 2, 3]), ValueError, "should contain two elements"),
    (lambda: layers.Dot([1, "2"]), ValueError, "list elements should be integers"),
    (lambda: layers.Dot(0), ValueError, "batch_dot over axis 0"),
    (lambda: layers.Dot((2, 0)), ValueError, "batch_dot over axis 0"),
    (lambda: layers.Dot(1, normalize="yes"), TypeError, "normalize must be True or False"),
    (lambda: layers.Add(axis=1), TypeError, "unexpected keyword argument"),
    (lambda: layers.Subtract(foo=1), TypeError, "unexpected keyword argument"),
])
def test_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_the_core_reads_the_python_configs():
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(2, 3, 4)).astype(np.float32) for _ in range(2))
    np.testing.assert_array_equal(run(layers.Subtract(), [(3, 4)] * 2, [a, b]), a - b)
    np.testing.assert_array_equal(run(layers.Concatenate(axis=1), [(3, 4)] * 2, [a, b]),
                                  np.concatenate([a, b], 1))
    y = run(layers.Dot(axes=(2, 2)), [(3, 4)] * 2, [a, b])
    np.testing.assert_allclose(y, np.einsum("nik,njk->nij", a, b), rtol=1e-5)


@pytest.mark.parametrize("cls,config,pattern", [
    ("Concatenate", {"axis": "1"}, r"Layer 'bad' \(Concatenate\): 'axis' must be an integer"),
    ("Concatenate", {"axis": 1.5}, r"'axis' must be an integer"),
    ("Concatenate", {"axis": 1e300}, r"'axis' must be an integer in \[-9, 8\]"),
    ("Concatenate", {"axis": True}, r"'axis' must be an integer"),
    ("Concatenate", {"axis": 0}, r"Layer 'bad' \(Concatenate\): .*batch axis"),
    ("Dot", {}, r"Layer 'bad' \(Dot\): 'axes' must be an integer or a list of 2 integers, but "
                r"it is missing"),
    ("Dot", {"axes": None}, r"'axes' must be"),
    ("Dot", {"axes": [1]}, r"'axes' must be an integer or a list of 2"),
    ("Dot", {"axes": [1, 2, 3]}, r"'axes' must be"),
    ("Dot", {"axes": "1"}, r"'axes' must be"),
    ("Dot", {"axes": [1, [2]]}, r"'axes' must be"),
    ("Dot", {"axes": -100}, r"'axes' must be an integer in \[-9, 8\]"),
    ("Dot", {"axes": [0, 1]}, r"Layer 'bad' \(Dot\): .*batch_dot over axis 0"),
    ("Dot", {"axes": 1, "normalize": "yes"}, r"'normalize' must be true or false"),
    ("Dot", {"axes": 1, "normalize": 1}, r"'normalize' must be true or false"),
    ("Merge", {}, r"Unknown layer type 'Merge'.*Add, Subtract, Multiply, Average, Maximum, "
                  r"Minimum, Concatenate, Dot"),
])
def test_hostile_configs_give_value_errors(cls, config, pattern):
    spec = json.dumps({"class_name": cls, "config": {"name": "bad", **config}})
    xs = [np.zeros((1, 3), np.float32)] * 2
    with pytest.raises(ValueError, match=pattern):
        _core._run_layer(spec, [[3], [3]], xs, None, False, None)
    with pytest.raises(ValueError, match=pattern):  # the path models take
        _core.Model([3]).add_layer(spec)


def test_hostile_config_shapes_never_crash():
    # Every merge with many inputs, extreme ranks and sizes: errors or results, no crash.
    rng = np.random.default_rng(1)
    shape_sets = [[(1,) * 8, (2,) * 8], [(2,) * 8] * 3, [(1,)] * 64, [(7, 1, 3), (1, 5, 1)],
                  [(3,), ()], [(), ()]]
    specs = [{"class_name": c} for c in ("Add", "Subtract", "Multiply", "Average", "Maximum",
                                         "Minimum")]
    specs += [{"class_name": "Concatenate", "config": {"axis": a}} for a in (-9, -1, 1, 8)]
    specs += [{"class_name": "Dot", "config": {"axes": a}} for a in (1, -1, [8, 1], [-9, 1])]
    for shapes in shape_sets:
        xs = [rng.normal(size=(2, *s)).astype(np.float32) for s in shapes]
        for spec in specs:
            try:
                y, dxs, _ = _core._run_layer(json.dumps(spec), [list(s) for s in shapes], xs,
                                             None, True, None)
            except ValueError as e:
                assert "Layer '" in str(e) or "_run_layer" in str(e)
                continue
            assert np.all(np.isfinite(y))


# -- ONNX -------------------------------------------------------------------------------------
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def onnx_run(layer, shapes, xs, opset, out_shape=()):
    """The converter of `layer` alone in a graph of its own, run in onnxruntime."""
    h = onnx.helper
    layer.input_shape = [(None, *s) for s in shapes]  # as the graph exporter will set it
    g = _onnx._Graph(onnx, opset)
    names = [f"in{i}" for i in range(len(xs))]
    g._used.update(names)
    y = _onnx_layers._MERGE_CONVERTERS[type(layer)](g, layer, names)
    g.name_output(y)
    ins = [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["batch", *s])
           for n, s in zip(names, shapes)]
    out = h.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["batch", *out_shape])
    graph = h.make_graph(g.nodes, "merge", ins, [out], g.initializers)
    opsets = [h.make_opsetid("", opset)]
    proto = h.make_model(graph, opset_imports=opsets)
    proto.ir_version = h.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, xs)))[0]


ONNX_CASES = [(layers.Add(), [(2, 3, 4), (4,), (3, 1)]), (layers.Subtract(), [(3, 4), (4,)]),
              (layers.Multiply(), [(2, 1, 4), (3, 1), (1,)]), (layers.Average(), [(5,)] * 3),
              (layers.Maximum(), [(3, 4), (1, 4)]), (layers.Minimum(), [(4,), (2, 3, 4)]),
              (layers.Add(), [(6,)]),
              (layers.Concatenate(axis=1), [(2, 3), (1, 3), (4, 3)]),
              (layers.Concatenate(axis=-2), [(2, 2, 3), (2, 5, 3)]),
              (layers.Concatenate(), [(2, 1), (2, 4)]),
              (layers.Dot(1), [(5,), (5,)]), (layers.Dot(1, normalize=True), [(5,), (5,)]),
              (layers.Dot((2, 1)), [(3, 5), (5, 4)]), (layers.Dot(1), [(5, 3), (5, 4)]),
              (layers.Dot(-1, normalize=True), [(3, 5), (4, 5)]),
              (layers.Dot((1, 2), normalize=True), [(5, 3), (4, 5)]),
              (layers.Dot((2, 1)), [(2, 5, 3), (5,)])]


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("layer,shapes", ONNX_CASES)
def test_onnx_converters_match_the_core(layer, shapes, opset):
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(3, *s)).astype(np.float32) for s in shapes]
    if isinstance(layer, layers.Dot) and layer.normalize:
        xs[0][0] = 0  # a zero sample: Keras's epsilon clamp, not LpNormalization's NaN
    expect = run(layer, shapes, xs)
    got = onnx_run(layer, shapes, xs, opset, expect.shape[1:])
    assert got.shape == expect.shape
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)


def test_onnx_converters_refuse_what_they_cannot_write():
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        onnx_run(layers.Subtract(), [(3,)] * 3, [np.zeros((1, 3), np.float32)] * 3, 17)
    with pytest.raises(ValueError, match="does not fit"):
        onnx_run(layers.Dot(1), [(3,), (4,)], [np.zeros((1, 3), np.float32),
                                               np.zeros((1, 4), np.float32)], 17)
    layer = layers.Add()
    layer.input_shape = (None, 3)  # one tensor's shape, not a list of them
    with pytest.raises(ValueError, match="one input shape per input"):
        _onnx_layers._merge_add(_onnx._Graph(onnx, 17), layer, ["a", "b"])
