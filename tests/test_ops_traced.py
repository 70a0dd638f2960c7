"""shenjing.ops traced into models: the same function run eagerly on arrays (NumPy) and traced
(C++ graph) gives the same values, and gradients through a composite of ops match PyTorch."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import layers, ops

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 3, 4)).astype(np.float32)
W = RNG.normal(size=(4, 6)).astype(np.float32)

CASES = {
    "arith": lambda x: (x * 2.0 - 1.0) / (ops.abs(x) + 1.0) + x ** 2,
    "unary": lambda x: ops.exp(-ops.square(x)) + ops.log1p(ops.abs(x)) + ops.sqrt(ops.abs(x)),
    "activations": lambda x: ops.relu(x) + ops.gelu(x) + ops.silu(x) + ops.softplus(x) +
    ops.sigmoid(x) + ops.tanh(x) + ops.elu(x) + ops.leaky_relu(x),
    "compare_where": lambda x: ops.where(x > 0.2, x, ops.zeros_like(x) - 1.0),
    "clip_min_max": lambda x: ops.clip(x, -0.5, 0.5) + ops.maximum(x, 0.1) - ops.minimum(x, 0.0),
    "sum_axes": lambda x: ops.sum(x, axis=-1) + ops.mean(x, axis=(1, 2))[:, None],
    "max_keepdims": lambda x: x - ops.max(x, axis=1, keepdims=True) + ops.min(x, axis=-1,
                                                                              keepdims=True),
    "batch_mean": lambda x: x - ops.mean(x, axis=0),
    "softmax": lambda x: ops.softmax(x, axis=-1) + ops.log_softmax(x, axis=1),
    "matmul_weight": lambda x: ops.matmul(x, W),
    "einsum": lambda x: ops.einsum("bij,jk->bik", x, W),
    "einsum_ellipsis": lambda x: ops.einsum("...ij,jk->...ik", x, W),
    "einsum_batched_pair": lambda x: ops.einsum("bij,bkj->bik", x, x * 0.5),
    "einsum_reduce": lambda x: ops.einsum("bij->bj", x) + ops.einsum("bij,j->bi", x, W[:, 0])[
        :, :1],
    "slicing": lambda x: x[:, 1:, ::2] * x[:, :2, 1:3],
    "index_and_newaxis": lambda x: x[:, 0] + x[:, None, 2, :][:, 0],
    "reshape_transpose": lambda x: ops.transpose(ops.reshape(x, (-1, 4, 3)), (0, 2, 1)),
    "concat_stack": lambda x: ops.concatenate([x, ops.square(x)], axis=-1) +
    ops.stack([x, x], axis=1)[:, 0, :, :1],
    "expand_squeeze": lambda x: ops.squeeze(ops.expand_dims(x, 1), 1),
    "normalize": lambda x: ops.normalize(x, axis=-1),
    "argmax_onehot": lambda x: ops.one_hot(ops.argmax(x, axis=-1), 4),
    "cast": lambda x: ops.cast(ops.cast(x * 3.0, "int32"), "float32"),
    "split": lambda x: ops.split(x, 2, axis=-1)[1],
    "crossentropy": lambda x: ops.categorical_crossentropy(ops.softmax(x), ops.softmax(2 * x)),
    "binary_ce": lambda x: ops.binary_crossentropy(ops.sigmoid(x), ops.sigmoid(x * 0.5),
                                                   from_logits=False),
    "var_std": lambda x: ops.var(x, axis=-1) + ops.std(x, axis=1)[:, :3],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_traced_matches_eager(name):
    fn = CASES[name]
    inp = keras.Input(X.shape[1:])
    model = keras.Model(inp, layers.Lambda(fn)(inp))
    want = np.asarray(fn(X), dtype=np.float32)
    got = model.predict(X, verbose=0)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_embedding_with_take_on_integer_input():
    class Embed(layers.Layer):
        def build(self, input_shape):
            self.table = self.add_weight(shape=(10, 3), initializer="random_normal")

        def call(self, ids):
            return ops.take(self.table, ids, axis=0)

    inp = keras.Input((4,), dtype="int32")
    emb = Embed()
    model = keras.Model(inp, emb(inp))
    ids = RNG.integers(0, 10, size=(6, 4)).astype(np.int32)
    np.testing.assert_allclose(model.predict(ids, verbose=0), emb.table.numpy()[ids])


def test_gradients_of_a_composite_match_torch():
    torch = pytest.importorskip("torch")

    class Block(layers.Layer):
        def build(self, input_shape):
            d = input_shape[-1]
            self.w = self.add_weight(shape=(d, 5), initializer="glorot_uniform")
            self.b = self.add_weight(shape=(5,), initializer="random_normal")
            self.g = self.add_weight(shape=(5,), initializer="ones")

        def call(self, x):
            h = ops.tanh(ops.matmul(x, self.w) + self.b)
            h = h * ops.sigmoid(self.g) - ops.mean(h, axis=-1, keepdims=True)
            return ops.softmax(h * 2.0, axis=-1)

    x = RNG.normal(size=(8, 4)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[RNG.integers(0, 5, 8)]
    inp = keras.Input((4,))
    block = Block()
    model = keras.Model(inp, block(inp))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="categorical_crossentropy")
    before = [v.numpy() for v in block.weights]
    tw = [torch.tensor(v, requires_grad=True) for v in before]
    h = torch.tanh(torch.tensor(x) @ tw[0] + tw[1])
    h = h * torch.sigmoid(tw[2]) - h.mean(-1, keepdim=True)
    p = torch.softmax(h * 2.0, -1)
    loss = -(torch.tensor(y) * torch.log(p.clamp(1e-7, 1 - 1e-7))).sum(-1).mean()
    loss.backward()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for v, b, t in zip(block.weights, before, tw):
        np.testing.assert_allclose(b - v.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_custom_metric_function_is_logged_as_its_mean():
    def mean_pred(y_true, y_pred):
        return ops.mean(y_pred, axis=-1)

    x = RNG.normal(size=(32, 3)).astype(np.float32)
    y = RNG.normal(size=(32, 2)).astype(np.float32)
    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Dense(2)(inp))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", mean_pred])
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(logs["mean_pred"], p.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logs["mae"], np.abs(p - y).mean(), rtol=1e-5)
    hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert set(hist.history) == {"loss", "mae", "mean_pred"}


def test_stateful_metric_that_adds_nothing_runs_in_python_and_says_so():
    class Counter(keras.metrics.Metric):
        def update_state(self, y_true, y_pred, sample_weight=None):
            pass

        def result(self):
            return 0.0

    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Dense(2)(inp))
    model.compile(optimizer="sgd", loss="mse", metrics=[Counter(name="c")])
    with pytest.warns(UserWarning, match="added nothing to its variables"):
        hist = model.fit(np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32), verbose=0)
    assert hist.history["c"] == [0.0]


def test_op_misuse_names_the_op_shapes_and_layer():
    class Bad(layers.Layer):
        def call(self, x):
            return ops.matmul(x, ops.ones((5, 2)))

    with pytest.raises(ValueError, match=r"(?s)matmul.*layer 'bad'.*\(None, 3\)"):
        Bad()(keras.Input((3,)))


def test_pool_ops_eager_and_traced_match_numpy():
    x = RNG.random((2, 4, 6, 3)).astype(np.float32)
    blocks = x.reshape(2, 2, 2, 3, 2, 3)
    np.testing.assert_allclose(ops.max_pool(x, 2), blocks.max(axis=(2, 4)), rtol=1e-6)
    inp = keras.Input((4, 6, 3))
    model = keras.Model(inp, ops.average_pool(inp, (2, 2)))
    np.testing.assert_allclose(model.predict(x, verbose=0), blocks.mean(axis=(2, 4)), rtol=1e-6)
    with pytest.raises(ValueError, match="channels_last"):
        ops.max_pool(x, 2, data_format="channels_first")


def test_conv_with_a_variable_kernel_matches_torch():
    torch = pytest.importorskip("torch")

    class MyConv(layers.Layer):
        def build(self, input_shape):
            self.k = self.add_weight(shape=(3, 3, input_shape[-1], 4))

        def call(self, x):
            return ops.conv(x, self.k, strides=1, padding="same")

    x = RNG.normal(size=(2, 6, 5, 3)).astype(np.float32)
    inp = keras.Input((6, 5, 3))
    layer = MyConv()
    model = keras.Model(inp, ops.sum(layer(inp), axis=-1))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    k0 = layer.k.numpy()
    tk = torch.tensor(k0, requires_grad=True)
    ty = torch.nn.functional.conv2d(torch.tensor(x).permute(0, 3, 1, 2),
                                    tk.permute(3, 2, 0, 1), padding="same").sum(1)
    np.testing.assert_allclose(model.predict(x, verbose=0), ty.detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(ops.conv(x, k0, padding="same").sum(-1), ty.detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    y = np.zeros((2, 6, 5), np.float32)
    ((ty - torch.tensor(y)) ** 2).mean().backward()
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    np.testing.assert_allclose(k0 - layer.k.numpy(), tk.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_float_ops_on_integer_arrays_compute_in_float():
    a = np.array([1, 2, 4], np.int32)
    np.testing.assert_allclose(ops.reciprocal(a), [1.0, 0.5, 0.25])
    assert ops.reciprocal(a).dtype == np.float32 and ops.sqrt(a).dtype == np.float32
    assert ops.add(a, 1).dtype == np.int32 and ops.multiply(a, 0.5).dtype == np.float32
