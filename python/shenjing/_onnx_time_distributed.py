"""ONNX converter of TimeDistributed (used by _onnx_layers.py): the (batch, T, ...) input
reshaped to (batch * T, ...) slices, the wrapped layer's own converter on them, and the result
reshaped to (batch, T, ...), as the core runs it. The wrapped layer's shapes are those of one
slice (layers/time_distributed.py sets them), which is what its converter reads."""
import numpy as np


def time_distributed(g, layer, x):
    from shenjing._onnx_layers import converter  # (that module imports this one)
    inner, name = layer.layer, layer.name
    if getattr(inner, "_multi_input", False):
        raise ValueError(f"export_onnx: TimeDistributed '{name}' wraps a merge layer.")
    steps = layer.input_shape[1]
    slices = g.op("Reshape", [x, g.const([-1, *layer.input_shape[2:]], name + "/slices_shape",
                                         np.int64)], name + "/slices")
    y = converter(inner)(g, inner, slices)
    return g.op("Reshape", [y, g.const([-1, steps, *layer.output_shape[2:]], name + "/shape",
                                       np.int64)], name)
