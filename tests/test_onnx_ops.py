"""ONNX export of traced graphs: custom layers, Lambda layers, subclassed models and ops called
at model level. onnxruntime runs the exported graph and must give what ``predict`` gives."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import layers, ops
from shenjing.ops.einsum import einsum

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = 1e-5


def _run(model, xs, path):
    """(onnxruntime's outputs, predict's outputs) as lists, for inputs xs (a list)."""
    model.export_onnx(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: np.asarray(x, np.float32) for i, x in zip(sess.get_inputs(), xs)}
    got = sess.run(None, feed)
    want = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    return got, want


def _check(model, xs, path, tol=TOL):
    got, want = _run(model, xs, path)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def _x(*shape, seed=0, scale=1.5):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


class Linear(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class Block(layers.Layer):
    """A nested custom block: custom sub-layers, a built-in one, ops, a shared Linear and an
    add_loss term (not exported)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.l1, self.l2 = Linear(8), Linear(8)
        self.dense = layers.Dense(8, activation="tanh")

    def call(self, x):
        h = ops.gelu(self.l1(x))
        h = self.dense(h) + ops.sigmoid(self.l2(h))
        self.add_loss(0.01 * ops.mean(ops.square(h)))
        return ops.silu(self.l2(h)) - h


class ConvLayer(layers.Layer):
    def __init__(self, filters, padding, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.padding, self.strides = filters, padding, strides

    def build(self, input_shape):
        k = (3, 3) if len(input_shape) == 4 else (3,)
        self.kernel = self.add_weight(shape=(*k, input_shape[-1], self.filters),
                                      initializer="glorot_uniform")

    def call(self, x):
        return ops.relu(ops.conv(x, self.kernel, strides=self.strides, padding=self.padding))


class Embed(layers.Layer):
    def __init__(self, vocab, dim, **kwargs):
        super().__init__(**kwargs)
        self.table = self.add_weight(shape=(vocab, dim), initializer="random_normal")

    def call(self, ids):
        return ops.take(self.table, ids, axis=0)


class EinsumDense(layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 5), initializer="random_normal")

    def call(self, x):
        return einsum("btd,de->bte", x, self.w)


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(6, activation="relu")
        self.lin = Linear(3)

    def call(self, x):
        return ops.softmax(self.lin(self.dense(x)) * 0.5)


def test_custom_linear_mlp(tmp_path):
    inp = keras.Input((7,))
    out = Linear(2)(ops.relu(Linear(16)(inp)))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    model.fit(_x(32, 7), _x(32, 2), epochs=2, verbose=0)  # the trained values are exported
    _check(model, [_x(5, 7)], tmp_path / "m.onnx")


def test_nested_custom_block_stores_each_variable_once(tmp_path):
    inp = keras.Input((6,))
    model = keras.Model(inp, layers.Dense(2)(Block()(inp)))
    _check(model, [_x(4, 6)], tmp_path / "m.onnx")
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    names = [i.name for i in graph.initializer]
    assert len(names) == len(set(names))
    # l1 (w, b), l2 (w, b): four Variables (l2 is called twice), named by their paths.
    assert len([n for n in names if "/variable" in n]) == 4
    assert len([i for i in graph.initializer if tuple(i.dims) == (8, 8)]) == 2  # l2.w, dense


def test_model_level_ops(tmp_path):
    inp = keras.Input((5, 4))
    a = ops.relu(inp * 2.0)[:, 1:]
    b = ops.sum(inp, axis=1, keepdims=True)
    c = ops.mean(inp, axis=(1, 2))
    d = ops.max(inp, axis=-1, keepdims=True)
    e = ops.softmax(inp, axis=1)
    f = ops.concatenate([a, inp[:, :2] - 1.0], axis=1)
    g = ops.logsumexp(inp, axis=2)
    h = ops.sum(inp, axis=0)  # over the batch: unbatched output
    k = ops.log_softmax(ops.transpose(inp, (0, 2, 1)))
    m = ops.reshape(ops.argmax(inp, axis=-1), (-1, 5, 1))
    model = keras.Model(inp, [a, b, c, d, e, f, g, k, m])
    _check(model, [_x(3, 5, 4)], tmp_path / "m.onnx")
    assert h.shape == (5, 4)


def test_unary_and_binary_ops(tmp_path):
    inp = keras.Input((12,))
    x = inp
    pos = ops.abs(x) + 0.1
    outs = [ops.negative(x), ops.sign(x), ops.square(x), ops.sqrt(pos), ops.rsqrt(pos),
            ops.exp(x), ops.log(pos), ops.log1p(pos), ops.expm1(x), ops.reciprocal(pos),
            ops.sin(x), ops.cos(x), ops.tanh(x), ops.sigmoid(x), ops.relu6(x * 4),
            ops.softplus(x), ops.softsign(x), ops.silu(x), ops.selu(x), ops.elu(x, 0.5),
            ops.leaky_relu(x, 0.1), ops.gelu(x), ops.gelu(x, approximate=False),
            ops.hard_sigmoid(x * 3), ops.floor(x * 2), ops.ceil(x * 2), ops.round(x * 2),
            ops.logical_not(ops.round(x)), ops.stop_gradient(x), ops.clip(x, -0.5, 0.7),
            ops.isnan(x), ops.isinf(x), ops.isfinite(x)]
    y = ops.flip(x, axis=1) if hasattr(ops, "flip") else x * -0.7 + 0.3
    r, s = ops.round(x * 2), ops.round(y * 2)
    outs += [x + y, x - y, x * y, x / (ops.abs(y) + 0.5), ops.power(pos, y),
             ops.maximum(x, y), ops.minimum(x, y), ops.mod(x * 3, y), ops.floor_divide(x * 3, y),
             ops.equal(r, s), ops.not_equal(r, s), ops.greater(x, y), ops.greater_equal(r, s),
             ops.less(x, y), ops.less_equal(r, s), ops.logical_and(r, s), ops.logical_or(r, s),
             ops.logical_xor(r, s), ops.where(ops.greater(x, 0.0), x, y * 2)]
    _check(keras.Model(inp, outs), [_x(4, 12, seed=3)], tmp_path / "m.onnx")


def test_reductions_and_index_ops(tmp_path):
    inp = keras.Input((3, 4))
    x = inp
    outs = [ops.prod(x, axis=2), ops.min(x, axis=(1, 2), keepdims=True), x - ops.sum(x),
            x / ops.max(ops.abs(x), axis=0, keepdims=True),
            ops.argmin(x, axis=1, keepdims=True), ops.max(x, axis=1),
            ops.one_hot(ops.argmax(x, axis=-1), 4), ops.repeat(x, 2, axis=1),
            ops.broadcast_to(ops.expand_dims(x, 1), (None, 2, 3, 4)),
            ops.take(x, np.array([2, 0, -1, 7]), axis=2), x[:, ::2, 1:3],
            ops.matmul(x, ops.transpose(x, (0, 2, 1)))]
    _check(keras.Model(inp, outs), [_x(2, 3, 4, seed=5)], tmp_path / "m.onnx")


def test_einsum_layer(tmp_path):
    inp = keras.Input((4, 3))
    _check(keras.Model(inp, EinsumDense()(inp)), [_x(2, 4, 3)], tmp_path / "m.onnx")


def test_take_embedding_with_int_input(tmp_path):
    inp = keras.Input((6,), dtype="int32")
    h = Embed(10, 4)(inp)
    model = keras.Model(inp, ops.mean(h, axis=1))
    ids = np.random.default_rng(0).integers(-10, 12, size=(5, 6))  # wrapped and clipped
    got, want = _run(model, [ids.astype(np.float32)], tmp_path / "m.onnx")
    np.testing.assert_allclose(got[0], want[0], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("padding,strides", [("same", 1), ("valid", 2)])
def test_custom_conv_layer(tmp_path, padding, strides):
    inp = keras.Input((9, 8, 3))
    h = ConvLayer(4, padding, strides)(inp)
    model = keras.Model(inp, layers.Flatten()(h))
    _check(model, [_x(2, 9, 8, 3)], tmp_path / "m.onnx", tol=1e-4)


def test_custom_conv1d_layer(tmp_path):
    inp = keras.Input((10, 2))
    _check(keras.Model(inp, ConvLayer(3, "same")(inp)), [_x(2, 10, 2)], tmp_path / "m.onnx")


def test_lambda_layer(tmp_path):
    model = keras.Sequential([keras.Input((5,)), layers.Dense(4),
                              layers.Lambda(lambda t: ops.square(t) - ops.mean(t, axis=-1,
                                                                               keepdims=True))])
    _check(model, [_x(3, 5)], tmp_path / "m.onnx")


def test_subclassed_model(tmp_path):
    model = Subclassed()
    model.build((None, 4))
    _check(model, [_x(3, 4)], tmp_path / "m.onnx")


def test_unconvertible_op_is_named(tmp_path, monkeypatch):
    from shenjing import _onnx_ops
    inp = keras.Input((3,))
    model = keras.Model(inp, ops.exp(inp))
    monkeypatch.delitem(_onnx_ops._CONVERTERS, "exp")
    with pytest.raises(ValueError, match="op 'exp'"):
        model.export_onnx(str(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()


def test_custom_layer_with_several_outputs_exports(tmp_path):
    import os
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    from test_custom_layers import Encoder
    inp = keras.Input((5,))
    mean, log_var = Encoder()(inp)
    model = keras.Model(inp, [mean, ops.exp(log_var)])
    _check(model, [_x(4, 5)], tmp_path / "enc.onnx")
