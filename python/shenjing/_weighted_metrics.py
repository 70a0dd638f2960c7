"""Keras's ``compile(weighted_metrics=...)`` (``CompileMetrics`` in
``trainers/compile_utils.py``): metrics averaged with the sample weights (sum(w * value) /
sum(w) over the epoch; plain ``metrics`` stay unweighted). The core computes them after every
output's unweighted metrics and reports each output's weight sum after its weighted metrics
(``OutputTraining::weighted_metrics``); ``slices`` says where, for ``Trainer._logs``."""
from shenjing import _compile_utils as cu, metrics as metrics_mod


def resolve_ids(weighted_metrics, outs):
    """compile(): the identifiers per output (model order), checked before anything changes."""
    if weighted_metrics is None:
        return [[] for _ in outs.names]
    if not isinstance(weighted_metrics, (list, tuple, dict)):
        raise ValueError(
            "Expected `weighted_metrics` argument to be a list, tuple, or dict. Received "
            f"instead: weighted_metrics={weighted_metrics} of type {type(weighted_metrics)}")
    ids = cu.resolve_metric_ids(weighted_metrics, outs)
    cu.check_metric_ids(ids)
    for mids in ids:
        for m in mids:
            _check_weighable(metrics_mod.get(m, (1, 2), (1, 2)))
    return ids


_WEIGHABLE = range(5)  # MetricKind codes metric_sum weighs: the accuracies, mse, mae


def is_state(m):
    return bool(getattr(m, "_state", False))


def _check_weighable(m):
    if is_state(m):
        return  # AUC, Precision, ...: their core update weighs each row
    if getattr(m, "_code", None) not in _WEIGHABLE or getattr(m, "_traced", False):
        raise ValueError(
            f"weighted_metrics: metric '{m.name}' is not one of the built-in metrics the core "
            f"can weigh (accuracy, binary/categorical/sparse_categorical accuracy, mse, mae, "
            f"and the state metrics such as AUC, Precision, Recall); pass it in metrics= "
            f"instead.")


def resolve(model, ys, shapes):
    """At the first data (as the unweighted metrics): the metric objects of each output, and
    the core told which to weigh. Returns the weighted metrics per output."""
    ids = getattr(model, "_weighted_ids", None) or [[] for _ in shapes]
    per_output = []
    for k, mids in enumerate(ids):
        ms = [model._metric_object(m, ys[k].shape, shapes[k]) for m in mids]
        for m in ms:
            _check_weighable(m)
        per_output.append(ms)
    model._weighted = per_output
    apply(model)
    return per_output


def slices(per_output, start):
    """Where the core puts the weighted mean metrics' sums, from index ``start`` of a batch's
    metric sums: for each output with some, one sum of weight * value per metric and then the
    output's sum of weights. (value index, weight-sum index) per such metric in order (the
    weighted state metrics' states come with the other states: _trainer_compile)."""
    out, pos = [], start
    for ms in per_output:
        ms = [m for m in ms if not is_state(m)]
        if ms:
            out += [(pos + j, pos + len(ms)) for j in range(len(ms))]
            pos += len(ms) + 1
    return out, pos - start


def apply(model):
    """Tells the core the weighted metrics (again after each compile of the core)."""
    per_output = getattr(model, "_weighted", None)
    if per_output is not None and model._core is not None:
        model._core.set_weighted_metrics([[m._code for m in ms if not is_state(m)]
                                          for ms in per_output])


def weighted_names(out_names, metrics, weighted):
    """(output, log name) of each weighted metric, as Keras's CompileMetrics.result(): its
    own name (prefixed by the output's with several outputs) unless an unweighted metric took
    it, then ``weighted_<name>`` (then ``_1``, ``_2``, ...)."""
    prefix = len(out_names) > 1
    seen = {}
    for out, ms in zip(out_names, metrics):
        for m in ms:
            name = f"{out}_{m.name}" if prefix else m.name
            if name not in seen:
                seen[name] = 1
            else:
                seen[name] += 1
    result = []
    for k, (out, ms) in enumerate(zip(out_names, weighted)):
        for m in ms:
            name = f"{out}_{m.name}" if prefix else m.name
            if name not in seen:
                seen[name] = 1
            else:
                name = f"{out}_weighted_{m.name}" if prefix else f"weighted_{m.name}"
                if name not in seen:
                    seen[name] = 1
                else:
                    index = seen[name]
                    seen[name] += 1
                    name = f"{name}_{index}"
            result.append((k, name))
    return result


def eval_keys(log_keys, metrics, weighted, trackers):
    """evaluate's list order with weighted metrics, as Keras's _flatten_metrics_in_order:
    'loss', each compiled metric's own name (unweighted, then weighted: a name used by both
    appears twice, as in Keras), the loss trackers, then the other keys sorted."""
    order = ["loss"] + [m.name for ms in list(metrics) + list(weighted) for m in ms] + \
        list(trackers)
    keys = [k for k in order if k in log_keys]
    return keys + sorted(k for k in log_keys if k not in order)
