"""Custom losses (a function of ``(y_true, y_pred)`` written with ``shenjing.ops``, or a
``keras.losses.Loss`` subclass with ``call``), traced into the model's graph.

At build, each custom loss runs once on a ``y_true`` tensor (filled by the core with the
output's targets of each batch, ``add_target``) and the output; the core takes the mean of
what it returns as that output's loss (Keras's "sum_over_batch_size"), with its gradient
through the traced ops. The targets' per-sample shape is the output's until ``fit`` sees data
of another shape (sparse labels, say); the graph is then traced again for it.
"""
from shenjing.layers.node import KerasTensor


class NoLoss:
    """An output compile() gave no loss (``loss=None``, ``[None, ...]`` or a dict without its
    name), as Keras allows: it adds nothing to the loss (a constant 0 in the graph), takes no
    targets, and logs no ``<output>_loss``."""

    _traced = True
    _kind = None
    name = None

    def call(self, y_true, y_pred):
        import numpy as np
        from shenjing.ops import _trace
        return _trace.as_tensor(np.zeros((), np.float32))

    def _spec(self):
        raise AssertionError("NoLoss is traced, never a built-in loss spec.")


def is_custom(loss):
    """Whether a resolved Loss is traced (user code) rather than a built-in C++ loss."""
    return not type(loss).__module__.startswith("shenjing.") or \
        getattr(loss, "_traced", False)


def target_shapes(model):
    """Per output: the per-sample shape its custom loss's y_true was (or will be) traced for."""
    shapes = getattr(model, "_target_shapes", None)
    outs = [tuple(t.shape[1:]) for t in model._graph_outputs()]
    if shapes is None or len(shapes) != len(outs):
        shapes = list(outs)
    return shapes


def traced_metrics(model):
    """Per output, the traced (function) metrics resolved at the last fit/evaluate."""
    metrics = getattr(model, "_metrics", None) or []
    return [[m for m in ms if getattr(m, "_traced", False)] for ms in metrics]


def emit(model, core, ids, outputs):
    """Adds the graphs of custom losses and traced metrics to ``core``; returns ({output:
    core tensor of its per-sample loss values}, {output: [metric value tensors]})."""
    plan = getattr(model, "_loss_plan", None) or []
    shapes = target_shapes(model)
    y_true = {}  # output -> core target tensor, made on first need

    def trace(k, fn):
        return _trace_one(model, core, ids, outputs, k, fn, shapes[k], y_true)
    losses = {k: trace(k, loss) for k, (loss, _) in enumerate(plan) if is_custom(loss)}
    metrics = {k: [trace(k, m) for m in ms] for k, ms in enumerate(traced_metrics(model)) if ms}
    # Custom stateful metrics: their variables' increments, one unbatched tensor each.
    model._state_tensors, model._metric_increments = {}, {}
    for k, ms in enumerate(stateful_metrics(model)):
        for m in ms:
            tensors = _trace_one(model, core, ids, outputs, k, m, shapes[k], y_true,
                                 increments=model._metric_increments)
            model._state_tensors.setdefault(k, []).extend(tensors)
    return losses, metrics


def stateful_metrics(model):
    """Per output, the custom stateful metrics (Metric subclasses with update_state)."""
    from shenjing._metric_eager import is_eager
    from shenjing.metrics import _stateful
    metrics = getattr(model, "_metrics", None) or []
    return [[m for m in ms if _stateful(m) and not is_eager(m)] for ms in metrics]


def _trace_one(model, core, ids, outputs, k, fn, shape, y_true, increments=None):
    """Traces ``fn.call(y_true, y_pred)`` for output k into core; returns its tensor. With
    ``increments`` (a dict): traces a stateful metric's update_state instead, records its
    [(variable, increment)] there under id(fn) and returns the increments' tensors."""
    from shenjing.functional import graph_nodes
    from shenjing.ops import _trace
    t_true = KerasTensor((None,) + tuple(shape), "float32", name="y_true")
    t_pred = KerasTensor(outputs[k].shape, outputs[k].dtype, name="y_pred")
    _trace._scopes.append(fn)
    try:
        if increments is None:
            values = [_trace.as_tensor(fn.call(t_true, t_pred))]
        else:
            from shenjing import _metric_custom
            recorded = _metric_custom.trace_update(fn, t_true, t_pred)
            increments[id(fn)] = recorded
            values = [t for _, t in recorded]
    finally:
        _trace._scopes.pop()
    nodes = graph_nodes([t_true, t_pred], values, getattr(fn, "name", None) or "loss")
    ids[id(t_pred)] = ids[id(outputs[k])]
    if any(t is t_true for node in nodes for t in node.inputs):  # the targets are read
        if k not in y_true:
            y_true[k] = core.add_target(k, list(shape))
        ids[id(t_true)] = y_true[k]
    model._emit(core, nodes, ids, {}, model._graph_order, True)
    return [ids[id(v)] for v in values] if increments is not None else ids[id(values[0])]
