"""Decoder layers (Conv1DTranspose, Conv2DTranspose, UpSampling1D/2D, Cropping1D/2D,
RepeatVector, Permute, Identity): PyTorch parity of the outputs, the input gradients and the
weight gradients (the probe harness of test_conv.py), Keras's output-shape formulas, and
finite-difference gradients.

Keras's transposed convolution is written here from Keras's own source
(keras/src/backend/common/backend_utils.py): the output length of
_get_output_shape_given_tf_padding, and the placement of JAX's conv_transpose padding
(_convert_conv_transpose_padding_args_from_keras_to_jax). PyTorch runs the convolution
unpadded (length (in - 1) * s + eff) and the Keras window is cut out of it, as Keras's own
torch backend does, so asymmetric 'same' padding needs no special case.
"""
import numpy as np
import pytest

import shenjing
from shenjing import layers

from test_conv import TORCH_ACT, _forward_parity, _parity
from test_gradients import finite_difference_check

torch = pytest.importorskip("torch")
F = torch.nn.functional


# ---- Keras's formulas, transcribed ---------------------------------------------------------

def keras_deconv_length(size, k, s, padding, op, d):
    """_get_output_shape_given_tf_padding."""
    k = (k - 1) * d + 1
    if padding == "valid":
        op = max(k, s) - k if op is None else op
        return (size - 1) * s + k + op
    return size * s if op is None else (size - 1) * s + k % 2 + op


def keras_jax_pads(k, s, d, padding, op):
    """_convert_conv_transpose_padding_args_from_keras_to_jax: (left, right)."""
    k = (k - 1) * d + 1
    if padding == "valid":
        op = max(k, s) - k if op is None else op
        return k - 1, k - 1 + op
    pad_len = s + k - 2 if op is None else k + k % 2 - 2 + op
    left = min(pad_len // 2 + pad_len % 2, k - 1)
    return left, pad_len - left


def t_conv_transpose(x, kernel, bias, strides, padding, output_padding, dilation):
    """Keras's conv_transpose on channels-last x; kernel (*window, filters, in)."""
    rank = x.dim() - 2
    xt = x.permute(0, rank + 1, *range(1, rank + 1))
    w = kernel.permute(rank + 1, rank, *range(rank))  # torch: (in, filters, *window)
    conv = F.conv_transpose2d if rank == 2 else F.conv_transpose1d
    y = conv(xt, w, None, stride=strides, dilation=dilation)
    for a in range(rank):
        k, s, d = kernel.shape[a], strides[a], dilation[a]
        op = None if output_padding is None else output_padding[a]
        left, right = keras_jax_pads(k, s, d, padding, op)
        eff = (k - 1) * d + 1
        # JAX pads the stride-dilated input by (left, right) before a correlation with the
        # flipped kernel: its output cell o is torch's cell o + eff - 1 - left.
        start = eff - 1 - left
        length = (x.shape[1 + a] - 1) * s + 1 + left + right - eff + 1
        assert length == keras_deconv_length(x.shape[1 + a], k, s, padding, op, d)
        axis = 2 + a
        extra = start + length - y.shape[axis]
        if extra > 0:  # cells past the kernel's reach: zeros (then the bias)
            pad = [0, 0] * (rank - 1 - a) + [0, extra]
            y = F.pad(y, pad)
        y = y.narrow(axis, start, length)
    if bias is not None:
        y = y + bias.reshape(1, -1, *([1] * rank))
    return y.permute(0, *range(2, rank + 2), 1)


CT2D_CASES = [
    # (H, W, C, filters, kernel, strides, padding, output_padding, dilation, act, bias, n)
    (4, 5, 3, 2, 3, 1, "valid", None, 1, "linear", True, 2),
    (4, 5, 3, 2, 3, 2, "same", None, 1, "relu", True, 3),       # odd kernel: asymmetric
    (3, 4, 2, 3, 3, 2, "valid", None, 1, "tanh", False, 2),
    (3, 4, 2, 3, (3, 2), (2, 3), "same", (1, 0), 1, "sigmoid", True, 2),
    (3, 4, 2, 3, 4, 2, "same", 1, 1, "linear", True, 1),        # even kernel + output_padding
    (3, 3, 2, 2, 3, 2, "same", 1, 1, "tanh", True, 2),          # odd kernel + odd op
    (3, 4, 2, 2, 2, 3, "valid", None, 1, "linear", True, 2),    # stride > kernel: gaps
    (3, 4, 2, 2, 2, 3, "valid", 2, 1, "linear", True, 2),       # gaps + output_padding
    (3, 3, 2, 2, 5, 2, "same", None, 1, "relu", True, 2),
    (5, 4, 2, 2, 3, 1, "same", None, (2, 1), "linear", True, 2),  # dilation
    (5, 4, 2, 2, 2, 1, "valid", 0, 2, "tanh", False, 2),
    (3, 3, 2, 4, 1, 1, "valid", None, 1, "tanh", True, 2),      # pointwise: one GEMM
    (3, 3, 2, 4, 1, 2, "same", 1, 1, "linear", True, 2),        # 1x1 with stride
    (2, 2, 3, 2, 2, 1, "same", 0, 1, "linear", True, 2),        # output smaller than input
]


@pytest.mark.parametrize("case", CT2D_CASES, ids=[str(i) for i in range(len(CT2D_CASES))])
def test_conv2d_transpose_matches_torch(case):
    H, W, C, Fn, k, s, pad, op, d, act, bias, n = case
    layer = layers.Conv2DTranspose(Fn, k, strides=s, padding=pad, output_padding=op,
                                   dilation_rate=d, activation=act, use_bias=bias)
    st, dl, ops = layer.strides, layer.dilation_rate, layer.output_padding

    def ref(x, p):
        return TORCH_ACT[act](t_conv_transpose(x, p(layer, "kernel"), p(layer, "bias"), st,
                                               pad, ops, dl))

    model, x, out = _parity([layer], (H, W, C), ref, n=n, seed=hash(case) % 1000)
    assert layer.kernel.shape == (*layer.kernel_size, Fn, C)
    assert len(layer.weights) == (2 if bias else 1)
    assert model.output_shape == (None, *(keras_deconv_length(
        sz, layer.kernel_size[a], st[a], pad, None if ops is None else ops[a], dl[a])
        for a, sz in enumerate((H, W))), Fn)
    _forward_parity(model, x, out)


def test_conv2d_transpose_many_chunks_and_threads_match_torch():
    """A batch large enough for both threads and several cache chunks per thread."""
    layer = layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="tanh")

    def ref(x, p):
        return torch.tanh(t_conv_transpose(x, p(layer, "kernel"), p(layer, "bias"), (2, 2),
                                           "same", None, (1, 1)))

    model, x, out = _parity([layer], (10, 12, 8), ref, n=70, seed=4, weight_scale=0.2)
    _forward_parity(model, x, out)


def test_conv2d_transpose_softmax_crossentropy_is_fused_and_matches_torch():
    """Softmax + cross-entropy fused at a (1, 1, F) output (the harness's loss sums over a
    sample's positions, so one position): 'same' with a 3x3 kernel on one cell uses only the
    centre tap, through col2im (not the pointwise path)."""
    layer = layers.Conv2DTranspose(4, 3, padding="same", activation="softmax")

    def ref(x, p):
        return torch.softmax(t_conv_transpose(x, p(layer, "kernel"), p(layer, "bias"), (1, 1),
                                              "same", None, (1, 1)), dim=-1)

    def onehot(rng, n, shape):
        return np.eye(shape[-1])[rng.integers(0, shape[-1], n)].reshape((n,) + shape)

    model, _, _ = _parity([layer], (1, 1, 3), ref, n=3, seed=3,
                          loss="categorical_crossentropy", target=onehot)
    assert model.output_shape == (None, 1, 1, 4)


CT1D_CASES = [
    # (L, C, filters, kernel, stride, padding, output_padding, dilation, act, bias, n)
    (5, 3, 2, 3, 1, "valid", None, 1, "linear", True, 2),
    (5, 3, 2, 3, 2, "same", None, 1, "relu", True, 2),
    (4, 2, 3, 4, 3, "same", 2, 1, "tanh", False, 2),
    (4, 2, 3, 2, 3, "valid", None, 1, "linear", True, 1),
    (6, 2, 2, 3, 1, "same", None, 3, "sigmoid", True, 2),
    (4, 3, 2, 1, 1, "same", 0, 1, "linear", True, 2),
]


@pytest.mark.parametrize("case", CT1D_CASES, ids=[str(i) for i in range(len(CT1D_CASES))])
def test_conv1d_transpose_matches_torch(case):
    L, C, Fn, k, s, pad, op, d, act, bias, n = case
    layer = layers.Conv1DTranspose(Fn, k, strides=s, padding=pad, output_padding=op,
                                   dilation_rate=d, activation=act, use_bias=bias)
    ops = layer.output_padding

    def ref(x, p):
        return TORCH_ACT[act](t_conv_transpose(x, p(layer, "kernel"), p(layer, "bias"), (s,),
                                               pad, ops, (d,)))

    model, x, out = _parity([layer], (L, C), ref, n=n, seed=L + k)
    assert layer.kernel.shape == (k, Fn, C)
    assert model.output_shape == (None, keras_deconv_length(L, k, s, pad, op, d), Fn)
    _forward_parity(model, x, out)


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(u), v> == <u, conv_transpose(v)> with the same kernel (no bias): the identity the
    layer is built on, checked without torch."""
    rng = np.random.default_rng(0)
    conv = layers.Conv2D(3, (3, 2), strides=2, padding="same", use_bias=False)
    tconv = layers.Conv2DTranspose(2, (3, 2), strides=2, padding="same", use_bias=False)
    # TF's 'same' conv of 8 rows pads 0 before and 1 after, the placement Keras's 'same'
    # transposed conv of 4 rows uses (P = max((eff - s) // 2, 0) = 0).
    mc = shenjing.Sequential([layers.Input((8, 6, 2)), conv])
    mt = shenjing.Sequential([layers.Input((4, 3, 3)), tconv])
    assert mt.output_shape == (None, 8, 6, 2) and mc.output_shape == (None, 4, 3, 3)
    kernel = rng.normal(size=(3, 2, 2, 3)).astype(np.float32)
    conv.set_weights([kernel])
    tconv.set_weights([kernel])
    u = rng.normal(size=(2, 8, 6, 2)).astype(np.float32)
    v = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    lhs = float((mc.predict(u, verbose=0).astype(np.float64) * v).sum())
    rhs = float((u.astype(np.float64) * mt.predict(v, verbose=0)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)


# ---- upsampling, cropping, repeat, permute, identity ----------------------------------------

@pytest.mark.parametrize("interp", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [(2, 2), (3, 2), (1, 4)])
def test_upsampling2d_matches_torch_interpolate(interp, size):
    layer = layers.UpSampling2D(size, interpolation=interp)

    def ref(x, p):
        kw = {"align_corners": False} if interp == "bilinear" else {}
        y = F.interpolate(x.permute(0, 3, 1, 2), scale_factor=size, mode=interp, **kw)
        return y.permute(0, 2, 3, 1)

    model, x, out = _parity([layer], (4, 5, 3), ref, n=2, seed=1)
    assert model.output_shape == (None, 4 * size[0], 5 * size[1], 3)
    _forward_parity(model, x, out)


def test_upsampling2d_bilinear_values_from_the_half_pixel_formula():
    """One row by hand: x = [0, 1, 2] upsampled 2x gives [0, .25, .75, 1.25, 1.75, 2]."""
    model = shenjing.Sequential([layers.Input((1, 3, 1)),
                                 layers.UpSampling2D((1, 2), interpolation="bilinear")])
    y = model.predict(np.arange(3, dtype=np.float32).reshape(1, 1, 3, 1), verbose=0)
    np.testing.assert_allclose(y.ravel(), [0, .25, .75, 1.25, 1.75, 2], rtol=0, atol=1e-7)


def test_upsampling1d_matches_torch_repeat():
    layer = layers.UpSampling1D(3)
    model, x, out = _parity([layer], (5, 2), lambda x, p: x.repeat_interleave(3, dim=1), n=2)
    assert layers.UpSampling1D().size == 2 and model.output_shape == (None, 15, 2)
    _forward_parity(model, x, out)


@pytest.mark.parametrize("cropping,expect", [
    (((1, 2), (0, 3)), ((1, 2), (0, 3))), (1, ((1, 1), (1, 1))), ((2, 1), ((2, 2), (1, 1))),
    (((0, 0), (0, 0)), ((0, 0), (0, 0)))])
def test_cropping2d_matches_torch_slicing(cropping, expect):
    layer = layers.Cropping2D(cropping)
    assert layer.cropping == expect
    (t, b), (lf, r) = expect
    model, x, out = _parity([layer], (6, 7, 2), lambda x, p: x[:, t:6 - b, lf:7 - r], n=2)
    assert model.output_shape == (None, 6 - t - b, 7 - lf - r, 2)
    _forward_parity(model, x, out)


def test_cropping1d_matches_torch_slicing():
    layer = layers.Cropping1D((2, 1))
    assert layers.Cropping1D().cropping == (1, 1) and layers.Cropping1D(3).cropping == (3, 3)
    model, x, out = _parity([layer], (7, 3), lambda x, p: x[:, 2:6], n=2)
    assert model.output_shape == (None, 4, 3)
    _forward_parity(model, x, out)


def test_repeat_vector_matches_torch():
    model, x, out = _parity([layers.RepeatVector(4)], (5,),
                            lambda x, p: x[:, None, :].expand(-1, 4, -1), n=3)
    assert model.output_shape == (None, 4, 5)
    _forward_parity(model, x, out)


@pytest.mark.parametrize("shape,dims", [((3, 4), (2, 1)), ((2, 3, 4), (3, 1, 2)),
                                        ((2, 3, 4), (1, 3, 2)), ((2, 3, 4), (1, 2, 3)),
                                        ((2, 1, 3, 2), (4, 2, 1, 3))])
def test_permute_matches_torch(shape, dims):
    layer = layers.Permute(dims)
    model, x, out = _parity([layer], shape, lambda x, p: x.permute(0, *dims), n=2)
    assert model.output_shape == (None, *(shape[d - 1] for d in dims))
    _forward_parity(model, x, out)


def test_identity_passes_values_and_gradients():
    dense = layers.Dense(3)

    def ref(x, p):
        return x @ p(dense, "kernel") + p(dense, "bias")

    model, x, out = _parity([layers.Identity(), dense], (4,), ref, n=2)
    _forward_parity(model, x, out)


# ---- finite differences ---------------------------------------------------------------------

def _fd_model(in_shape, layer, seed):
    """Dense probe -> layer -> tanh Dense: the layer's dx reaches the probe's weights."""
    rng = np.random.default_rng(seed)
    P = int(np.prod(in_shape))
    model = shenjing.Sequential([layers.Input((P,)), layers.Dense(P, activation="tanh"),
                                 layers.Reshape(in_shape), layer, layers.Flatten(),
                                 layers.Dense(3, activation="tanh")])
    model.compile(optimizer="sgd", loss="mse")
    for lay in model.layers:
        for _, value, _ in lay._views:
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
    x = rng.normal(size=(3, P))
    y = rng.normal(size=(3, 3))
    return model, x, y


@pytest.mark.parametrize("in_shape,make", [
    ((3, 3, 2), lambda: layers.Conv2DTranspose(2, 3, strides=2, padding="same",
                                               activation="tanh")),
    ((3, 2, 2), lambda: layers.Conv2DTranspose(2, (2, 3), strides=(2, 1), output_padding=(1, 0),
                                               activation="sigmoid")),
    ((4, 2), lambda: layers.Conv1DTranspose(3, 3, strides=2, padding="same",
                                            output_padding=1, activation="tanh")),
    ((3, 2, 2), lambda: layers.UpSampling2D((2, 3), interpolation="bilinear")),
    ((3, 2, 2), lambda: layers.UpSampling2D()),
    ((3, 2), lambda: layers.UpSampling1D(3)),
    ((5, 4, 2), lambda: layers.Cropping2D(((1, 2), (0, 1)))),
    ((5, 2), lambda: layers.Cropping1D((1, 2))),
    ((4,), lambda: layers.RepeatVector(3)),
    ((2, 3, 2), lambda: layers.Permute((3, 1, 2))),
    ((4,), lambda: layers.Identity()),
], ids=["ct2d_same", "ct2d_op", "ct1d", "up2d_bilinear", "up2d_nearest", "up1d", "crop2d",
        "crop1d", "repeat", "permute", "identity"])
def test_decoder_layer_gradients_match_finite_differences(in_shape, make):
    model, x, y = _fd_model(in_shape, make(), seed=len(in_shape))
    finite_difference_check(model, x, y)
