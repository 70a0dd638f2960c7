"""ONNX converter of LayerNormalization (used by _onnx_layers.py).

From opset 17 the standard form is ONNX's own LayerNormalization node (it normalizes over
every axis from ``axis`` on, which is what the layer allows: trailing axes). Before opset 17,
and for Keras's ``rms_scaling`` variant (x / sqrt(var + eps) * gamma, not centred), the graph
spells the formula out with ReduceMean, as the core computes it.
"""
import numpy as np


def _first_axis(layer):
    """The first normalized axis, counting the batch axis (the core allows trailing axes
    only, so they are [first, rank))."""
    rank = len(layer.input_shape)
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    return min(a % rank for a in axes)


def _reduce_mean(g, x, axes, hint):
    if g.opset < 18:  # axes moved from an attribute to an input in opset 18
        return g.op("ReduceMean", [x], hint, axes=axes, keepdims=1)
    return g.op("ReduceMean", [x, g.const(axes, hint + "/axes", np.int64)], hint, keepdims=1)


def layer_norm(g, layer, x):
    name, first = layer.name, _first_axis(layer)
    shape = tuple(layer.input_shape[first:])
    eps = float(np.float32(layer.epsilon))
    gamma = layer.gamma if (layer.scale or layer.rms_scaling) else np.ones(shape, np.float32)
    has_beta = layer.center and not layer.rms_scaling
    beta = layer.beta if has_beta else np.zeros(shape, np.float32)
    if g.opset >= 17 and not layer.rms_scaling:
        return g.op("LayerNormalization", [x, g.const(gamma, name + "/gamma"),
                                           g.const(beta, name + "/beta")],
                    name, axis=first, epsilon=eps)
    axes = list(range(first, len(layer.input_shape)))
    mean = _reduce_mean(g, x, axes, name + "/mean")
    d = g.op("Sub", [x, mean], name + "/centred")
    var = _reduce_mean(g, g.op("Mul", [d, d], name + "/squares"), axes, name + "/variance")
    std = g.op("Sqrt", [g.op("Add", [var, g.const(eps, name + "/epsilon")], name + "/var_eps")],
               name + "/std")
    y = g.op("Div", [x if layer.rms_scaling else d, std], name + "/normalized")
    y = g.op("Mul", [y, g.const(gamma, name + "/gamma")], name + "/scaled")
    if not has_beta:
        return y
    return g.op("Add", [y, g.const(beta, name + "/beta")], name)
