"""Calling a loss object directly, ``loss(y_true, y_pred, sample_weight)``, as Keras 3's
``Loss.__call__``: per-sample losses, optionally weighted, reduced over all of them
("sum_over_batch_size": the weighted sum divided by the number of loss values). On symbolic
tensors (inside a custom layer's ``call``, e.g. keras.io's ``LogisticEndpoint`` passing the
result to ``add_loss``) it is built from ``shenjing.ops`` and traced into the model's graph;
on arrays it is computed eagerly. Training with ``compile(loss=...)`` does not come here: the
core computes built-in losses itself."""
from shenjing import ops
from shenjing.ops import _dispatch


def _mse(t, p, loss):
    return ops.mean(ops.square(ops.subtract(p, t)), axis=-1)


def _mae(t, p, loss):
    return ops.mean(ops.abs(ops.subtract(p, t)), axis=-1)


def _huber(t, p, loss):
    e = ops.abs(ops.subtract(p, t))
    d = loss.delta
    small = ops.multiply(0.5, ops.square(e))
    large = ops.subtract(ops.multiply(d, e), 0.5 * d * d)
    return ops.mean(ops.where(ops.less_equal(e, d), small, large), axis=-1)


def _bce(t, p, loss):
    return ops.mean(ops.binary_crossentropy(t, p, from_logits=loss.from_logits), axis=-1)


def _cce(t, p, loss):
    return ops.categorical_crossentropy(t, p, from_logits=loss.from_logits)


def _scce(t, p, loss):
    if len(t.shape) == len(p.shape) and t.shape[-1] == 1:
        t = ops.squeeze(t, -1)
    return ops.sparse_categorical_crossentropy(t, p, from_logits=loss.from_logits)


_BY_KIND = {0: _mse, 1: _mae, 2: _huber, 3: _bce, 4: _cce, 5: _scce}


def _same_rank(values, weight):
    """Keras's squeeze_or_expand_to_same_rank for (losses, sample_weight)."""
    rv, rw = len(values.shape), len(weight.shape)
    if rw == rv + 1 and weight.shape[-1] == 1:
        weight = ops.squeeze(weight, -1)
    while len(weight.shape) < rv:
        weight = ops.expand_dims(weight, -1)
    return weight


def call(loss, y_true, y_pred, sample_weight=None):
    """``loss(y_true, y_pred, sample_weight)``: a scalar (a float eagerly, a tensor when
    traced)."""
    symbolic = _dispatch.symbolic(y_true, y_pred, sample_weight)
    own_call = type(loss).call is not _base_call(loss)
    fn = None if own_call else _BY_KIND.get(getattr(loss, "_kind", None))
    if fn is not None and symbolic:  # a built-in loss inside traced code
        values = fn(y_true, y_pred, loss)
    else:  # the built-in NumPy formula, or user code written with ops (traced or eager)
        values = loss.call(y_true, y_pred)
    if sample_weight is not None:
        weight = ops.convert_to_tensor(sample_weight, dtype="float32") \
            if not symbolic else sample_weight
        values = ops.multiply(values, _same_rank(values, weight))
    if not symbolic:
        import numpy as np
        values = np.asarray(values, dtype=np.float64)
        return float(values.sum() / max(values.size, 1)) if values.ndim else float(values)
    if len(values.shape) == 0:
        return values
    return ops.mean(values)


def _base_call(loss):
    """The ``call`` of the first shenjing class in the loss's type (user subclasses that
    override ``call`` write their own per-sample formula)."""
    for cls in type(loss).__mro__:
        if cls.__module__.startswith("shenjing.") and "call" in vars(cls):
            return vars(cls)["call"]
    return None
