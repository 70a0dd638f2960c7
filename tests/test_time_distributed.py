"""TimeDistributed against PyTorch: outputs, input gradients and weight gradients (the input
reshaped to (n * T, ...) slices and the torch equivalent of the wrapped layer applied with the
same weights, through test_conv.py's probe harness), BatchNormalization's per-step statistics
(Keras 3 runs the wrapped layer once per step), and ONNX export in onnxruntime. The tests that
need neither are in test_time_distributed_api.py."""
import numpy as np
import pytest

import shenjing
from shenjing import layers

from test_conv import TORCH_ACT, _close, _parity, t_conv2d, t_pool2d

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _slices(fn, x, n, T):
    """fn on the (n * T, ...) slices of x (n, T, ...), reshaped back to (n, T, ...)."""
    y = fn(x.reshape(n * T, *x.shape[2:]))
    return y.reshape(n, T, *y.shape[1:])


def _seq(input_shape, *stack):
    return shenjing.Sequential([layers.Input(input_shape), *stack])


# -- PyTorch parity -------------------------------------------------------------------------------
@pytest.mark.parametrize("act,bias,n", [("linear", True, 2), ("tanh", False, 3),
                                        ("softmax", True, 1)])
def test_dense_matches_torch(act, bias, n):
    T, Fin, U = 4, 5, 3
    td = layers.TimeDistributed(layers.Dense(U, activation=act, use_bias=bias))

    def ref(x, p):
        def dense(s):
            z = s @ p(td, "kernel")
            return TORCH_ACT[act](z + p(td, "bias") if bias else z)
        return _slices(dense, x, n, T)

    model, x, out = _parity([td], (T, Fin), ref, n=n)
    assert model.output_shape == (None, T, U)
    _close(model.predict(x, verbose=0), out, "forward")


def test_softmax_with_categorical_crossentropy_matches_torch():
    """The loss fuses with the wrapped Dense's softmax (one row per time step)."""
    n, T, Fin, U = 3, 4, 5, 6
    rng = np.random.default_rng(2)
    td = layers.TimeDistributed(layers.Dense(U, activation="softmax"))
    model = _seq((T, Fin), td)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    td.set_weights([rng.normal(0, 0.5, w.shape) for w in td.weights])
    x = rng.normal(size=(n, T, Fin)).astype(np.float32)
    y = np.eye(U, dtype=np.float32)[rng.integers(0, U, size=(n, T))]
    w, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in td.get_weights())
    out = _slices(lambda s: torch.softmax(s @ w + b, -1), torch.tensor(x, dtype=torch.float64),
                  n, T)
    loss = -(torch.tensor(y, dtype=torch.float64) * torch.log(out)).sum(-1).mean()
    loss.backward()
    assert model._core.compute_gradients(x, y) == pytest.approx(loss.item(), rel=1e-5)
    _close(td._views[0][2], w.grad.numpy(), "kernel gradient")
    _close(td._views[1][2], b.grad.numpy(), "bias gradient")


@pytest.mark.parametrize("padding,strides,act", [("valid", 1, "relu"), ("same", 2, "tanh")])
def test_conv2d_on_frames_matches_torch(padding, strides, act):
    n, T, H, W, C, filters = 2, 3, 6, 5, 2, 4
    td = layers.TimeDistributed(layers.Conv2D(filters, 3, strides=strides, padding=padding,
                                              activation=act))

    def ref(x, p):
        conv = lambda s: TORCH_ACT[act](t_conv2d(s, p(td, "kernel"), p(td, "bias"),
                                                 (strides, strides), padding, (1, 1)))
        return _slices(conv, x, n, T)

    model, x, out = _parity([td], (T, H, W, C), ref, n=n)
    _close(model.predict(x, verbose=0), out, "forward")


def test_pool_flatten_dense_stack_matches_torch():
    n, T, H, W, C, U = 2, 3, 4, 6, 2, 5
    pool = layers.TimeDistributed(layers.MaxPooling2D((2, 2)))
    flat = layers.TimeDistributed(layers.Flatten())
    dense = layers.TimeDistributed(layers.Dense(U, activation="sigmoid"))

    def ref(x, p):
        y = _slices(lambda s: t_pool2d(s, "max", (2, 2), (2, 2), "valid"), x, n, T)
        y = _slices(lambda s: s.reshape(s.shape[0], -1), y, n, T)
        return torch.sigmoid(_slices(lambda s: s @ p(dense, "kernel") + p(dense, "bias"),
                                     y, n, T))

    model, x, out = _parity([pool, flat, dense], (T, H, W, C), ref, n=n)
    assert [la.output_shape for la in (pool, flat, dense)] == [
        (None, T, 2, 3, C), (None, T, 6 * C), (None, T, U)]
    _close(model.predict(x, verbose=0), out, "forward")


def test_lstm_on_subsequences_matches_torch():
    """A recurrent layer needs nothing special: each slice is one sequence."""
    from test_recurrent import keras_rnn
    n, T, S, Fin, u = 2, 3, 4, 3, 5
    td = layers.TimeDistributed(layers.LSTM(u, return_sequences=True))

    def ref(x, p):
        return _slices(lambda s: keras_rnn("LSTM", s, p(td, "kernel"), p(td, "recurrent_kernel"),
                                           p(td, "bias"), u, return_sequences=True), x, n, T)

    model, x, out = _parity([td], (T, S, Fin), ref, n=n)
    _close(model.predict(x, verbose=0), out, "forward")


def test_batch_norm_uses_each_steps_statistics_as_keras():
    """Keras calls the wrapped BatchNormalization once per step: in training each step is
    normalized with its own batch statistics, and the moving statistics are updated once per
    step, in step order."""
    n, T, S, C, momentum, eps = 5, 3, 2, 4, 0.9, 1e-3
    td = layers.TimeDistributed(layers.BatchNormalization(momentum=momentum, epsilon=eps))

    def ref(x, p):
        steps = [F.batch_norm(x[:, t].transpose(1, 2), None, None, p(td, "gamma"),
                              p(td, "beta"), training=True, eps=eps).transpose(1, 2)
                 for t in range(T)]  # channels last -> (n, C, S) and back
        return torch.stack(steps, 1)

    rng = np.random.default_rng(3)
    x = (rng.normal(size=(n, T * S * C)) * 2 + np.repeat(np.arange(T), S * C)).astype(np.float32)
    model, x, _ = _parity([td], (T, S, C), ref, n=n, x=x)
    # compute_gradients ran one training step: one moving update per step.
    xs = x.astype(np.float64).reshape(n, T, S, C)
    mean, var = np.zeros(C), np.ones(C)
    for t in range(T):
        mean = mean * momentum + xs[:, t].mean(axis=(0, 1)) * (1 - momentum)
        var = var * momentum + xs[:, t].var(axis=(0, 1)) * (1 - momentum)
    _close(td.layer.moving_mean, mean, "moving_mean")
    _close(td.layer.moving_variance, var, "moving_variance")
    # Inference: the moving statistics, the same for every sample.
    want = (xs - mean) / np.sqrt(var + eps) * td.layer.gamma + td.layer.beta
    _close(model.predict(x, verbose=0), want, "inference")


# -- ONNX ----------------------------------------------------------------------------------------
def test_onnx_export_matches_predict(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _seq((3, 6, 6, 2),
                 layers.TimeDistributed(layers.Conv2D(4, 3, padding="same", activation="relu")),
                 layers.TimeDistributed(layers.BatchNormalization()),
                 layers.TimeDistributed(layers.MaxPooling2D()),
                 layers.TimeDistributed(layers.TimeDistributed(layers.Dense(3))),
                 layers.TimeDistributed(layers.Flatten()),
                 layers.TimeDistributed(layers.Dropout(0.3)),
                 layers.TimeDistributed(layers.Dense(4, activation="softmax")))
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
    weights[5] = rng.uniform(0.5, 2, weights[5].shape).astype(np.float32)  # moving variance
    model.set_weights(weights)
    x = rng.normal(size=(5, 3, 6, 6, 2)).astype(np.float32)
    path = str(tmp_path / "td.onnx")
    model.export_onnx(path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    got = sess.run(["output"], {"input": x[:2]})[0]  # the batch axis stays symbolic
    np.testing.assert_allclose(got, model.predict(x[:2], verbose=0), rtol=1e-5, atol=1e-6)
