"""What ``compile(loss=..., loss_weights=..., metrics=...)`` means for each output of a model,
following Keras 3's ``keras/src/trainers/compile_utils.py`` (``CompileLoss``,
``CompileMetrics``): which loss, weight and metrics each output gets, the names the logs use,
the order ``evaluate`` returns them in, and the compile config ``model.save`` writes.

Outputs are named by ``model.output_names`` (the dict keys for a model built with dict outputs,
else the producing layers' names). A list given for a dict-output model maps to the outputs in
sorted key order, as Keras flattens dicts (``tree.flatten`` sorts keys).
"""
import numbers

from shenjing import _config, losses as losses_mod, metrics as metrics_mod

_CONFIG_KEYS = {"module", "class_name", "config", "registered_name"}


def is_leaf(v):
    """One loss or metric identifier (name, object, class, function or Keras config dict),
    as opposed to a list or dict of them."""
    if isinstance(v, dict):
        return isinstance(v.get("class_name"), str) and set(v) <= _CONFIG_KEYS
    return not isinstance(v, (list, tuple))


class Outputs:
    """A model's output names in model order, and where list-form arguments go."""

    def __init__(self, names, is_dict):
        self.names = list(names)
        self.is_dict = bool(is_dict)
        # list position -> output (dict keys are unique; layer names may repeat)
        self.list_index = [self.names.index(k) for k in sorted(self.names)] if is_dict \
            else list(range(len(self.names)))

    def from_list(self, items):
        """A list in Keras's flattening order as a list in model order."""
        out = [None] * len(self.names)
        for j, item in enumerate(items):
            out[self.list_index[j]] = item
        return out

    def structure(self):
        """The output structure as Keras prints it in errors: ['X', 'X'] or {'a': 'X'}."""
        return {k: "X" for k in self.names} if self.is_dict else ["X"] * len(self.names)


def _weight(w, name):
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not 0 <= w < float("inf"):
        raise ValueError(f"loss_weights: the weight of output '{name}' must be a finite "
                         f"non-negative number, received {w!r}.")
    return float(w)


class DeferredLossError(ValueError):
    """A loss configuration Keras accepts at compile and refuses when training starts."""


def resolve_losses(loss, loss_weights, outs):
    """[(Loss, weight)] per output in model order; ValueError as Keras's CompileLoss.build."""
    n = len(outs.names)
    if loss_weights is not None and not isinstance(loss_weights, (list, tuple, dict)) and \
            (isinstance(loss_weights, bool) or not isinstance(loss_weights, numbers.Real)):
        raise ValueError(
            "Expected `loss_weights` argument to be a float (single output case) or a list, "
            "tuple, or dict (multiple output case). Received instead: "
            f"loss_weights={loss_weights} of type {type(loss_weights)}")
    if loss is None:
        per = [None] * n  # only add_loss() terms (checked when training starts)
        n_losses = 0
    elif is_leaf(loss):
        per = [loss] * n  # one loss for every output
        n_losses = 1
    elif isinstance(loss, dict):
        unknown = [k for k in loss if k not in outs.names]
        if not outs.is_dict and (unknown or len(loss) != n):
            message = (f"Expected keys {outs.names} in loss dict, but found "
                       f"loss.keys()={list(loss.keys())}")
            # Keras raises this when training starts; a dict of only some of the outputs
            # compiles there (keras.io's guide does it), so it does here too.
            raise (ValueError if unknown else DeferredLossError)(message)
        if unknown:
            raise ValueError(f"The path: ({unknown[0]!r},) in the `loss` argument, can't be "
                             f"found in either the model's output (`y_pred`) or in the labels "
                             f"(`y_true`). The model's outputs are {outs.names}.")
        per = [loss.get(k) for k in outs.names]
        n_losses = n
    else:
        if len(loss) != n:
            raise ValueError(f"`loss` is a list of {len(loss)} losses, but the model has {n} "
                             f"output(s) {outs.names}: give one loss per output, a dict keyed "
                             f"by output name, or one loss for every output.")
        per = outs.from_list(list(loss))
        n_losses = n
    for k, item in enumerate(per):
        if item is not None and not is_leaf(item):
            raise ValueError(f"The loss of output '{outs.names[k]}' must be one loss, received "
                             f"{item!r:.200}.")
    from shenjing._loss_graph import NoLoss
    resolved = [NoLoss() if item is None else losses_mod.get(item) for item in per]

    if loss_weights is None:
        weights = [1.0] * n
    elif not isinstance(loss_weights, (list, tuple, dict)):
        if n_losses != 1:
            raise ValueError(f"`loss_weights` must match the number of losses, got {n_losses} "
                             f"losses and 1 weights.")
        weights = [loss_weights] * n
    elif isinstance(loss_weights, dict) and n_losses > 1:
        unknown = [k for k in loss_weights if k not in outs.names]
        missing = [k for k in outs.names if k not in loss_weights]
        if unknown or missing:
            raise ValueError(f"`loss_weights` must have one weight per output, keyed by the "
                             f"output names {outs.names}; received keys {list(loss_weights)}.")
        weights = [loss_weights[k] for k in outs.names]
    else:
        flat = list(loss_weights.values()) if isinstance(loss_weights, dict) else \
            list(loss_weights)
        if len(flat) != n_losses:
            raise ValueError(f"`loss_weights` must match the number of losses, got {n_losses} "
                             f"losses and {len(flat)} weights.")
        weights = flat * n if n_losses == 1 else outs.from_list(flat)
    weights = [_weight(w, k) for w, k in zip(weights, outs.names)]
    return list(zip(resolved, weights))


def loss_order(loss, outs):
    """Output indices in the order Keras builds its per-output losses (and logs their
    ``<output>_loss`` trackers): a dict of losses for a dict-output model in the dict's order,
    otherwise model order."""
    if isinstance(loss, dict) and not is_leaf(loss) and outs.is_dict:
        return [outs.names.index(k) for k in loss]
    return list(range(len(outs.names)))


def resolve_metric_ids(metrics, outs):
    """The metric identifiers of each output (model order), as Keras's CompileMetrics: with one
    output every metric given applies to it; with several, a list with one entry per output
    (an entry: a metric, a list of metrics or None) or a dict keyed by output names."""
    n = len(outs.names)
    if metrics is None or (not is_leaf(metrics) and not metrics):
        return [[] for _ in range(n)]
    if n == 1:
        return [_flatten(metrics)]
    if is_leaf(metrics):
        raise ValueError("Expected `metrics` argument to be a list, tuple, or dict. Received "
                         f"instead: metrics={metrics} of type {type(metrics)}")
    if isinstance(metrics, (list, tuple)) and len(metrics) == n:
        per = outs.from_list(list(metrics))
    elif isinstance(metrics, dict) and set(metrics) <= set(outs.names):
        per = [metrics.get(k) for k in outs.names]
    else:
        raise ValueError(
            "Invalid `metrics`. `metrics` should contain metrics objects and either be a dict "
            f"or a list matching the output names of the functional model {outs.names} or "
            f"match the output structure of the model: {outs.structure()}.\n"
            f"Received: metrics={metrics}")
    out = []
    for k, entry in enumerate(per):
        if entry is None:
            out.append([])
        elif is_leaf(entry):
            out.append([entry])
        elif isinstance(entry, (list, tuple)) and all(is_leaf(m) for m in entry):
            out.append([m for m in entry if m is not None])
        else:
            raise ValueError(f"The metrics of output '{outs.names[k]}' must be a metric or a "
                             f"list of metrics, received {entry!r:.200}.")
    return out


def _flatten(v):
    if is_leaf(v):
        return [] if v is None else [v]
    items = v.values() if isinstance(v, dict) else v
    return [m for item in items for m in _flatten(item)]


def check_metric_ids(per_output):
    """Fails early on unknown metric names (before the model changes)."""
    for ids in per_output:
        for m in ids:
            metrics_mod.get(m, (1, 2), (1, 2))


def metric_names(out_names, per_output):
    """The log keys of the compiled metrics, as Keras's ``CompileMetrics.result()``: the
    metric's name, prefixed ``<output>_`` when the model has several outputs; a name seen
    before gets ``_1``, ``_2``, ..."""
    prefix = len(out_names) > 1
    seen, names = {}, []
    for out, metrics in zip(out_names, per_output):
        for m in metrics:
            name = f"{out}_{m.name}" if prefix else m.name
            if name in seen:
                seen[name] += 1
                name = f"{name}_{seen[name] - 1}"
            else:
                seen[name] = 1
            names.append(name)
    return names


def loss_names(out_names, order):
    """Keras's per-output loss trackers (``<output>_loss``), only with several losses."""
    return [f"{out_names[k]}_loss" for k in order] if len(order) > 1 else []


def flatten_in_order(logs, per_output, tracker_names):
    """``evaluate``'s list, as Keras's ``Trainer._flatten_metrics_in_order``: the values of
    'loss', the compiled metrics' own (unprefixed) names and the loss trackers, in that order,
    for the keys present in logs; then every other key in sorted order (with several outputs,
    the prefixed metric names)."""
    order = ["loss"] + [m.name for ms in per_output for m in ms] + list(tracker_names)
    keys = []
    for name in order:
        if name in logs and name not in keys:
            keys.append(name)
    keys += [k for k in sorted(logs) if k not in keys]
    return keys


# -- the compile config (model.save) ---------------------------------------------------------
def serialize_arg(v):
    """A compile() argument as Keras's compile config holds it: names stay names, objects
    become Keras config dicts, functions their names; lists and dicts keep their structure."""
    if v is None or isinstance(v, (str, bool, numbers.Real)):
        return v.item() if hasattr(v, "item") else v  # numpy scalars as plain numbers
    if isinstance(v, dict) and is_leaf(v):
        return v
    if isinstance(v, dict):
        return {k: serialize_arg(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [serialize_arg(x) for x in v]
    if isinstance(v, type):
        v = v()
    if isinstance(v, losses_mod.LossFunctionWrapper):
        v = v.fn  # a loss function is saved by its (registered) name, as Keras does
    if hasattr(v, "get_config"):
        return _config.serialize(v)
    if callable(v) and getattr(v, "__module__", "").startswith("shenjing."):
        # A built-in function as Keras saves it: by name alone, losses.cosine_similarity (-cos)
        # would load as the metric "cosine_similarity" (+cos).
        return {"module": "builtins", "class_name": "function", "config": v.__name__,
                "registered_name": "function"}
    if callable(v) and not hasattr(v, "get_config"):
        from shenjing import _registry
        return _registry.get_registered_name(v) if hasattr(v, "_registered_name") else \
            getattr(v, "__name__", v)
    return getattr(v, "__name__", v)


def compile_config(optimizer, loss, loss_weights, metrics):
    """Keras 3's compile config: compile()'s arguments as given (names stay names, objects
    become config dicts), so ``model.compile(**config)`` restores them."""
    return {"optimizer": _config.serialize(optimizer), "loss": serialize_arg(loss),
            "loss_weights": serialize_arg(loss_weights), "metrics": serialize_arg(metrics),
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}
