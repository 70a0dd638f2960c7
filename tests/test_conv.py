"""Convolutional layers: PyTorch parity (forward, input and weight gradients), finite-difference
gradients, BatchNormalization statistics against NumPy, Keras shapes/param counts, bad input.

Input gradients are observed through a "probe": the model starts with Dense(P) on the flattened
input (identity kernel, zero bias) and a Reshape, so the probe's bias gradient is dL/dx summed
over the batch. PyTorch runs in float64 on the same float32 weights and inputs; NHWC data is
permuted to NCHW and kernels (kh, kw, in, out) to (out, in, kh, kw). TF's 'same' padding
(the odd cell after) is applied with an explicit F.pad.
"""
import json
import numpy as np
import pytest

import shenjing
from shenjing import layers

from test_gradients import finite_difference_check

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-5


def _close(got, ref, what, rtol=RTOL, scale=None):
    """Elementwise within rtol, entries near zero within rtol of the array's scale."""
    ref = np.asarray(ref, dtype=np.float64)
    if scale is None:
        scale = float(np.abs(ref).max()) if ref.size else 0.0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale + 1e-12, err_msg=what)


def _same_pads(size, k, s, d=1):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_nchw(x, pads_h, pads_w, value=0.0):
    return F.pad(x, (pads_w[0], pads_w[1], pads_h[0], pads_h[1]), value=value)


# ---- PyTorch references on NHWC tensors ----------------------------------------------------

def t_conv2d(x, kernel, bias, strides, padding, dilation):
    xt = x.permute(0, 3, 1, 2)
    kh, kw = kernel.shape[:2]
    if padding == "same":
        xt = _pad_nchw(xt, _same_pads(xt.shape[2], kh, strides[0], dilation[0]),
                       _same_pads(xt.shape[3], kw, strides[1], dilation[1]))
    y = F.conv2d(xt, kernel.permute(3, 2, 0, 1), bias, stride=strides, dilation=dilation)
    return y.permute(0, 2, 3, 1)


def t_conv1d(x, kernel, bias, stride, padding, dilation):
    xt = x.permute(0, 2, 1)
    k = kernel.shape[0]
    if padding == "same":
        xt = F.pad(xt, _same_pads(xt.shape[2], k, stride, dilation))
    elif padding == "causal":
        xt = F.pad(xt, ((k - 1) * dilation, 0))
    y = F.conv1d(xt, kernel.permute(2, 1, 0), bias, stride=stride, dilation=dilation)
    return y.permute(0, 2, 1)


def t_pool2d(x, kind, pool, strides, padding):
    xt = x.permute(0, 3, 1, 2)
    ph = pw = (0, 0)
    if padding == "same":
        ph = _same_pads(xt.shape[2], pool[0], strides[0])
        pw = _same_pads(xt.shape[3], pool[1], strides[1])
    if kind == "max":
        y = F.max_pool2d(_pad_nchw(xt, ph, pw, -np.inf), pool, strides)
    else:  # average over the cells inside the input only (TF)
        ones = torch.ones_like(xt[:1, :1])
        s = F.avg_pool2d(_pad_nchw(xt, ph, pw), pool, strides)
        c = F.avg_pool2d(_pad_nchw(ones, ph, pw), pool, strides)
        y = s / c
    return y.permute(0, 2, 3, 1)


TORCH_ACT = {"linear": lambda z: z, "relu": torch.relu, "tanh": torch.tanh,
             "sigmoid": torch.sigmoid, "softmax": lambda z: torch.softmax(z, dim=-1)}


# ---- the parity harness ----------------------------------------------------------------------

def _parity(layer_list, in_shape, torch_fn, n=2, seed=0, loss="mse", weight_scale=0.5,
            target=None, x=None):
    """Builds probe -> layers, compares predict, the loss, dL/dx and every weight gradient."""
    rng = np.random.default_rng(seed)
    P = int(np.prod(in_shape))
    model = shenjing.Sequential([layers.Input((P,)), layers.Dense(P), layers.Reshape(in_shape)]
                                + list(layer_list))
    model.compile(optimizer="sgd", loss=loss)
    probe = model.layers[0]
    probe.kernel[...] = np.eye(P)
    probe.bias[...] = 0.0
    params = []
    for layer in layer_list:
        for name, value, _ in layer._views:
            if name in ("moving_mean", "moving_variance"):
                continue
            value[...] = rng.normal(0, weight_scale, value.shape)
            params.append((layer, name))
    if x is None:
        x = rng.normal(size=(n, P))
    x = x.astype(np.float32)
    out_shape = model.output_shape[1:]
    y = target(rng, n, out_shape) if target else rng.normal(size=(n,) + out_shape)
    y = y.astype(np.float32)

    xt = torch.tensor(x, dtype=torch.float64).reshape((n,) + tuple(in_shape))
    xt.requires_grad_(True)
    tp = {}
    for layer, name in params:
        tp[(layer.name, name)] = torch.tensor(getattr(layer, name), dtype=torch.float64,
                                              requires_grad=True)
    out = torch_fn(xt, lambda layer, name: tp.get((layer.name, name)))
    yt = torch.tensor(y, dtype=torch.float64)
    if loss == "mse":
        tl = ((out - yt) ** 2).reshape(n, -1).mean(dim=1).mean()
    else:  # categorical cross-entropy on probabilities
        tl = -(yt.reshape(n, -1) * torch.log(out.reshape(n, -1))).sum(dim=1).mean()
    tl.backward()

    got_loss = model._core.compute_gradients(x, y)
    assert got_loss == pytest.approx(tl.item(), rel=RTOL)
    # dL/dx per sample through the probe's kernel gradient x^T dx, summed through its bias.
    dx = xt.grad.reshape(n, P).numpy()
    _close(probe._views[0][2], x.astype(np.float64).T @ dx, "probe kernel (x^T dL/dx)",
           scale=float(np.abs(x).max() * np.abs(dx).max()) * n)
    _close(probe._views[1][2], dx.sum(0), "dL/dx summed over the batch",
           scale=float(np.abs(dx).max()) * n)
    for layer, name in params:
        grad = dict((nm, g) for nm, _, g in layer._views)[name]
        _close(grad, tp[(layer.name, name)].grad.numpy(), f"{layer.name}.{name} gradient")
    return model, x, out.detach().numpy()


def _forward_parity(model, x, ref):
    _close(model.predict(x, verbose=0), ref, "forward")


CONV2D_CASES = [
    # (H, W, C, filters, kernel, strides, padding, dilation, activation, n)
    (7, 9, 3, 4, 3, 1, "valid", 1, "linear", 2),
    (7, 9, 3, 4, 3, 1, "same", 1, "relu", 2),
    (9, 8, 3, 5, 3, 2, "same", 1, "tanh", 3),
    (9, 8, 3, 5, 3, 2, "valid", 1, "linear", 1),
    (8, 7, 1, 3, 3, 1, "same", 2, "sigmoid", 2),
    (11, 10, 5, 2, 3, 1, "valid", 2, "relu", 2),
    (10, 11, 3, 5, (3, 2), (2, 3), "same", (1, 2), "linear", 2),
    (6, 5, 5, 7, 1, 1, "valid", 1, "tanh", 2),          # pointwise: x is its own col
    (6, 5, 3, 2, 1, 2, "same", 1, "linear", 2),          # 1x1 with stride
    (5, 5, 1, 4, 5, 1, "valid", 1, "linear", 1),         # kernel = input: 1x1 output
    (4, 6, 2, 3, (4, 2), (1, 2), "same", 1, "relu", 1),  # even kernel rows: odd padding split
]


@pytest.mark.parametrize("case", CONV2D_CASES, ids=[str(i) for i in range(len(CONV2D_CASES))])
def test_conv2d_matches_torch(case):
    H, W, C, Fn, k, s, pad, d, act, n = case
    conv = layers.Conv2D(Fn, k, strides=s, padding=pad, dilation_rate=d, activation=act)
    st, dl = conv.strides, conv.dilation_rate

    def ref(x, p):
        return TORCH_ACT[act](t_conv2d(x, p(conv, "kernel"), p(conv, "bias"), st, pad, dl))

    model, x, out = _parity([conv], (H, W, C), ref, n=n, seed=hash(case) % 1000)
    _forward_parity(model, x, out)


def test_conv2d_without_bias_and_stacked_matches_torch():
    c1 = layers.Conv2D(4, 3, padding="same", activation="tanh", use_bias=False)
    c2 = layers.Conv2D(3, 2, strides=2, activation="relu")

    def ref(x, p):
        h = torch.tanh(t_conv2d(x, p(c1, "kernel"), None, (1, 1), "same", (1, 1)))
        return torch.relu(t_conv2d(h, p(c2, "kernel"), p(c2, "bias"), (2, 2), "valid", (1, 1)))

    model, x, out = _parity([c1, c2], (7, 6, 3), ref, n=3, seed=11)
    assert len(c1.weights) == 1
    _forward_parity(model, x, out)


def test_conv2d_softmax_crossentropy_is_fused_and_matches_torch():
    """Conv2D(softmax) as the last layer with a (1, 1, F) output: the loss fuses softmax + CE."""
    conv = layers.Conv2D(4, 3, activation="softmax")

    def ref(x, p):
        return torch.softmax(t_conv2d(x, p(conv, "kernel"), p(conv, "bias"), (1, 1), "valid",
                                      (1, 1)), dim=-1)

    def onehot(rng, n, shape):
        return np.eye(shape[-1])[rng.integers(0, shape[-1], n)].reshape((n,) + shape)

    _parity([conv], (3, 3, 2), ref, n=4, seed=3, loss="categorical_crossentropy",
            target=onehot)


CONV1D_CASES = [
    # (L, C, filters, kernel, stride, padding, dilation, activation, n)
    (9, 3, 4, 3, 1, "valid", 1, "linear", 2),
    (10, 2, 3, 3, 2, "same", 1, "relu", 2),
    (11, 1, 5, 4, 1, "same", 2, "tanh", 1),
    (8, 3, 2, 3, 1, "causal", 2, "linear", 2),
    (7, 5, 3, 1, 1, "valid", 1, "linear", 2),
]


@pytest.mark.parametrize("case", CONV1D_CASES, ids=[str(i) for i in range(len(CONV1D_CASES))])
def test_conv1d_matches_torch(case):
    L, C, Fn, k, s, pad, d, act, n = case
    conv = layers.Conv1D(Fn, k, strides=s, padding=pad, dilation_rate=d, activation=act)

    def ref(x, p):
        return TORCH_ACT[act](t_conv1d(x, p(conv, "kernel"), p(conv, "bias"), s, pad, d))

    model, x, out = _parity([conv], (L, C), ref, n=n, seed=7 + L)
    assert conv.kernel.shape == (k, C, Fn)
    _forward_parity(model, x, out)


POOL_CASES = [
    # (kind, H, W, C, pool, strides, padding, n)
    ("max", 8, 8, 3, 2, None, "valid", 2),
    ("max", 7, 9, 3, 2, None, "valid", 1),
    ("max", 7, 9, 5, 3, 2, "same", 2),
    ("max", 6, 7, 1, (2, 3), (1, 2), "same", 2),
    ("max", 7, 7, 2, 3, 1, "valid", 2),          # overlapping windows
    ("max", 7, 9, 2, 2, 3, "same", 2),           # gaps between windows
    ("max", 8, 7, 3, (2, 3), 3, "valid", 1),     # gaps and uncovered edge cells
    ("avg", 7, 9, 2, 2, 3, "same", 2),
    ("avg", 8, 8, 3, 2, None, "valid", 2),
    ("avg", 7, 9, 5, 3, 2, "same", 2),
    ("avg", 6, 7, 1, (2, 3), (1, 2), "same", 1),
    ("avg", 7, 7, 2, 3, 1, "valid", 2),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_pool2d_matches_torch(case):
    kind, H, W, C, pool, strides, pad, n = case
    cls = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    layer = cls(pool, strides=strides, padding=pad)

    def ref(x, p):
        return t_pool2d(x, kind, layer.pool_size, layer.strides, pad)

    model, x, out = _parity([layer], (H, W, C), ref, n=n, seed=5)
    _forward_parity(model, x, out)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pad", ["valid", "same"])
def test_pool1d_matches_torch(kind, pad):
    cls = layers.MaxPooling1D if kind == "max" else layers.AveragePooling1D
    layer = cls(3, strides=2, padding=pad)
    assert cls().pool_size == (2,) and cls().strides == (2,)

    def ref(x, p):
        return t_pool2d(x[:, None], kind, (1, 3), (1, 2), pad)[:, 0]

    model, x, out = _parity([layer], (9, 3), ref, n=2, seed=9)
    _forward_parity(model, x, out)


@pytest.mark.parametrize("cls,rank,op", [
    (layers.GlobalAveragePooling2D, 2, "mean"), (layers.GlobalMaxPooling2D, 2, "max"),
    (layers.GlobalAveragePooling1D, 1, "mean"), (layers.GlobalMaxPooling1D, 1, "max")])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_matches_torch(cls, rank, op, keepdims):
    layer = cls(keepdims=keepdims)
    shape = (5, 3, 4) if rank == 2 else (7, 4)
    axes = tuple(range(1, rank + 1))

    def ref(x, p):
        if op == "mean":
            return x.mean(dim=axes, keepdim=keepdims)
        return x.amax(dim=axes, keepdim=keepdims)

    model, x, out = _parity([layer], shape, ref, n=3, seed=2)
    assert model.output_shape == ((None,) + (1,) * rank + (4,) if keepdims else (None, 4))
    _forward_parity(model, x, out)


def test_zero_padding_matches_torch():
    zp = layers.ZeroPadding2D(((1, 2), (0, 3)))
    conv = layers.Conv2D(2, 3)
    assert layers.ZeroPadding2D().padding == ((1, 1), (1, 1))
    assert layers.ZeroPadding2D(2).padding == ((2, 2), (2, 2))
    assert layers.ZeroPadding2D((1, 2)).padding == ((1, 1), (2, 2))

    def ref(x, p):
        h = F.pad(x, (0, 0, 0, 3, 1, 2))
        return t_conv2d(h, p(conv, "kernel"), p(conv, "bias"), (1, 1), "valid", (1, 1))

    model, x, out = _parity([zp, conv], (4, 5, 2), ref, n=2, seed=4)
    assert zp.output_shape == (None, 7, 8, 2)
    _forward_parity(model, x, out)
    zp1 = layers.ZeroPadding1D((2, 1))
    model = shenjing.Sequential([layers.Input((4, 3)), zp1])
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  np.pad(x, ((0, 0), (2, 1), (0, 0))))


def test_small_cnn_matches_torch():
    """Conv -> MaxPool -> Conv(same, stride 2) -> AvgPool -> Flatten -> Dense(softmax) + CE."""
    c1 = layers.Conv2D(4, 3, activation="relu")
    c2 = layers.Conv2D(5, 3, strides=2, padding="same", activation="tanh")
    d = layers.Dense(3, activation="softmax")
    stack = [c1, layers.MaxPooling2D(2), c2, layers.AveragePooling2D(2, padding="same"),
             layers.Flatten(), d]

    def ref(x, p):
        h = torch.relu(t_conv2d(x, p(c1, "kernel"), p(c1, "bias"), (1, 1), "valid", (1, 1)))
        h = t_pool2d(h, "max", (2, 2), (2, 2), "valid")
        h = torch.tanh(t_conv2d(h, p(c2, "kernel"), p(c2, "bias"), (2, 2), "same", (1, 1)))
        h = t_pool2d(h, "avg", (2, 2), (2, 2), "same")
        return torch.softmax(h.reshape(h.shape[0], -1) @ p(d, "kernel") + p(d, "bias"), dim=-1)

    def onehot(rng, n, shape):
        return np.eye(3)[rng.integers(0, 3, n)]

    model, x, out = _parity(stack, (12, 11, 2), ref, n=4, seed=8,
                            loss="categorical_crossentropy", target=onehot)
    _forward_parity(model, x, out)


# ---- BatchNormalization -------------------------------------------------------------------

def _bn_numpy(x, gamma, beta, eps):
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)  # biased, as Keras
    return (x - mean) / np.sqrt(var + eps) * gamma + beta, mean, var


@pytest.mark.parametrize("shape", [(6,), (4, 5, 3)])
def test_batch_norm_training_matches_torch(shape):
    bn = layers.BatchNormalization()
    eps = bn.epsilon

    def ref(x, p):
        c = x.shape[-1]
        xf = x.reshape(-1, c)
        y = F.batch_norm(xf, None, None, p(bn, "gamma"), p(bn, "beta"), training=True, eps=eps)
        return y.reshape(x.shape)

    _parity([bn], shape, ref, n=5, seed=12, weight_scale=1.0)


def test_batch_norm_after_conv_and_dense_matches_torch():
    conv = layers.Conv2D(3, 3, padding="same", use_bias=False)
    bn1 = layers.BatchNormalization(center=False)
    d = layers.Dense(4, use_bias=False)  # a bias before BatchNormalization has no gradient
    bn2 = layers.BatchNormalization(scale=False, epsilon=1e-2)

    def ref(x, p):
        h = t_conv2d(x, p(conv, "kernel"), None, (1, 1), "same", (1, 1))
        c = h.shape[-1]
        h = F.batch_norm(h.reshape(-1, c), None, None, p(bn1, "gamma"), None, training=True,
                         eps=1e-3).reshape(h.shape)
        h = torch.relu(h).reshape(h.shape[0], -1) @ p(d, "kernel")
        return F.batch_norm(h, None, None, None, p(bn2, "beta"), training=True, eps=1e-2)

    _parity([conv, bn1, layers.Activation("relu"), layers.Flatten(), d, bn2], (5, 4, 2), ref,
            n=4, seed=13)
    assert [n for n, _, _ in bn1._views] == ["gamma", "moving_mean", "moving_variance"]
    assert [n for n, _, _ in bn2._views] == ["beta", "moving_mean", "moving_variance"]


def test_batch_norm_statistics_and_inference_match_numpy():
    rng = np.random.default_rng(0)
    bn = layers.BatchNormalization(momentum=0.9)
    model = shenjing.Sequential([layers.Input((3, 2, 4)), bn])
    model.compile(optimizer="sgd", loss="mse")
    assert [n for n, _, _ in bn._views] == ["gamma", "beta", "moving_mean", "moving_variance"]
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    bn.gamma[...] = gamma
    bn.beta[...] = beta
    mm, mv = np.zeros(4), np.ones(4)
    for step in range(3):
        x = (rng.normal(size=(5, 3, 2, 4)) * [1, 2, 3, 4] + [0, 1, -1, 5]).astype(np.float32)
        y = rng.normal(size=x.shape).astype(np.float32)
        model._core.compute_gradients(x, y)  # training behaviour: batch statistics
        _, mean, var = _bn_numpy(x.astype(np.float64), gamma, beta, bn.epsilon)
        mm = mm * 0.9 + mean * 0.1
        mv = mv * 0.9 + var * 0.1
        np.testing.assert_allclose(bn.moving_mean, mm, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.moving_variance, mv, rtol=1e-5, atol=1e-6)
    # predict and evaluate use the moving statistics and leave them alone.
    x = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    expect = (x - mm) / np.sqrt(mv + 1e-3) * gamma + beta
    np.testing.assert_allclose(model.predict(x, verbose=0), expect, rtol=1e-5, atol=1e-5)
    loss = model.evaluate(x, np.zeros_like(x), verbose=0)
    assert loss == pytest.approx(np.mean(expect ** 2), rel=1e-5)
    np.testing.assert_allclose(bn.moving_mean, mm, rtol=1e-5, atol=1e-6)


def test_batch_norm_fit_trains_gamma_beta_only():
    rng = np.random.default_rng(1)
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(8),
                                 layers.BatchNormalization()])
    model.compile(optimizer="adam", loss="mse")
    bn = model.layers[1]
    assert [w.shape for w in bn.trainable_weights] == [(8,), (8,)]
    assert len(bn.non_trainable_weights) == 2
    assert np.shares_memory(bn.non_trainable_weights[0], bn.moving_mean)
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 2
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.normal(size=(64, 8)).astype(np.float32)
    w0 = [w.astype(np.float64) for w in model.layers[0].get_weights()]
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    # One step of (1 - momentum) toward the batch statistics of the Dense output, computed
    # with the Dense weights before the update.
    h = x @ w0[0] + w0[1]
    np.testing.assert_allclose(bn.moving_mean, 0.01 * h.mean(0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance, 0.99 + 0.01 * h.var(0), rtol=1e-5)
    assert not np.allclose(bn.gamma, 1.0)  # trained by Adam
    np.testing.assert_array_equal(bn._views[2][2], 0.0)  # no gradient for moving stats


def test_batch_norm_gradients_finite_difference():
    rng = np.random.default_rng(2)
    model = shenjing.Sequential([layers.Input((4, 3, 2)),
                                 layers.Conv2D(3, 2, padding="same", activation="tanh"),
                                 layers.BatchNormalization(), layers.Flatten(),
                                 layers.Dense(2, activation="tanh")])
    model.compile(optimizer="sgd", loss="mse")
    for layer in model.layers:
        for name, value, _ in layer._views:
            if not name.startswith("moving"):
                value[...] = rng.uniform(-0.8, 0.8, value.shape)
    model.layers[1].gamma[...] += 1.0
    x = rng.normal(size=(5, 4, 3, 2))
    y = rng.normal(size=(5, 2))
    # Moving statistics have zero gradient and do not enter the training loss.
    finite_difference_check(model, x, y)


# ---- finite differences through the conv kernels -------------------------------------------

@pytest.mark.parametrize("strides,padding,dilation", [(1, "valid", 1), (2, "same", 1),
                                                      (1, "same", 2)])
def test_conv_gradients_finite_difference(strides, padding, dilation):
    rng = np.random.default_rng(3)
    model = shenjing.Sequential([
        layers.Input((6, 5, 2)),
        layers.Conv2D(3, 3, strides=strides, padding=padding, dilation_rate=dilation,
                      activation="tanh"),
        layers.AveragePooling2D(2, padding="same"),
        layers.Conv2D(2, (1, 2), activation="sigmoid", kernel_regularizer="l2"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    for layer in model.layers:
        for name, value, _ in layer._views:
            value[...] = rng.uniform(-0.6, 0.6, value.shape)
    x = rng.normal(size=(3, 6, 5, 2))
    y = rng.normal(size=(3, 2))
    assert finite_difference_check(model, x, y) > 0


def test_conv1d_gradients_finite_difference():
    rng = np.random.default_rng(4)
    model = shenjing.Sequential([
        layers.Input((9, 2)), layers.ZeroPadding1D(1),
        layers.Conv1D(3, 3, strides=2, padding="same", activation="tanh"),
        layers.Conv1D(2, 2, padding="causal", dilation_rate=2, activation="swish"),
        layers.AveragePooling1D(2, padding="same"), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    for layer in model.layers:
        for name, value, _ in layer._views:
            value[...] = rng.uniform(-0.6, 0.6, value.shape)
    finite_difference_check(model, rng.normal(size=(3, 9, 2)), rng.normal(size=(3, 2)))


def test_chunked_batches_give_the_same_results():
    """A batch run in chunks of a few samples (small workspace) matches one chunk."""
    rng = np.random.default_rng(5)
    model = shenjing.Sequential([layers.Input((9, 8, 3)),
                                 layers.Conv2D(4, 3, padding="same", activation="relu"),
                                 layers.Conv2D(3, 3, strides=2, activation="tanh"),
                                 layers.Conv2D(2, 1, activation="sigmoid"),
                                 layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(7, 9, 8, 3)).astype(np.float32)
    y = rng.normal(size=(7, 2)).astype(np.float32)

    def run():
        loss = model._core.compute_gradients(x, y)
        return loss, [g.copy() for l in model.layers for _, _, g in l._views], \
            model.predict(x, batch_size=7, verbose=0)

    base = run()
    try:
        # 2 samples per chunk of the first conv (2232 floats a sample), then one sample per
        # chunk, then one thread (a sample larger than the 4 chunks the batch split allows).
        for chunk in (5000, 2000, 1):
            shenjing._core._set_conv_chunk_floats(chunk)
            other = run()
            assert other[0] == pytest.approx(base[0], rel=1e-6)
            for a, b in zip(other[1], base[1]):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(other[2], base[2], rtol=1e-6, atol=1e-6)
    finally:
        shenjing._core._set_conv_chunk_floats(0)


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(6)
    model = shenjing.Sequential([layers.Input((16, 16, 3)),
                                 layers.Conv2D(8, 3, padding="same", activation="relu"),
                                 layers.MaxPooling2D(2), layers.Conv2D(8, 3, activation="relu"),
                                 layers.BatchNormalization(), layers.GlobalAveragePooling2D(),
                                 layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(32, 16, 16, 3)).astype(np.float32)
    y = rng.normal(size=(32, 3)).astype(np.float32)
    before = shenjing.get_num_threads()
    results = []
    try:
        for nt in (1, 2, 2):
            shenjing.set_num_threads(nt)
            model._core.compute_gradients(x, y)
            results.append([g.copy() for l in model.layers for _, _, g in l._views])
    finally:
        shenjing.set_num_threads(before)
    for a, b in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, b)  # same thread count: bit-identical
    for a, b in zip(results[0], results[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ---- Keras shapes, names, parameter counts ---------------------------------------------------

def _keras_mnist_convnet():
    return shenjing.Sequential([
        layers.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def test_summary_keras_mnist_convnet():
    model = _keras_mnist_convnet()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert [l.count_params() for l in model.layers] == [320, 0, 18_496, 0, 0, 0, 16_010]
    assert [l.output_shape for l in model.layers] == [
        (None, 26, 26, 32), (None, 13, 13, 32), (None, 11, 11, 64), (None, 5, 5, 64),
        (None, 1600), (None, 1600), (None, 10)]
    assert "Total params: 34,826" in text and "Trainable params: 34,826" in text
    assert "Non-trainable params: 0" in text
    assert [l.name for l in model.layers][:2] == [model.layers[0].name,
                                                  model.layers[1].name]
    assert model.layers[0].name.startswith("conv2d")
    assert model.layers[1].name.startswith("max_pooling2d")
    assert model.layers[0].kernel.shape == (3, 3, 1, 32)


def test_summary_batch_norm_params():
    model = shenjing.Sequential([layers.Input((10,)), layers.Dense(64),
                                 layers.BatchNormalization()])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert model.layers[1].count_params() == 256
    assert "Total params: 960" in text
    assert "Trainable params: 832" in text
    assert "Non-trainable params: 128" in text
    assert any("(BatchNormalization)" in l for l in lines)
    assert all(len(l) == len(lines[1]) for l in lines[1:-3])  # long names wrap, table intact


@pytest.mark.parametrize("layer,in_shape,out_shape", [
    (layers.Conv2D(8, 3, strides=2, padding="same"), (28, 28, 3), (14, 14, 8)),
    (layers.Conv2D(8, 5, strides=2), (28, 28, 3), (12, 12, 8)),
    (layers.Conv2D(8, 3, dilation_rate=2), (28, 28, 3), (24, 24, 8)),
    (layers.Conv2D(8, (1, 7), padding="same"), (9, 10, 3), (9, 10, 8)),
    (layers.Conv1D(4, 5, strides=3), (20, 2), (6, 4)),
    (layers.Conv1D(4, 5, padding="causal"), (20, 2), (20, 4)),
    (layers.MaxPooling2D(3, strides=2, padding="same"), (7, 7, 2), (4, 4, 2)),
    (layers.AveragePooling2D(), (7, 9, 2), (3, 4, 2)),
    (layers.MaxPooling1D(), (9, 2), (4, 2)),
    (layers.AveragePooling1D(padding="same"), (9, 2), (5, 2)),
    (layers.GlobalAveragePooling2D(), (5, 6, 7), (7,)),
    (layers.GlobalMaxPooling1D(keepdims=True), (5, 7), (1, 7)),
    (layers.ZeroPadding2D(((1, 0), (2, 3))), (5, 6, 7), (6, 11, 7)),
])
def test_output_shapes_as_keras(layer, in_shape, out_shape):
    model = shenjing.Sequential([layers.Input(in_shape), layer])
    assert layer.output_shape == (None,) + out_shape
    x = np.random.default_rng(0).normal(size=(2,) + in_shape).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (2,) + out_shape


def test_int_and_tuple_arguments():
    a = layers.Conv2D(4, 3)
    assert (a.kernel_size, a.strides, a.dilation_rate, a.padding) == ((3, 3), (1, 1), (1, 1),
                                                                      "valid")
    b = layers.Conv2D(4, (3, 5), strides=2, padding="SAME", dilation_rate=[1, 1])
    assert (b.kernel_size, b.strides, b.padding) == ((3, 5), (2, 2), "same")
    assert layers.Conv1D(2, 3).kernel_size == (3,)
    assert layers.MaxPooling2D().pool_size == (2, 2) and layers.MaxPooling2D().strides == (2, 2)
    assert layers.MaxPooling2D(3, 1).strides == (1, 1)
    assert layers.MaxPool2D is layers.MaxPooling2D
    cfg = layers.BatchNormalization().get_config()
    assert (cfg["momentum"], cfg["epsilon"], cfg["axis"]) == (0.99, 1e-3, -1)


# ---- bad input -------------------------------------------------------------------------------

def test_conv2d_on_grayscale_without_channel_axis_explains_the_fix():
    with pytest.raises(ValueError, match=r"conv2d.*\(None, 28, 28\).*x\[\.\.\., None\]"):
        shenjing.Sequential([layers.Input((28, 28)), layers.Conv2D(4, 3, name="conv2d_x")])
    model = shenjing.Sequential([layers.Conv2D(4, 3)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match=r"Input\(shape=\(28, 28, 1\)\)"):
        model.fit(np.zeros((4, 28, 28), np.float32), np.zeros((4, 1)), verbose=0)


@pytest.mark.parametrize("make,in_shape,pattern", [
    (lambda: layers.Conv2D(2, 5, name="big"), (3, 3, 1),
     r"'big' \(Conv2D\): kernel_size \(5, 5\) is larger than the input \(None, 3, 3, 1\)"),
    (lambda: layers.Conv2D(2, 3, dilation_rate=3), (6, 6, 1), r"\(7, 7\) with dilation"),
    (lambda: layers.Conv1D(2, 4), (3, 2), r"Conv1D.*kernel_size 4 is larger"),
    (lambda: layers.MaxPooling2D(4), (3, 5, 1), r"MaxPooling2D.*pool_size \(4, 4\)"),
    (lambda: layers.Conv1D(2, 3), (5, 5, 2), r"expects input of rank 3"),
    (lambda: layers.MaxPooling1D(), (5,), r"x\[\.\.\., None\]"),
    (lambda: layers.GlobalAveragePooling2D(), (5, 2), r"rank 4"),
    (lambda: layers.BatchNormalization(axis=1), (5, 2), r"only the last axis"),
])
def test_bad_shapes_name_the_layer_and_shapes(make, in_shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        shenjing.Sequential([layers.Input(in_shape), make()])


@pytest.mark.parametrize("make,pattern", [
    (lambda: layers.Conv2D(0, 3), r"Conv2D: filters must be a positive integer, received 0"),
    (lambda: layers.Conv2D(-2, 3), r"filters"),
    (lambda: layers.Conv2D(2, 0), r"kernel_size must contain positive integers"),
    (lambda: layers.Conv2D(2, (3, -1)), r"kernel_size"),
    (lambda: layers.Conv2D(2, (3, 3, 3)), r"kernel_size must be an integer or a tuple of 2"),
    (lambda: layers.Conv2D(2, 3, strides=0), r"strides must contain positive"),
    (lambda: layers.Conv2D(2, 3, dilation_rate=(1, 0)), r"dilation_rate"),
    (lambda: layers.Conv2D(2, 3, padding="full"), r"padding must be 'valid' or 'same', "
                                                   r"received 'full'"),
    (lambda: layers.Conv2D(2, 3, padding="causal"), r"padding must be 'valid' or 'same'"),
    (lambda: layers.Conv1D(2, 3, padding="full"), r"'valid', 'same' or 'causal'"),
    (lambda: layers.Conv2D(2, 3, data_format="channels_first"), r"channels_last"),
    (lambda: layers.Conv2D(2, 3, groups=2), r"groups"),
    (lambda: layers.MaxPooling2D(0), r"pool_size must contain positive"),
    (lambda: layers.AveragePooling1D(2, strides=-1), r"strides"),
    (lambda: layers.MaxPooling2D(padding="reflect"), r"MaxPooling2D: padding must be"),
    (lambda: layers.ZeroPadding2D(-1), r"non-negative"),
    (lambda: layers.BatchNormalization(momentum=1.5), r"momentum"),
    (lambda: layers.BatchNormalization(epsilon=0), r"epsilon"),
])
def test_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_core_checks_arguments_too():
    # The C++ core reads layer configs itself (model files reach it without Python).
    core = shenjing._core.Model([8, 8, 1])

    def add(cls, **config):
        core.add_layer(json.dumps({"class_name": cls, "config": {"name": "c", **config}}))

    with pytest.raises(ValueError, match=r"Layer 'c' \(Conv2D\): 'strides'"):
        add("Conv2D", filters=4, kernel_size=3, strides=[0, 1])
    with pytest.raises(ValueError, match="padding"):
        add("Conv2D", filters=4, kernel_size=3, padding="nope")
    with pytest.raises(ValueError, match="'pool_size'"):
        add("MaxPooling2D", pool_size=[0, 2])
    with pytest.raises(ValueError, match="'filters' must be an integer"):
        add("Conv2D", filters=2.5, kernel_size=3)
