"""ONNX export of functional models: onnxruntime runs the exported graph and must give what the
model gives (within 1e-5) for several inputs and outputs, fan-out, shared layers, nested models,
merge and decoder layers; inputs and outputs are named after the model's ``input_names`` and
``output_names``, the file passes ``onnx.checker`` and a shared layer's weights are stored once."""
import numpy as np
import pytest

import shenjing
from shenjing import layers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = 1e-5


def _randomize(model, rng=None):
    """Random weights in every layer (nested models too): nonzero biases, BatchNormalization
    statistics away from (0, 1), kernels scaled by their fan-in."""
    rng = rng or np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, shenjing.Model):
            _randomize(layer, rng)
            continue
        weights = [rng.normal(0, 1 / np.sqrt(np.prod(w.shape[:-1])) if w.ndim > 1 else 0.5,
                              w.shape).astype(np.float32) for w in layer.get_weights()]
        if isinstance(layer, layers.BatchNormalization):  # Keras order: moving_variance last
            weights[-1] = rng.uniform(0.2, 2.0, weights[-1].shape).astype(np.float32)
        if weights:
            layer.set_weights(weights)
    return model


def _inputs(model, n=5, seed=1):
    rng = np.random.default_rng(seed)
    return [(1.5 * rng.normal(size=(n, *t.shape[1:]))).astype(np.float32) for t in model.inputs]


def _expected(model, xs):
    """The model's outputs on the input arrays ``xs``, one array per output. ``model.predict``
    takes one input and gives one output for now; for more, the core call it makes."""
    if len(model.inputs) == 1 and len(model.outputs) == 1:
        return [model.predict(xs[0], verbose=0)]
    outs = [np.empty((len(xs[0]), *t.shape[1:]), np.float32) for t in model.outputs]
    model._core.predict(xs, outs, 0, len(xs[0]))
    return outs


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _export_and_compare(model, path, xs=None):
    """Exports ``model``, checks the file and the graph's inputs/outputs (names, float32,
    (batch, *shape)), runs it and compares every output; returns the loaded proto."""
    assert model.export_onnx(str(path)) == str(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    graph = proto.graph
    for values, tensors, names in ((graph.input, model.inputs, model.input_names),
                                   (graph.output, model.outputs, model.output_names)):
        assert [v.name for v in values] == names
        for v, t in zip(values, tensors):
            assert v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            assert _dims(v) == ["batch", *t.shape[1:]]
    xs = _inputs(model) if xs is None else xs
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, dict(zip(model.input_names, xs)))
    want = _expected(model, xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=TOL, atol=TOL)
    return proto


def _initializer_sizes(proto):
    return {i.name: int(np.prod(i.dims)) for i in proto.graph.initializer}


def test_two_inputs_two_outputs_with_fan_out(tmp_path):
    features = shenjing.Input((6,), name="features")
    extra = shenjing.Input((4,), name="extra")
    h = layers.Dense(8, activation="relu", name="trunk")(features)  # read by two layers
    joined = layers.Concatenate(name="joined")([h, extra])
    probs = layers.Dense(3, activation="softmax", name="probs")(joined)
    total = layers.Add(name="total")([layers.Dense(4, name="proj")(h), extra])
    model = _randomize(shenjing.Model([features, extra], [probs, total]))
    assert model.input_names == ["features", "extra"]
    assert model.output_names == ["probs", "total"]
    proto = _export_and_compare(model, tmp_path / "branch.onnx")
    readers = [n.op_type for n in proto.graph.node if "trunk" in n.input]  # trunk's Relu
    assert sorted(readers) == ["Concat", "MatMul"]  # one value, read by joined and proj


def test_siamese_shared_layer_stores_its_weights_once(tmp_path):
    left, right = shenjing.Input((5,), name="left"), shenjing.Input((5,), name="right")
    shared = layers.Dense(4, activation="tanh", name="shared")
    distance = layers.Subtract(name="distance")([shared(left), shared(right)])
    score = layers.Dense(1, activation="sigmoid", name="score")(distance)
    model = _randomize(shenjing.Model([left, right], score))
    proto = _export_and_compare(model, tmp_path / "siamese.onnx")
    sizes = _initializer_sizes(proto)
    assert sorted(n for n in sizes if n.startswith("shared")) == ["shared/bias", "shared/kernel"]
    assert sum(sizes.values()) == model.count_params()  # no weight stored twice
    matmuls = [n.input[1] for n in proto.graph.node if n.op_type == "MatMul"]
    assert sorted(matmuls) == ["score/kernel", "shared/kernel", "shared/kernel"]


def test_resnet_block(tmp_path):
    x = shenjing.Input((8, 8, 3), name="image")
    y = layers.Conv2D(8, 3, padding="same")(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(8, 3, padding="same")(y)
    y = layers.BatchNormalization(epsilon=0.01)(y)
    shortcut = layers.Conv2D(8, 1, name="shortcut")(x)  # the input read twice
    y = layers.Activation("relu")(layers.Add()([y, shortcut]))
    y = layers.GlobalAveragePooling2D()(y)
    out = layers.Dense(3, activation="softmax", name="classes")(y)
    model = _randomize(shenjing.Model(x, out))
    _export_and_compare(model, tmp_path / "resnet.onnx", _inputs(model, n=7))


def test_conv_autoencoder(tmp_path):
    x = shenjing.Input((8, 8, 1), name="image")
    y = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = layers.MaxPooling2D()(y)  # 4x4
    y = layers.Conv2D(6, 3, padding="same", activation="relu")(y)
    y = layers.Conv2DTranspose(6, 3, strides=2, activation="relu")(y)  # 'valid': 9x9
    y = layers.Cropping2D(((1, 0), (0, 1)))(y)  # 8x8
    y = layers.UpSampling2D()(y)  # 16x16
    out = layers.Conv2D(1, 3, strides=2, padding="same", activation="sigmoid",
                        name="reconstruction")(y)
    model = _randomize(shenjing.Model(x, out))
    assert model.output_shape == (None, 8, 8, 1)
    # Also through Keras 3's model.export.
    assert model.export(str(tmp_path / "ae.onnx"), format="onnx") == str(tmp_path / "ae.onnx")
    _export_and_compare(model, tmp_path / "ae.onnx")


def _inner_sequential():
    return shenjing.Sequential([shenjing.Input((6,)), layers.Dense(5, activation="relu"),
                                layers.Dense(4, activation="elu")], name="inner")


def _inner_functional():
    i = shenjing.Input((6,))
    h = layers.Dense(5, activation="relu")(i)
    return shenjing.Model(i, layers.Maximum()([layers.Dense(4)(h), layers.Dense(4)(i)]),
                          name="inner")


@pytest.mark.parametrize("make_inner", [_inner_sequential, _inner_functional],
                         ids=["sequential", "functional"])
def test_nested_model_called_twice(tmp_path, make_inner):
    inner = make_inner()
    x = shenjing.Input((6,), name="x")
    a = inner(x)
    b = inner(layers.Dense(6, activation="tanh", name="pre")(x))  # same weights again
    out = layers.Dense(3, name="head")(layers.Concatenate()([a, b]))
    model = _randomize(shenjing.Model(x, out))
    proto = _export_and_compare(model, tmp_path / "nested.onnx")
    assert sum(_initializer_sizes(proto).values()) == model.count_params()


def test_nested_model_with_two_inputs(tmp_path):
    p, q = shenjing.Input((4,)), shenjing.Input((3,))
    inner = shenjing.Model([p, q], layers.Subtract()([layers.Dense(3)(p), q]), name="inner")
    x, y = shenjing.Input((3,), name="x"), shenjing.Input((4,), name="y")
    model = _randomize(shenjing.Model([x, y], inner([y, x])))  # inner's inputs in its order
    _export_and_compare(model, tmp_path / "nested2.onnx")


def test_dict_inputs_and_outputs(tmp_path):
    inputs = {"tokens": shenjing.Input((7,)), "meta": shenjing.Input((2,))}
    h = layers.Dense(6, activation="relu")(layers.Concatenate()(list(inputs.values())))
    outputs = {"score": layers.Dense(1)(h), "probs": layers.Dense(3, activation="softmax")(h)}
    model = _randomize(shenjing.Model(inputs, outputs))
    assert model.input_names == ["tokens", "meta"]
    assert model.output_names == ["score", "probs"]
    _export_and_compare(model, tmp_path / "dict.onnx")


def test_output_names_made_unique_and_outputs_read_further(tmp_path):
    # A shared layer makes two outputs named after it, one output is listed twice and one is
    # also read by another layer: every output still gets a name and its own value.
    a, b = shenjing.Input((3,), name="a"), shenjing.Input((3,), name="b")
    shared = layers.Dense(4, name="shared")
    ea, eb = shared(a), shared(b)
    model = _randomize(shenjing.Model([a, b], [ea, eb, ea, layers.Dense(2, name="d")(ea)]))
    assert model.output_names == ["shared", "shared", "shared", "d"]
    path = tmp_path / "names.onnx"
    model.export_onnx(str(path))
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["shared", "shared_1", "shared_2", "d"]
    xs = _inputs(model)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"a": xs[0], "b": xs[1]})
    for g, w in zip(got, _expected(model, xs)):
        np.testing.assert_allclose(g, w, rtol=TOL, atol=TOL)


class _Custom(layers.Layer):
    """A layer the exporter does not know (it runs as a Flatten in the core)."""

    def _core_class_name(self):
        return "Flatten"


def test_unknown_layer_in_a_nested_model_names_it_and_writes_nothing(tmp_path):
    inner_in = shenjing.Input((3,))
    inner = shenjing.Model(inner_in, _Custom(name="mystery")(layers.Dense(2)(inner_in)))
    x = shenjing.Input((3,))
    model = shenjing.Model(x, layers.Add()([inner(x), layers.Dense(2)(x)]))
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="'mystery'"):
        model.export_onnx(str(path))
    assert list(tmp_path.iterdir()) == []


def test_a_layer_whose_shapes_differ_from_its_call_is_refused(tmp_path):
    # The converters read a call's shapes from the layer; the exporter checks they agree.
    x = shenjing.Input((4, 3))
    pool = layers.MaxPooling1D(name="pool")
    model = shenjing.Model(x, pool(x))
    pool.input_shape = (None, 6, 3)
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="'pool' was built for input shape"):
        model.export_onnx(str(path))
    assert not path.exists()
