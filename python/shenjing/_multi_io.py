"""x and y of fit/evaluate/predict as one flat list of arrays in model order, as Keras 3
accepts them (``Functional._standardize_inputs``, ``CompileLoss.call``, the array data
adapter): one array for a single input/output, a list in ``model.inputs``/``model.outputs``
order, or a dict keyed by input/output names. Every error names what it expected."""
import numpy as np

from shenjing import _checks as checks
from shenjing._compile_utils import Outputs


class Prepared:
    """Data already converted by ``Trainer._arrays``: xs and ys in model order, n samples."""

    def __init__(self, xs, ys, n):
        self.xs, self.ys, self.n = xs, ys, n

    def core_args(self):
        """x and y as the core's batch calls take them: one array, or a list per
        input/output."""
        return (self.xs[0] if len(self.xs) == 1 else self.xs,
                self.ys[0] if len(self.ys) == 1 else self.ys)


def input_structure(model):
    """(names, is_dict) of the model's inputs."""
    if hasattr(model, "_inputs_struct"):
        return model.input_names, isinstance(model._inputs_struct, dict)
    return (model.input_names if model.built else ["input"]), False


def output_structure(model):
    if hasattr(model, "_outputs_struct"):
        return Outputs(model.output_names, isinstance(model._outputs_struct, dict))
    return Outputs(model.output_names or ["output"], False)


def _single(v):
    """An array-like passed as a one-element list/tuple ([x]) or as itself."""
    if isinstance(v, (list, tuple)) and len(v) == 1 and hasattr(v[0], "shape"):
        return v[0]
    return v


def flatten(data, names, is_dict, what, role):
    """``data`` (one array, a list/tuple or a dict) as a list in model order, or ValueError
    listing the expected names. ``role``: 'input' or 'output'; ``what``: 'x' or 'y'."""
    n = len(names)
    if isinstance(data, dict):
        unknown = [k for k in data if k not in names]
        missing = [k for k in names if k not in data]
        if unknown or missing:
            got = ", ".join(repr(k) for k in data)
            raise ValueError(
                f"{what} is a dict with keys [{got}], but the model's {role}s are named "
                f"{names}" + (f"; unknown: {unknown}" if unknown else "")
                + (f"; missing: {missing}" if missing else "") + ".")
        return [data[k] for k in names]
    if n == 1:
        return [_single(data)]
    if not isinstance(data, (list, tuple)):
        raise ValueError(
            f"The model has {n} {role}s {names}, but {what} is a single array: pass a list of "
            f"{n} arrays in that order or a dict keyed by those names.")
    if len(data) != n:
        raise ValueError(f"The model has {n} {role}s {names}, but {what} is a list of "
                         f"{len(data)} arrays: pass one array per {role}, in that order, or a "
                         f"dict keyed by those names.")
    if is_dict:
        if role == "input" and names != sorted(names):
            # Keras refuses a list for dict inputs unless the keys are sorted.
            raise ValueError(
                f"The structure of `inputs` doesn't match the expected structure.\nExpected: "
                f"{ {k: k for k in names} }\nReceived: inputs=a list of {len(data)} arrays. "
                f"Pass x as a dict keyed by {names}.")
        return Outputs(names, True).from_list(list(data))  # sorted key order, as Keras
    return list(data)


def check_cardinality(xs, ys, in_names, out_names):
    """Keras's data cardinality check, naming every array's size."""
    sizes = {len(a) for a in xs + ys}
    if len(sizes) > 1:
        xsz = ", ".join(f"{k}={len(a)}" for k, a in zip(in_names, xs))
        ysz = ", ".join(f"{k}={len(a)}" for k, a in zip(out_names, ys))
        raise ValueError("Data cardinality is ambiguous. Make sure all arrays contain the "
                         f"same number of samples. 'x' sizes: {xsz}. 'y' sizes: {ysz}.")


def adjust_rank(x, expected):
    """x of shape (n,) for an input of shape (1,) as (n, 1), as Keras's
    ``_adjust_input_rank``; None for any other mismatch (shenjing does not drop a trailing
    axis of 1, as Keras would: an input shaped (n, 4, 1) for (4,) is refused)."""
    if x.shape[1:] == expected:
        return x
    if x.ndim == 1 and expected == (1,):
        return x.reshape(x.shape + (1,))
    return None


def as_core_input(x, what):
    """x in a dtype the core reads (converted once when it is not)."""
    if x.dtype not in checks.CORE_DTYPES:
        x = checks.to_float32(x, what)
    return np.ascontiguousarray(x)


def split(arrays, at):
    return [a[:at] for a in arrays], [a[at:] for a in arrays]


def pack_outputs(model, outs):
    """predict's return value: one array, a list, or a dict for a dict-output model."""
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):
        return dict(zip(model.output_names, outs))
    return outs[0] if len(outs) == 1 else list(outs)
