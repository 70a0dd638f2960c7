"""Symbolic tensors and the nodes that connect them (Keras's KerasTensor and Node).

``Input(shape)`` makes a symbolic tensor; calling a layer on symbolic tensors records a Node
(the layer, the tensors it read, the tensor it made) and returns the new tensor. A functional
``Model(inputs, outputs)`` walks these nodes back from its outputs; nothing here computes: the
C++ core runs the graph.
"""
import numbers

import numpy as np


class KerasTensor:
    """A symbolic tensor: its batched ``shape`` (``None`` for the batch axis), ``dtype`` and
    the node that made it (``_keras_history``: (layer, node index, tensor index))."""

    _keras_mask = None  # the bool (batch, timesteps) tensor of its mask, if any (_masking.py)

    def __init__(self, shape, dtype="float32", name=None, node=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self._node = node  # the Node that made this tensor; None for a model input

    @property
    def ndim(self):
        return len(self.shape)

    _index = 0

    @property
    def _keras_history(self):
        node = self._node
        return (node.layer, node.index, self._index) if node else (None, 0, 0)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError("A symbolic tensor (from Input or a layer call) has no values: it only "
                        "describes a model. Build a Model(inputs, outputs) and call predict().")

    def __bool__(self):
        self._no_value()

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    # Operators record primitive ops (shenjing.ops), as on Keras's symbolic tensors.
    def __getitem__(self, key):
        from shenjing.ops.numpy import getitem
        return getitem(self, key)

    def __neg__(self):
        from shenjing import ops
        return ops.negative(self)

    def __abs__(self):
        from shenjing import ops
        return ops.abs(self)

    def __invert__(self):
        from shenjing import ops
        return ops.logical_not(self)

    def __len__(self):
        if self.shape and self.shape[0] is None:
            raise TypeError("len() of a symbolic tensor with a batch axis is unknown until "
                            "the model runs; use ops.shape(x).")
        return self.shape[0]

    def __iter__(self):
        raise TypeError("A symbolic tensor cannot be iterated over; use slicing or "
                        "ops.split / ops.unstack-style indexing instead.")

    def _no_value(self, *args):
        from shenjing.ops._trace import scope_label
        raise TypeError(f"A symbolic tensor{scope_label()} has no value until the model runs: "
                        "Python control flow on tensor values (if/while on a tensor, bool(), "
                        "float(), int()) cannot be traced. Use ops.where for choices that "
                        "depend on values; decisions on shapes and config are fine.")

    __float__ = __int__ = __index__ = __complex__ = _no_value


def _operator(op, reflected=False):
    def method(self, other):
        from shenjing import ops
        fn = getattr(ops, op)
        return fn(other, self) if reflected else fn(self, other)
    method.__name__ = op
    return method


for _name, _op in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                   ("truediv", "divide"), ("floordiv", "floor_divide"), ("mod", "mod"),
                   ("pow", "power"), ("matmul", "matmul"), ("and", "logical_and"),
                   ("or", "logical_or"), ("xor", "logical_xor")]:
    setattr(KerasTensor, f"__{_name}__", _operator(_op))
    setattr(KerasTensor, f"__r{_name}__", _operator(_op, reflected=True))
for _name, _op in [("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                   ("ge", "greater_equal")]:
    setattr(KerasTensor, f"__{_name}__", _operator(_op))


class Node:
    """One call of a layer (or of a model used as a layer) on symbolic tensors."""

    def __init__(self, layer, call_args, inputs, output):
        self.layer = layer
        self.call_args = call_args  # the structure the layer was called on (tensor or list)
        self.call_kwargs = {}  # {"mask": tensor} when the layer read a mask
        self.inputs = list(inputs)  # flat list of KerasTensors
        self.output = output  # a tensor, or a list/tuple of them (a custom layer's outputs)
        self.outputs = list(output) if isinstance(output, (list, tuple)) else [output]
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        for k, t in enumerate(self.outputs):
            t._node = self
            t._index = k  # which of the node's outputs (Keras's tensor index)


def is_symbolic(x):
    """True for a KerasTensor, or a non-empty list/tuple of them."""
    if isinstance(x, KerasTensor):
        return True
    return isinstance(x, (list, tuple)) and len(x) > 0 and \
        all(isinstance(t, KerasTensor) for t in x)


def flatten_tensors(x, what):
    """The KerasTensors of a tensor, a list/tuple or a dict (in key order), or TypeError."""
    if isinstance(x, KerasTensor):
        return [x]
    items = list(x.values()) if isinstance(x, dict) else x
    if isinstance(items, (list, tuple)) and items and \
            all(isinstance(t, KerasTensor) for t in items):
        return list(items)
    raise TypeError(f"{what} must be a symbolic tensor (from shenjing.Input or a layer call), "
                    f"a list or a dict of them; received {type(x).__name__}: {x!r:.200}.")


def check_shape(shape, what):
    """A per-sample shape as a tuple of positive ints or None (an axis of unknown size),
    TypeError/ValueError naming ``what`` otherwise."""
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        items = tuple(shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of integers, received {shape!r}.") from None
    for s in items:
        if s is None:
            continue  # an axis whose size each batch gives (see _dynamic.py)
        if isinstance(s, bool) or not isinstance(s, (numbers.Integral, np.integer)):
            raise TypeError(f"{what} must be a tuple of integers, received {shape!r}.")
        if s <= 0:
            raise ValueError(f"{what} must contain positive integers, received {items}.")
    return tuple(None if s is None else int(s) for s in items)


def node_position(node):
    """Where ``node`` sits in its layer's ``_inbound_nodes`` (Keras's node index)."""
    for i, n in enumerate(node.layer._inbound_nodes):
        if n is node:
            return i
    return node.index


def layers_by_depth(inputs, outputs):
    """Keras 3's ``map_graph`` order: (layers, {depth: [nodes]}).

    A depth-first walk back from each output numbers the layers as it first meets them
    (before their inputs); a node's depth is the longest path from it to an output, a layer's
    the deepest of its nodes. Layers come deepest first, ties in walk order, so
    ``model.layers`` (and the summary and config that follow it) list what Keras lists. An
    input that no output uses comes at depth 0."""
    walk, first_seen, done = [], {}, set()
    for out in outputs:
        stack = [(out._node, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                walk.append(node)
                continue
            first_seen.setdefault(id(node.layer), (len(first_seen), node.layer))
            stack.append((node, True))
            for t in reversed(node.inputs):
                if id(t._node) not in done:
                    stack.append((t._node, False))
    in_graph = {id(n) for n in walk}
    node_depth, layer_depth = {}, {}
    for node in reversed(walk):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        for t in node.inputs:
            if id(t._node) in in_graph:
                node_depth[id(t._node)] = max(depth + 1, node_depth.get(id(t._node), 0))
    by_depth = {}
    for node in walk:
        by_depth.setdefault(node_depth[id(node)], []).append(node)
    for t in inputs:  # inputs no output needs
        if id(t._node.layer) not in layer_depth:
            layer_depth[id(t._node.layer)] = 0
            first_seen[id(t._node.layer)] = (-1, t._node.layer)
            by_depth.setdefault(0, []).append(t._node)
    order = sorted(first_seen.values(), key=lambda s: (-layer_depth[id(s[1])], s[0]))
    return [layer for _, layer in order], by_depth
