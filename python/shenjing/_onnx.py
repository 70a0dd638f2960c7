"""ONNX export of models (``model.export_onnx``); the layer converters are in _onnx_layers.py.
"""
import numpy as np

import shenjing
from shenjing import _atomic
from shenjing._onnx_layers import converter

DEFAULT_OPSET = 17
# Softmax over one axis (rather than over all axes after it) needs opset 13.
_MIN_OPSET = 13


def export(model, filepath, opset=None):
    """Writes ``model`` (a built Sequential) to ``filepath`` as an ONNX model; returns filepath."""
    try:
        import onnx
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install onnx") from None
    opset = _check_opset(onnx, opset)
    g = _Graph(onnx, opset)
    x = "input"
    for layer in model.layers:
        x = converter(layer)(g, layer, x)
    g.name_output(x)
    proto = g.model(model, onnx)
    onnx.checker.check_model(proto, full_check=True)
    _atomic.atomic_write(filepath, lambda f: f.write(proto.SerializeToString()))
    return filepath


def _check_opset(onnx, opset):
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or \
            not _MIN_OPSET <= opset <= newest:
        raise ValueError(f"export_onnx: opset must be an integer from {_MIN_OPSET} to {newest} "
                         f"(this onnx package's newest), received {opset!r}.")
    return int(opset)


class _Graph:
    """The nodes and initializers of the graph being built, with unique tensor names."""

    def __init__(self, onnx, opset):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.opset = opset
        self.nodes, self.initializers = [], []
        self._used = {"input", "output"}

    def _fresh(self, hint):
        name, i = hint, 1
        while name in self._used:
            name, i = f"{hint}_{i}", i + 1
        self._used.add(name)
        return name

    def const(self, value, hint, dtype=np.float32):
        name = self._fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type, inputs, hint, **attrs):
        """Appends one node; returns the name of its output."""
        out = self._fresh(hint)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out],
                                                name=self._fresh(hint + "/" + op_type), **attrs))
        return out

    def name_output(self, x):
        """Makes tensor x the graph output "output" (a model of Dropouts only computes none)."""
        if self.nodes and self.nodes[-1].output[0] == x:
            self.nodes[-1].output[0] = "output"
        else:
            self.nodes.append(self.helper.make_node("Identity", [x], ["output"], name="output"))

    def model(self, model, onnx):
        h = self.helper
        io = [h.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", *shape[1:]])
              for name, shape in (("input", model.input_shape), ("output", model.output_shape))]
        graph = h.make_graph(self.nodes, model.name, io[:1], io[1:], self.initializers)
        opset_ids = [h.make_opsetid("", self.opset)]
        proto = h.make_model(graph, opset_imports=opset_ids, producer_name="shenjing",
                             producer_version=shenjing.__version__)
        # make_model stamps the newest IR version, which runtimes older than the onnx package
        # refuse; the oldest one that knows the opset loads everywhere the opset does.
        proto.ir_version = h.find_min_ir_version_for(opset_ids)
        return proto
