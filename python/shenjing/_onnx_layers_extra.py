"""ONNX converters of the layers in layers/activation_layers.py, noise.py, preprocessing.py and
depthwise_conv.py (used by _onnx_layers.py). Each takes (graph, layer, input name) and returns
its output name, computing what the core computes: the training-only layers are the identity,
Normalization folds its statistics into one Sub and one Div (or Mul and Add when inverted),
depthwise convolutions are ONNX Conv with group = input channels.
"""
import numpy as np

from shenjing._onnx_layers import _activation, _channels_first, _window_attrs
from shenjing.layers.activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from shenjing.layers.depthwise_conv import _DepthwiseConv, _SeparableConv
from shenjing.layers.noise import (ActivityRegularization, GaussianDropout, GaussianNoise,
                                   _SpatialDropout)
from shenjing.layers.rescaling_normalization import Normalization, Rescaling


def _identity(g, layer, x):
    return x


def _reduce(g, op_type, x, axes, hint):
    # ReduceSum took its axes as an input from opset 13, the others from 18.
    if g.opset < (13 if op_type == "ReduceSum" else 18):
        return g.op(op_type, [x], hint, axes=axes, keepdims=1)
    return g.op(op_type, [x, g.const(axes, hint + "/axes", np.int64)], hint, keepdims=1)


def _relu(g, layer, x):
    n, t, s, m = layer.name, layer.threshold, layer.negative_slope, layer.max_value
    if t == 0 and s == 0 and m is None:
        return g.op("Relu", [x], n)
    # x where x > threshold else 0, clipped to [0, max_value], + slope * min(x - threshold, 0)
    above = g.op("Cast", [g.op("Greater", [x, g.const(t, n + "/threshold")], n + "/above")],
                 n + "/above_f", to=1)
    y = g.op("Mul", [x, above], n + "/pos")
    if m is not None:
        y = g.op("Min", [g.op("Max", [y, g.const(0.0, n + "/zero")], n + "/lo"),
                         g.const(m, n + "/max_value")], n + "/clipped")
    if s != 0:
        below = g.op("Min", [g.op("Sub", [x, g.const(t, n + "/threshold")], n + "/shifted"),
                             g.const(0.0, n + "/zero")], n + "/below")
        y = g.op("Add", [y, g.op("Mul", [below, g.const(s, n + "/slope")], n + "/neg")], n)
    return y


def _leaky_relu(g, layer, x):
    return g.op("LeakyRelu", [x], layer.name, alpha=float(layer.negative_slope))


def _elu(g, layer, x):
    return g.op("Elu", [x], layer.name, alpha=float(layer.alpha))


def _prelu(g, layer, x):
    # alpha has the per-sample shape (1 on shared axes): it broadcasts against (batch, ...).
    return g.op("PRelu", [x, g.const(layer.get_weights()[0], layer.name + "/alpha")], layer.name)


def _softmax(g, layer, x):
    rank = len(layer.input_shape)
    axes = sorted({a % rank for a in ([layer.axis] if isinstance(layer.axis, int)
                                      else layer.axis)})
    if len(axes) == 1:  # one axis: ONNX's Softmax (opset >= 13, which export requires)
        return g.op("Softmax", [x], layer.name, axis=axes[0])
    n = layer.name
    shifted = g.op("Sub", [x, _reduce(g, "ReduceMax", x, axes, n + "/max")], n + "/shifted")
    e = g.op("Exp", [shifted], n + "/exp")
    return g.op("Div", [e, _reduce(g, "ReduceSum", e, axes, n + "/sum")], n)


def _rescaling(g, layer, x):
    scale = np.asarray(layer.scale, np.float32)
    offset = np.asarray(layer.offset, np.float32)
    y = g.op("Mul", [x, g.const(scale, layer.name + "/scale")], layer.name + "/scaled")
    return g.op("Add", [y, g.const(offset, layer.name + "/offset")], layer.name)


def _normalization_stats(layer):
    """(mean, denominator) shaped (1, *per-sample shape with 1 on reduced axes)."""
    shape = tuple(layer.input_shape[1:])
    keep, _ = layer._axes(len(shape) + 1)
    kept = tuple(shape[d - 1] for d in keep)
    if layer.input_mean is None:
        mean, var = layer.get_weights()[0], layer.get_weights()[1]
    else:  # given: aligned right to the kept axes, then broadcast
        m = np.asarray(layer.input_mean, np.float32)
        v = np.asarray(layer.input_variance, np.float32)
        lead = (1,) * (len(kept) - m.ndim)
        mean = np.broadcast_to(m.reshape(lead + m.shape), kept)
        var = np.broadcast_to(v.reshape(lead + v.shape), kept)
    bshape = (1,) + tuple(shape[d - 1] if d in keep else 1 for d in range(1, len(shape) + 1))
    mean = np.asarray(mean, np.float32).reshape(bshape)
    den = np.maximum(np.sqrt(np.maximum(np.asarray(var, np.float32), 0)), np.float32(1e-7))
    return mean, den.astype(np.float32).reshape(bshape)


def _normalization(g, layer, x):
    mean, den = _normalization_stats(layer)
    m, d, n = g.const(mean, layer.name + "/mean"), g.const(den, layer.name + "/std"), layer.name
    if layer.invert:
        return g.op("Add", [g.op("Mul", [x, d], n + "/scaled"), m], n)
    return g.op("Div", [g.op("Sub", [x, m], n + "/centered"), d], n)


def _depthwise_weight(layer, kernel):
    """Keras (*window, C, M) -> ONNX grouped Conv weight (C * M, 1, *window)."""
    rank = len(layer.kernel_size)
    c, mult = kernel.shape[-2], kernel.shape[-1]
    w = np.transpose(kernel, (rank, rank + 1, *range(rank)))  # (C, M, *window)
    return np.ascontiguousarray(w.reshape(c * mult, 1, *kernel.shape[:rank]))


def _depthwise(g, layer, x):
    weights = layer.get_weights()
    rank, c = len(layer.kernel_size), layer.input_shape[-1]
    attrs = _window_attrs(layer, layer.kernel_size, layer.dilation_rate)
    inputs = [g.const(_depthwise_weight(layer, weights[0]), layer.name + "/kernel")]
    separable = isinstance(layer, _SeparableConv)
    if layer.use_bias and not separable:
        inputs.append(g.const(weights[1], layer.name + "/bias"))
    y = _channels_first(g, x, rank, layer.name + "/depthwise", "Conv", inputs, group=c, **attrs)
    if separable:
        pk = weights[1].reshape(weights[1].shape[-2:])  # (C * M, F)
        y = g.op("MatMul", [y, g.const(pk, layer.name + "/pointwise_kernel")],
                 layer.name + "/pointwise")
        if layer.use_bias:
            y = g.op("Add", [y, g.const(weights[2], layer.name + "/bias")], layer.name + "/biased")
    return _activation(g, layer.activation, y, layer.name)


CONVERTERS = {ReLU: _relu, LeakyReLU: _leaky_relu, ELU: _elu, PReLU: _prelu, Softmax: _softmax,
              Rescaling: _rescaling, ActivityRegularization: _identity,
              GaussianNoise: _identity, GaussianDropout: _identity, _SpatialDropout: _identity,
              Normalization: _normalization, _DepthwiseConv: _depthwise,
              _SeparableConv: _depthwise}
