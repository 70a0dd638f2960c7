"""Custom layers (``Layer`` subclasses with ``call``): traced once, never called per batch.

Called on symbolic tensors, a custom layer builds itself (``build(input_shape)``), then runs
its ``call`` once on placeholder tensors: every ``shenjing.ops`` call, sub-layer call and
Variable use inside records graph nodes. The layer's node in the calling graph keeps that
traced graph (its ``trace``); a model hands the traced nodes to the C++ core in its place, so
training runs them in C++. Called on arrays, ``call`` simply runs eagerly with NumPy ops.
"""
import inspect

import numpy as np

from shenjing._thread_stack import ThreadStack
from shenjing.layers.node import KerasTensor, Node


class Trace:
    """What one call of a custom layer recorded: placeholder inputs, outputs, the nodes
    between them (topological order) and the losses ``add_loss`` added."""

    def __init__(self, inputs, outputs, nodes, losses):
        self.inputs, self.outputs, self.nodes, self.losses = inputs, outputs, nodes, losses


class _Spread(list):
    """A custom layer's symbolic positional arguments, ``layer(a, b)``: traced as inputs and
    passed to ``call`` as separate arguments again."""


def _structure_map(x, fn):
    if isinstance(x, _Spread):
        return _Spread(_structure_map(v, fn) for v in x)
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
        if not _eager_calls:
            _reset_losses(layer)  # Keras: losses are reset at each top-level call
        _eager_calls.append(layer)
        try:
            maybe_build(layer, inputs)
            out = layer.call(inputs, *args, **_call_kwargs(layer, training, mask, kwargs))
        finally:
            _eager_calls.pop()
        return _structure_map(out, lambda v: np.asarray(v) if hasattr(v, "__array__") and
                              not isinstance(v, np.ndarray) else v)
    layer._check_training_arg(training)
    spread = any(isinstance(t, KerasTensor) for t in _flat(list(args)))
    if spread:  # call(targets, logits): symbolic positional arguments are traced inputs too
        build_inputs, inputs, args = inputs, _Spread([inputs, *args]), ()
        flat = _flat(list(inputs))
    else:
        build_inputs = inputs
    tensors = [_trace.as_tensor(t) for t in flat]
    # Keras passes the input's mask to a call() that takes `mask`: it becomes a traced input.
    from shenjing.layers import _masking
    takes_mask = "mask" in inspect.signature(layer.call).parameters
    in_mask = _masking.call_mask(layer, tensors, mask) if takes_mask or mask is not None \
        else (tensors[0]._keras_mask if len(tensors) == 1 else None)
    if mask is not None and not isinstance(mask, KerasTensor):
        raise TypeError(f"Layer '{layer.name}': mask must be a symbolic tensor, received "
                        f"{mask!r:.100}.")
    mask = in_mask if takes_mask else None
    if mask is not None:
        tensors = tensors + [mask]
    maybe_build(layer, build_inputs)
    if training is None and _takes_training(layer):
        # Keras runs call(training=True) in fit and training=False in predict: both must
        # trace to the same graph, as shenjing runs one graph (Dropout and BatchNormalization
        # layers switch inside the core).
        outs, trace = _trace_once(layer, inputs, tensors, args, True, mask, kwargs)
        other = _trace_once(layer, inputs, tensors, args, False, mask, kwargs)[1]
        _forget(other, keep=trace)
        if _signature(trace) != _signature(other):
            _forget(trace)
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}): call() computes something "
                f"else with training=True than with training=False. shenjing traces call() "
                f"once into one graph, so training-dependent Python branches cannot run; use "
                f"layers that switch by themselves (Dropout, BatchNormalization) and call them "
                f"with training=training.")
    else:
        outs, trace = _trace_once(layer, inputs, tensors, args, training, mask, kwargs)
    results = trace.outputs
    several = isinstance(outs, (list, tuple))
    made = [KerasTensor(r.shape, r.dtype, name=layer.name) for r in results]
    out = type(outs)(made) if several else made[0]
    out_mask = _masking.output_mask(layer, inputs, in_mask) if not several else None
    node = Node(layer, inputs, tensors, out)
    node.trace = trace
    if mask is not None:
        node.call_kwargs = {"mask": mask}
    if not several:
        out._keras_mask = out_mask
    if layer.output_shape is None:
        layer.input_shape = _shape_struct(inputs)
        layer.output_shape = [r.shape for r in results] if several else results[0].shape
    return out


def _takes_training(layer):
    params = inspect.signature(layer.call).parameters
    return "training" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _trace_once(layer, inputs, tensors, args, training, mask, kwargs):
    """Runs call() on placeholders of ``tensors``: (what it returned, its Trace)."""
    from shenjing.functional import graph_nodes
    from shenjing.ops import _trace
    it = iter([KerasTensor(t.shape, t.dtype, name=t.name) for t in tensors])
    placeholders = _structure_map(inputs, lambda _: next(it))
    holders = _flat(placeholders)
    if mask is not None:  # the mask's placeholder: the last traced input
        mask = next(it)
        holders = holders + [mask]
    losses = []
    _trace._scopes.append(layer)
    modes.append(training)
    layer._trace_losses = losses
    if isinstance(placeholders, _Spread):
        args, placeholders = tuple(placeholders[1:]) + tuple(args), placeholders[0]
    try:
        outs = layer.call(placeholders, *args, **_call_kwargs(layer, training, mask, kwargs))
    finally:
        _trace._scopes.pop()
        modes.pop()
        layer._trace_losses = None
    several = isinstance(outs, (list, tuple))
    if several and not (outs and all(not isinstance(o, (list, tuple, dict)) for o in outs)) \
            or isinstance(outs, dict):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) returned "
                         f"{type(outs).__name__} {outs!r:.100}: a custom layer returns a tensor "
                         f"or a flat list/tuple of tensors.")
    results = [_trace.as_tensor(o) for o in (outs if several else [outs])]
    nodes = graph_nodes(holders, results + losses, layer.name)
    return outs, Trace(holders, results, nodes, losses)


def _signature(trace):
    """The trace's computation, independent of the tensor objects: per node, what runs
    (the layer object, or the op and its attributes) and which earlier tensors it reads."""
    pos = {id(t): ("in", k) for k, t in enumerate(trace.inputs)}
    sig = []
    for k, node in enumerate(trace.nodes):
        layer = node.layer
        what = (layer.op, repr(sorted(layer.attrs.items()))) if getattr(layer, "_is_op", False) \
            and layer.op != "variable" else id(layer)
        sig.append((what, tuple(pos.get(id(t), ("other", id(t))) for t in node.inputs)))
        for j, t in enumerate(node.outputs):
            pos[id(t)] = (k, j)
    return sig, [pos.get(id(t)) for t in trace.outputs + trace.losses]


def _forget(trace, keep=None):
    """Takes a discarded trace's calls off the layers it called (their node lists), but the
    nodes the kept trace shares with it (Variables' nodes)."""
    kept = {id(n) for n in keep.nodes} if keep is not None else set()
    for node in trace.nodes:
        if id(node) in kept:
            continue
        if getattr(node, "trace", None) is not None:
            _forget(node.trace, keep)
        calls = node.layer._inbound_nodes
        if any(n is node for n in calls):
            calls[:] = [n for n in calls if n is not node]


# The training value each trace in progress was made with: a sub-layer called with that same
# value just follows the run's mode, which the core switches (not a per-call override).
modes = ThreadStack()


_eager_calls = ThreadStack()  # custom layers running call() on arrays, outermost first


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
