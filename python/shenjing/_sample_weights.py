"""Keras's ``sample_weight`` and ``class_weight`` (``array_data_adapter.py``,
``data_adapter_utils.class_weight_to_sample_weights``, ``losses/loss.py``'s
``squeeze_or_expand_to_same_rank``): checked and shaped once per fit/evaluate call, as one
float32 array per output of ``(samples, W)``: W = 1 (one weight per sample) or one weight per
position of the output but its last axis (temporal weights). The core gathers the batch's rows
by the same indices as y and weights each loss value (``Target::weight``)."""
import numbers

import numpy as np

from shenjing import _checks as checks, _multi_io as mio
from shenjing._loss_graph import NoLoss


class Weights(list):
    """Weights already shaped for the core (one entry per output, an array or None), so a
    call that receives them (fit's validation) does not check them again."""

    def core_arg(self):
        """The batch calls' ``sample_weight``: None, one array, or a list per output."""
        if all(w is None for w in self):
            return None
        return self[0] if len(self) == 1 else list(self)

    def split(self, at):
        return (Weights(None if w is None else w[:at] for w in self),
                Weights(None if w is None else w[at:] for w in self))


def _loss_shape(out_shape):
    """The shape of an output's per-sample loss values: all axes but the last."""
    return tuple(out_shape[:-1])


def _one(w, n, out_shape, label):
    """One output's weights as (n, W) float32, W = 1 or the loss positions; ValueError for a
    shape Keras would not broadcast against the loss values (n, *positions)."""
    w = checks.numeric(w, label)
    if w.ndim == 0 or len(w) != n:
        raise ValueError(f"Data cardinality is ambiguous. Make sure all arrays contain the same "
                         f"number of samples. {label} has {len(w) if w.ndim else 0} samples, "
                         f"x has {n}.")
    checks.check_finite(w, label)
    w = w.astype(np.float32, copy=False)
    loss = (n,) + _loss_shape(out_shape)
    # Keras's squeeze_or_expand_to_same_rank(losses, sample_weight).
    if len(loss) == w.ndim + 1 and loss[-1] == 1:
        loss_v = loss if w.ndim == 1 else loss[:-1]
        w = w.reshape(w.shape + (1,)) if w.ndim == 1 else w
    elif w.ndim == len(loss) + 1 and w.shape[-1] == 1:
        w = w.reshape(w.shape[:-1]) if len(loss) != 1 else w
        loss_v = loss if len(loss) != 1 else loss + (1,)
    else:
        loss_v = loss
    ok = w.ndim == len(loss_v) and all(a in (1, b) for a, b in zip(w.shape[1:], loss_v[1:]))
    if not ok:
        hint = (f" For a sequence output give one weight per time step, shape "
                f"{(n,) + loss[1:]}, or (samples, 1) for one per sample.") if len(loss) > 1 else ""
        raise ValueError(f"{label} of shape {w.shape} does not fit the loss values of the "
                         f"output, of shape {loss} (Keras multiplies them elementwise).{hint}")
    per_sample = int(np.prod(loss[1:], dtype=np.int64))
    if all(a == 1 for a in w.shape[1:]):
        return np.ascontiguousarray(w.reshape(n, 1))
    return np.ascontiguousarray(np.broadcast_to(w, loss_v).reshape(n, per_sample))


def sample_weights(model, sample_weight, n, label="sample_weight"):
    """``sample_weight`` in any form Keras takes (one array; with several outputs a list or a
    dict by output name, or one per-sample array used for every output) as ``Weights``."""
    names = model._out.names
    if sample_weight is None:
        return Weights([None] * len(names))
    if isinstance(sample_weight, Weights):
        return sample_weight
    # An output without a loss weighs nothing: its weights (or their absence) are ignored.
    no_loss = [isinstance(loss, NoLoss) for loss, _ in model._loss_plan]
    if isinstance(sample_weight, dict) and any(no_loss):
        sample_weight = {**{k: None for k, skip in zip(names, no_loss) if skip},
                         **sample_weight}
    weights = _all_outputs(model, sample_weight, n, label)
    return Weights(None if skip else w for w, skip in zip(weights, no_loss))


def _all_outputs(model, sample_weight, n, label):
    names = model._out.names
    shapes = [tuple(s) for s in model._core.output_shapes]
    if len(names) == 1:
        raw = mio._single(sample_weight) if isinstance(sample_weight, (list, tuple)) else \
            sample_weight
        if isinstance(raw, dict):
            raw = mio.flatten(raw, names, True, label, "output")[0]
        return Weights([_one(raw, n, shapes[0], label)])
    if isinstance(sample_weight, (list, tuple, dict)):
        if isinstance(sample_weight, (list, tuple)) and len(sample_weight) != len(names):
            raise ValueError(f"You should provide one `sample_weight` array per output in `y`: "
                             f"the model has {len(names)} outputs {names}, received "
                             f"{len(sample_weight)} arrays.")
        raw = mio.flatten(sample_weight, names, model._out.is_dict, label, "output")
        return Weights(None if w is None else _one(w, n, s, f"{label} for output '{k}'")
                       for w, s, k in zip(raw, shapes, names))
    w = checks.numeric(sample_weight, label)
    if not (w.ndim == 1 or (w.ndim == 2 and w.shape[1] == 1)):
        raise ValueError("For a model with multiple outputs, when providing a single "
                         "`sample_weight` array, it should only have one scalar score per "
                         "sample (i.e. shape `(num_samples,)`). If you want to use non-scalar "
                         "sample weights, pass a `sample_weight` argument with one array per "
                         "model output.")
    one = _one(w.reshape(-1), n, (1,), label)  # one weight per sample, for every output
    return Weights([one] * len(names))


def check_class_weight_model(model):
    """class_weight needs one output with one class per sample (arrays and iterables alike)."""
    if len(model._out.names) > 1:
        raise ValueError("`class_weight` is only supported for Models with a single output.")
    if len(model._core.output_shapes[0]) > 1:
        # Keras would take the argmax over time steps here: a silent nonsense, refused.
        raise ValueError(f"class_weight needs an output with one class per sample; this "
                         f"output has shape {(None,) + tuple(model._core.output_shapes[0])}. "
                         f"Pass sample_weight of shape (samples, steps) instead.")


def class_weights(model, y, class_weight):
    """Keras's class_weight_to_sample_weights for the targets y (float32, checked): the
    class of a sample is its label (rounded), the argmax of a one-hot row, or the value of a
    (n, 1) binary label; classes missing from the dict weigh 1."""
    check_class_weight_model(model)
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be a dict mapping class indices to weights, "
                         f"received {type(class_weight).__name__}.")
    for k, v in class_weight.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
            raise ValueError(f"class_weight: the weight of class {k!r} must be a finite "
                             f"number, received {v!r}.")
    labels = y
    if labels.ndim > 1:
        labels = np.argmax(labels, axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    if labels.ndim != 1:
        raise ValueError(f"class_weight needs one class per sample (labels of shape "
                         f"(samples,), (samples, 1) or one-hot (samples, classes)); received "
                         f"targets of shape {y.shape}. Use sample_weight for per-step weights.")
    labels = np.round(labels).astype(np.int64)
    classes, inverse = np.unique(labels, return_inverse=True)
    table = np.array([class_weight.get(int(c), 1.0) for c in classes], dtype=np.float32)
    w = table[inverse].astype(np.float32).reshape(-1, 1)
    return Weights([np.ascontiguousarray(w)])


def resolve(model, p, sample_weight, class_weight, label="sample_weight"):
    """fit/evaluate/train_on_batch: the Weights for prepared data p (``mio.Prepared``)."""
    if class_weight is not None:
        if sample_weight is not None:
            raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
        return class_weights(model, p.ys[0], class_weight)
    return sample_weights(model, sample_weight, p.n, label)
