"""ONNX export of models (``model.export_onnx``): the graph walk; the converter of each layer
is in _onnx_layers.py.

The exporter walks the model's symbolic graph: a Sequential's chain, a functional model's
nodes in topological order, a model used as a layer expanded in place (as the C++ core runs
it), a custom or Lambda layer's call replaced by its traced ops (_onnx_ops.py converts each
primitive op; a Variable becomes one initializer). Each symbolic tensor becomes one ONNX
value, read by as many nodes as read the tensor; a layer called at several nodes (shared
weights) stores its weights once.

Inputs and outputs: a Sequential's graph takes ``input`` and gives ``output``; a functional
model's are named after ``model.input_names`` and ``model.output_names`` (dict keys, else the
names of the layers that made them; a name given twice gets a suffix: ``dense``,
``dense_1``), in the order of ``model.inputs`` and ``model.outputs``. Every input is float32
of shape ``(batch, *shape)`` with the batch axis symbolic (``"batch"``).
"""
import hashlib

import numpy as np

import shenjing
from shenjing import _atomic
from shenjing import _onnx_ops
from shenjing._onnx_layers import converter

DEFAULT_OPSET = 17
# Softmax over one axis (rather than over all axes after it) needs opset 13.
_MIN_OPSET = 13


def export(model, filepath, opset=None):
    """Writes ``model`` (a built Sequential, functional or subclassed model) to ``filepath``
    as an ONNX model; returns filepath. Nothing is written if a layer or op has no conversion."""
    try:
        import onnx
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install onnx") from None
    from shenjing.sequential import Sequential
    opset = _check_opset(onnx, opset)
    inputs, outputs, nodes = model._graph()
    if isinstance(model, Sequential):
        in_names, out_names = ["input"], ["output"]
    else:
        names = _unique([*model.input_names, *model.output_names])
        in_names, out_names = names[:len(inputs)], names[len(inputs):]
    g = _Graph(onnx, opset, reserved=in_names + out_names)
    values = {id(t): name for t, name in zip(inputs, in_names)}
    _walk(g, nodes, values)
    for t, name in zip(outputs, out_names):
        g.name_output(values[id(t)], name)
    proto = g.model(model.name, [(n, t.shape) for n, t in zip(in_names, inputs)],
                    [(n, t.shape) for n, t in zip(out_names, outputs)])
    onnx.checker.check_model(proto, full_check=True)
    _atomic.atomic_write(filepath, lambda f: f.write(proto.SerializeToString()))
    return filepath


def _walk(g, nodes, values):
    """Writes ``nodes`` (in topological order) into ``g``. ``values`` maps id(symbolic tensor)
    to its ONNX value name: given for the inputs, added for each node's output. A model used
    as a layer writes its own nodes in place, on a mapping of its own (it may be called twice)."""
    from shenjing.models import Model
    from shenjing.ops._trace import Operation
    for node in nodes:
        layer = node.layer
        xs = [values[id(t)] for t in node.inputs]
        trace = getattr(node, "trace", None)
        if trace is not None:
            # A custom or Lambda layer: its traced nodes in its place (add_loss terms are
            # training-only and left out), as Model._emit hands them to the core.
            inner = {id(p): x for p, x in zip(trace.inputs, xs)}
            _walk(g, _needed(trace.nodes, trace.outputs), inner)
            for made, traced in zip(node.outputs, trace.outputs):
                values[id(made)] = inner[id(traced)]
            continue
        if isinstance(layer, Operation):
            values[id(node.output)] = _onnx_ops.convert(g, layer, xs, node)
            continue
        if isinstance(layer, Model):
            layer._check_nested()  # one output, as the core expands it
            inner_inputs, inner_outputs, inner_nodes = layer._graph()
            inner = {id(t): x for t, x in zip(inner_inputs, xs)}
            _walk(g, inner_nodes, inner)
            values[id(node.output)] = inner[id(inner_outputs[0])]
            continue
        if node.call_kwargs.get("initial_state"):
            raise ValueError(f"export_onnx: layer '{layer.name}' ({type(layer).__name__}) "
                             f"takes initial_state tensors, which have no ONNX conversion "
                             f"here yet.")
        if node.call_kwargs.get("mask") is not None:
            # Keras masks skip steps anywhere in a sequence (the state carries over); ONNX's
            # recurrent ops only end sequences early (sequence_lens).
            raise ValueError(f"export_onnx: layer '{layer.name}' ({type(layer).__name__}) "
                             f"reads a mask (from Embedding(mask_zero=True) or Masking); "
                             f"masked steps have no ONNX conversion.")
        convert = converter(layer)
        multi = getattr(layer, "_multi_input", False)
        # Converters read the call's shapes from the layer; every call has the same ones.
        want = layer.input_shape if multi else [layer.input_shape]
        if [tuple(s) for s in want] != [t.shape for t in node.inputs]:
            raise ValueError(f"export_onnx: layer '{layer.name}' was built for input shape(s) "
                             f"{layer.input_shape}, but one of its calls reads "
                             f"{[t.shape for t in node.inputs]}.")
        values[id(node.output)] = convert(g, layer, xs if multi else xs[0])


def _needed(nodes, outputs):
    """The nodes (in order) that ``outputs`` depend on: a trace's add_loss graphs dropped."""
    want, keep = {id(t) for t in outputs}, []
    for node in reversed(nodes):
        if id(node.output) in want:
            keep.append(node)
            want.update(id(t) for t in node.inputs)
    return keep[::-1]


def _dims(shape):
    """ONNX dims of a symbolic shape: the batch axis (None) symbolic."""
    return ["batch" if s is None else s for s in shape]


def _unique(names):
    """The names with a suffix on the second and later uses of one (``a``, ``a_1``)."""
    out, used = [], set()
    for hint in map(str, names):
        name, i = hint, 1
        while name in used:
            name, i = f"{hint}_{i}", i + 1
        used.add(name)
        out.append(name)
    return out


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
    """The nodes and initializers of the graph being built, with unique value names (the
    ``reserved`` ones are left for the graph's inputs and outputs)."""

    def __init__(self, onnx, opset, reserved=("input", "output")):
        self.onnx, self.helper, self.numpy_helper = onnx, onnx.helper, onnx.numpy_helper
        self.opset = opset
        self.nodes, self.initializers = [], []
        self._used = set(reserved)
        self._consts = {}  # (hint, dtype, shape, digest) -> name
        self.sources = {}  # ("variable", id(Variable)) -> its initializer
        self._outputs = {}  # value name -> the graph output that now carries it

    def _fresh(self, hint):
        name, i = hint, 1
        while name in self._used:
            name, i = f"{hint}_{i}", i + 1
        self._used.add(name)
        return name

    def const(self, value, hint, dtype=np.float32):
        """An initializer; asked again for the same ``hint`` and value (a layer's weights at
        its second node), the one already stored."""
        value = np.ascontiguousarray(value, dtype)
        key = (hint, value.dtype.str, value.shape, hashlib.sha256(value.tobytes()).digest())
        if key not in self._consts:
            self._consts[key] = name = self._fresh(hint)
            self.initializers.append(self.numpy_helper.from_array(value, name))
        return self._consts[key]

    def op(self, op_type, inputs, hint, **attrs):
        """Appends one node; returns the name of its output."""
        out = self._fresh(hint)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out],
                                                name=self._fresh(hint + "/" + op_type), **attrs))
        return out

    def name_output(self, x, name="output"):
        """Makes value x the graph output ``name``: the node computing x writes ``name``
        instead (its readers follow), or, for a graph input or a value that is already
        another output (no node writes x any more), an Identity node copies it."""
        producer = next((n for n in self.nodes if x in n.output), None)
        if producer is None:
            self.nodes.append(self.helper.make_node(
                "Identity", [self._outputs.get(x, x)], [name], name=name))
            return
        producer.output[0] = name
        for node in self.nodes:
            for i, v in enumerate(node.input):
                if v == x:
                    node.input[i] = name
        self._outputs[x] = name

    def model(self, name, inputs, outputs):
        """The ModelProto; ``inputs`` and ``outputs`` are (value name, shape) pairs (an
        output of traced ops may lack the batch axis: a reduction over it)."""
        h, float32 = self.helper, self.onnx.TensorProto.FLOAT
        graph = h.make_graph(
            self.nodes, name,
            [h.make_tensor_value_info(v, float32, ["batch", *s[1:]]) for v, s in inputs],
            [h.make_tensor_value_info(v, float32, _dims(s)) for v, s in outputs],
            self.initializers)
        opset_ids = [h.make_opsetid("", self.opset)]
        proto = h.make_model(graph, opset_imports=opset_ids, producer_name="shenjing",
                             producer_version=shenjing.__version__)
        # make_model stamps the newest IR version, which runtimes older than the onnx package
        # refuse; the oldest one that knows the opset loads everywhere the opset does.
        proto.ir_version = h.find_min_ir_version_for(opset_ids)
        return proto
