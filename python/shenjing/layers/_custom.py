"""Custom layers (``Layer`` subclasses with ``call``): traced once, never called per batch.

Called on symbolic tensors, a custom layer builds itself (``build(input_shape)``), then runs
its ``call`` once on placeholder tensors: every ``shenjing.ops`` call, sub-layer call and
Variable use inside records graph nodes. The layer's node in the calling graph keeps that
traced graph (its ``trace``); a model hands the traced nodes to the C++ core in its place, so
training runs them in C++. Called on arrays, ``call`` simply runs eagerly with NumPy ops.
"""
import inspect

import numpy as np

from shenjing.layers.node import KerasTensor, Node


class Trace:
    """What one call of a custom layer recorded: placeholder inputs, outputs, the nodes
    between them (topological order) and the losses ``add_loss`` added."""

    def __init__(self, inputs, outputs, nodes, losses):
        self.inputs, self.outputs, self.nodes, self.losses = inputs, outputs, nodes, losses


def _structure_map(x, fn):
    if isinstance(x, (list, tuple)):
        return type(x)(_structure_map(v, fn) for v in x)
    if isinstance(x, dict):
        return {k: _structure_map(v, fn) for k, v in x.items()}
    return fn(x)


def _flat(x):
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _flat(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _flat(v)]
    return [x]


def _shape_struct(x):
    return _structure_map(x, lambda t: tuple(t.shape) if hasattr(t, "shape") else None)


def _call_kwargs(layer, training, mask, kwargs):
    """The keyword arguments ``call`` accepts: training/mask only when its signature has them
    (as Keras passes them)."""
    params = inspect.signature(layer.call).parameters
    out = dict(kwargs)
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if training is not None and ("training" in params or takes_any):
        out["training"] = training
    if mask is not None:
        out["mask"] = mask
    return out


def maybe_build(layer, inputs):
    if layer.built:
        return
    shapes = _shape_struct(inputs)
    if type(layer).build is not _base_build():
        layer.build(shapes)
    layer.built = True


def _base_build():
    from shenjing.layers.base import Layer
    return Layer.build


def call(layer, inputs, args, training, mask, kwargs):
    """``layer(inputs, ...)`` for a custom layer: traced on symbolic tensors, eager on arrays."""
    from shenjing.ops import _trace
    flat = _flat(inputs)
    if not any(isinstance(t, KerasTensor) for t in flat):
        global _eager_depth
        if _eager_depth == 0:
            _reset_losses(layer)  # Keras: losses are reset at each top-level call
        _eager_depth += 1
        try:
            maybe_build(layer, inputs)
            out = layer.call(inputs, *args, **_call_kwargs(layer, training, mask, kwargs))
        finally:
            _eager_depth -= 1
        return _structure_map(out, lambda v: np.asarray(v) if hasattr(v, "__array__") and
                              not isinstance(v, np.ndarray) else v)
    layer._check_training_arg(training)
    tensors = [_trace.as_tensor(t) for t in flat]
    maybe_build(layer, inputs)
    it = iter([KerasTensor(t.shape, t.dtype, name=t.name) for t in tensors])
    placeholders = _structure_map(inputs, lambda _: next(it))
    holders = _flat(placeholders)
    losses = []
    _trace._scopes.append(layer)
    layer._trace_losses = losses
    try:
        outs = layer.call(placeholders, *args, **_call_kwargs(layer, training, mask, kwargs))
    finally:
        _trace._scopes.pop()
        layer._trace_losses = None
    several = isinstance(outs, (list, tuple))
    if several and not (outs and all(not isinstance(o, (list, tuple, dict)) for o in outs)) \
            or isinstance(outs, dict):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) returned "
                         f"{type(outs).__name__} {outs!r:.100}: a custom layer returns a tensor "
                         f"or a flat list/tuple of tensors.")
    results = [_trace.as_tensor(o) for o in (outs if several else [outs])]
    from shenjing.functional import graph_nodes
    nodes = graph_nodes(holders, results + losses, layer.name)
    made = [KerasTensor(r.shape, r.dtype, name=layer.name) for r in results]
    out = type(outs)(made) if several else made[0]
    node = Node(layer, inputs, tensors, out)
    node.trace = Trace(holders, results, nodes, losses)
    if layer.output_shape is None:
        layer.input_shape = _shape_struct(inputs)
        layer.output_shape = [r.shape for r in results] if several else results[0].shape
    return out


_eager_depth = 0


def _reset_losses(layer):
    layer._eager_losses = []
    for sub in getattr(layer, "_tracked_layers", lambda: [])():
        _reset_losses(sub)


def losses(layer):
    """Keras's ``layer.losses``: add_loss values of the last call on arrays and the weight
    penalties of regularized Variables, this layer's then its sub-layers'."""
    from shenjing.layers.base import Layer
    out = list(getattr(layer, "_eager_losses", []))
    if isinstance(layer, Layer):
        for v in layer._own_variables():
            if v.regularizer is not None:
                from shenjing import regularizers
                out.append(np.float32(regularizers.get(v.regularizer)(v.value)))
    for sub in getattr(layer, "_tracked_layers", lambda: [])():
        out += losses(sub)
    return out


def add_loss(layer, value):
    """``self.add_loss(x)`` in a traced call: x (summed to a scalar) joins the training loss."""
    from shenjing import ops
    from shenjing.ops import _trace
    losses = getattr(layer, "_trace_losses", None)
    if losses is None:
        if isinstance(value, KerasTensor):
            raise ValueError(f"Layer '{layer.name}': add_loss() on a symbolic tensor must be "
                             f"called inside call().")
        layer.__dict__.setdefault("_eager_losses", []).append(
            np.float32(np.sum(np.asarray(value))))
        return
    t = _trace.as_tensor(value)
    if t.shape:
        t = ops.sum(t)
    losses.append(t)
