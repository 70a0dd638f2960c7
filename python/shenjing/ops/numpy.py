"""NumPy-style ops (Keras's ``keras.ops`` numpy namespace). On arrays they compute eagerly and
return arrays; on symbolic tensors they record graph nodes (see _dispatch.py)."""
import builtins

import numpy as np

from shenjing.layers.base import _auto_name
from shenjing.ops import _trace
from shenjing.ops._dispatch import array, float_dtype, result_dtype, run, symbolic


def _unary(op, fn, to_float=True):
    def f(x):
        if not to_float:
            return run(op, [x], None, fn, result_dtype(x))
        dtype = float_dtype(x)
        # Ints become floats first, as in Keras (np.reciprocal(2) would be the int 0).
        return run(op, [x], None, lambda a: fn(a.astype(dtype, copy=False)), dtype)
    f.__name__ = op
    f.__doc__ = f"Elementwise ``{op}`` (Keras's ``ops.{op}``)."
    return f


def _bool_unary(op, fn):
    def f(x):
        return run(op, [x], None, fn, "bool")
    f.__name__ = op
    return f


def _binary(op, fn, kind="same"):
    """kind: 'same' (result type), 'float' (promoted to float), 'bool' (comparisons)."""
    def f(x1, x2):
        dtype = {"same": result_dtype, "float": float_dtype}.get(kind, lambda *a: "bool")(x1, x2)
        return run(op, [x1, x2], None, fn, dtype)
    f.__name__ = op
    f.__doc__ = f"Elementwise ``{op}`` with NumPy broadcasting (Keras's ``ops.{op}``)."
    return f


negative = _unary("negative", np.negative, to_float=False)
abs = absolute = _unary("abs", np.abs, to_float=False)
sign = _unary("sign", np.sign, to_float=False)
square = _unary("square", np.square, to_float=False)
sqrt = _unary("sqrt", np.sqrt)
exp = _unary("exp", np.exp)
log = _unary("log", np.log)
log1p = _unary("log1p", np.log1p)
expm1 = _unary("expm1", np.expm1)
reciprocal = _unary("reciprocal", np.reciprocal)
sin = _unary("sin", np.sin)
cos = _unary("cos", np.cos)
tanh = _unary("tanh", np.tanh)
floor = _unary("floor", np.floor, to_float=False)
ceil = _unary("ceil", np.ceil, to_float=False)
round = _unary("round", np.round, to_float=False)
isnan = _bool_unary("isnan", np.isnan)
isinf = _bool_unary("isinf", np.isinf)
isfinite = _bool_unary("isfinite", np.isfinite)
logical_not = _bool_unary("logical_not", np.logical_not)

add = _binary("add", np.add)
subtract = _binary("subtract", np.subtract)
multiply = _binary("multiply", np.multiply)
divide = true_divide = _binary("divide", np.true_divide, "float")
power = _binary("power", np.power)
maximum = _binary("maximum", np.maximum)
minimum = _binary("minimum", np.minimum)
floor_divide = _binary("floor_divide", np.floor_divide)
mod = _binary("mod", np.mod)
equal = _binary("equal", np.equal, "bool")
not_equal = _binary("not_equal", np.not_equal, "bool")
greater = _binary("greater", np.greater, "bool")
greater_equal = _binary("greater_equal", np.greater_equal, "bool")
less = _binary("less", np.less, "bool")
less_equal = _binary("less_equal", np.less_equal, "bool")
logical_and = _binary("logical_and", np.logical_and, "bool")
logical_or = _binary("logical_or", np.logical_or, "bool")
logical_xor = _binary("logical_xor", np.logical_xor, "bool")


def rsqrt(x):
    return run("rsqrt", [x], None, lambda a: 1.0 / np.sqrt(a), float_dtype(x))


def clip(x, x_min, x_max):
    """Values limited to [x_min, x_max] (numbers)."""
    lo, hi = float(x_min), float(x_max)
    return run("clip", [x], {"min": lo, "max": hi}, lambda a: np.clip(a, lo, hi),
               result_dtype(x))


def where(condition, x1=None, x2=None):
    """x1 where condition holds, else x2 (both broadcast)."""
    if x1 is None or x2 is None:
        raise ValueError("ops.where needs x1 and x2 (the one-argument form returns indices, "
                         "which have no fixed shape and cannot be traced).")
    return run("where", [condition, x1, x2], None, np.where, result_dtype(x1, x2))


# -- reductions ----------------------------------------------------------------------------
def _axis_attr(axis):
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        return [int(a) for a in axis]
    return int(axis)


def _reduce(op, fn, to_float=False):
    def f(x, axis=None, keepdims=False):
        ax = _axis_attr(axis)
        dtype = float_dtype(x) if to_float else result_dtype(x)
        if op in ("sum", "prod") and dtype == "bool":
            dtype = "int32"
        return run(op, [x], {"axis": ax, "keepdims": bool(keepdims)},
                   lambda a: fn(a, axis=None if ax is None else tuple(np.atleast_1d(ax)),
                                keepdims=keepdims), dtype)
    f.__name__ = op
    f.__doc__ = f"``{op}`` over ``axis`` (None: all axes), Keras's ``ops.{op}``."
    return f


sum = _reduce("sum", np.sum)
mean = _reduce("mean", np.mean, to_float=True)
max = amax = _reduce("max", np.max)
min = amin = _reduce("min", np.min)
prod = _reduce("prod", np.prod)


def _logical_reduce(op, fn):
    def f(x, axis=None, keepdims=False):
        ax = _axis_attr(axis)
        return run(op, [x], {"axis": ax, "keepdims": bool(keepdims)},
                   lambda a: fn(a, axis=None if ax is None else tuple(np.atleast_1d(ax)),
                                keepdims=keepdims), "bool")
    f.__name__ = op
    which = "some" if op == "any" else "every"
    f.__doc__ = (f"``{op}`` over ``axis`` (None: all axes): whether {which} value is nonzero, "
                 f"Keras's ``ops.{op}`` (a bool tensor).")
    return f


any = _logical_reduce("any", np.any)
all = _logical_reduce("all", np.all)


def _arg(op, fn):
    def f(x, axis=None, keepdims=False):
        if symbolic(x) and axis is None:
            x = reshape(x, (-1,))  # the flat index, as NumPy
            axis = 0
        return run(op, [x], {"axis": None if axis is None else int(axis),
                             "keepdims": bool(keepdims)},
                   lambda a: fn(a, axis=axis, keepdims=keepdims), "int32")
    f.__name__ = op
    return f


argmax = _arg("argmax", np.argmax)
argmin = _arg("argmin", np.argmin)


def var(x, axis=None, keepdims=False):
    m = mean(x, axis=axis, keepdims=True)
    return mean(square(subtract(x, m)), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


# -- shapes --------------------------------------------------------------------------------
def _per_sample(x, shape, what):
    """A full target shape (the batch axis as None or -1) as the op's attr: without the
    batch axis for a batched tensor."""
    shape = [-1 if s is None else int(s) for s in shape]
    if x.shape and x.shape[0] is None:
        if not shape or shape[0] != -1:
            raise ValueError(f"ops.{what}: the tensor has a batch axis (shape {x.shape}); the "
                             f"new shape must keep it first as None or -1, received "
                             f"{tuple(shape)}{_trace.scope_label()}.")
        return shape[1:]
    return shape


def reshape(x, newshape):
    if symbolic(x):
        t = _trace.as_tensor(x)
        newshape = (newshape,) if isinstance(newshape, int) else tuple(newshape)
        if t.shape and t.shape[0] is None and newshape == (-1,):
            raise ValueError(f"ops.reshape: flattening a tensor with a batch axis {t.shape} to "
                             f"(-1,) would mix samples{_trace.scope_label()}; use (-1, size).")
        return _trace.record("reshape", [t], {"shape": _per_sample(t, newshape, "reshape")},
                             dtype=t.dtype)
    return np.reshape(array(x), newshape)


def transpose(x, axes=None):
    return run("transpose", [x], {"axes": None if axes is None else [int(a) for a in axes]},
               lambda a: np.transpose(a, axes), result_dtype(x))


def expand_dims(x, axis):
    if not symbolic(x):
        return np.expand_dims(array(x), axis)
    t = _trace.as_tensor(x)
    axes = sorted(a % (len(t.shape) + len(np.atleast_1d(axis))) for a in np.atleast_1d(axis))
    shape = list(t.shape)
    for a in axes:
        shape.insert(a, 1)
    return reshape(t, shape)


def squeeze(x, axis=None):
    if not symbolic(x):
        return np.squeeze(array(x), axis)
    t = _trace.as_tensor(x)
    rank = len(t.shape)
    axes = [i for i, s in enumerate(t.shape) if s == 1] if axis is None else \
        [a % rank for a in np.atleast_1d(axis)]
    for a in axes:
        if t.shape[a] != 1:
            raise ValueError(f"ops.squeeze: axis {a} of shape {t.shape} has size "
                             f"{t.shape[a]}, not 1{_trace.scope_label()}.")
    return reshape(t, [s for i, s in enumerate(t.shape) if i not in axes])


def concatenate(xs, axis=0):
    xs = list(xs)
    return run("concatenate", xs, {"axis": int(axis)},
               lambda *a: np.concatenate(a, axis=axis), result_dtype(*xs))


def stack(xs, axis=0):
    xs = list(xs)
    if not symbolic(*xs):
        return np.stack([array(x) for x in xs], axis=axis)
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


def split(x, indices_or_sections, axis=0):
    if not symbolic(x):
        return np.split(array(x), indices_or_sections, axis=axis)
    t = _trace.as_tensor(x)
    dim = t.shape[axis]
    if dim is None:
        raise ValueError(f"ops.split cannot split the batch axis{_trace.scope_label()}.")
    if isinstance(indices_or_sections, int):
        if dim % indices_or_sections:
            raise ValueError(f"ops.split: {dim} does not divide into {indices_or_sections} "
                             f"equal sections{_trace.scope_label()}.")
        step = dim // indices_or_sections
        bounds = list(range(0, dim + 1, step))
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [dim]
    axis = axis % len(t.shape)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = [slice(None)] * len(t.shape)
        key[axis] = slice(lo, hi)
        out.append(t[tuple(key)])
    return out


def take(x, indices, axis=None):
    if not symbolic(x, indices):
        return np.take(array(x), array(indices).astype(np.int64), axis=axis)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    return _trace.record("take", [_trace.as_tensor(x), _trace.as_tensor(indices)],
                         {"axis": int(axis)}, dtype=result_dtype(x))


def dot(x1, x2):
    """Keras's ``ops.dot``: matmul for 1-D/2-D operands."""
    return matmul(x1, x2)


def matmul(x1, x2):
    return run("matmul", [x1, x2], None, np.matmul, result_dtype(x1, x2))


def broadcast_to(x, shape):
    if not symbolic(x):
        return np.broadcast_to(array(x), shape)
    t = _trace.as_tensor(x)
    return _trace.record("broadcast_to", [t], {"shape": [-1 if s is None else int(s)
                                                         for s in shape]}, dtype=t.dtype)


def repeat(x, repeats, axis=None):
    if not symbolic(x):
        return np.repeat(array(x), repeats, axis=axis)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    return run("repeat", [x], {"repeats": int(repeats), "axis": int(axis)}, None,
               result_dtype(x))


def zeros(shape, dtype="float32"):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype="float32"):
    return np.ones(shape, dtype=dtype)


def zeros_like(x, dtype=None):
    if symbolic(x):
        return multiply(x, 0) if dtype is None else cast_like(multiply(x, 0), dtype)
    return np.zeros_like(array(x), dtype=dtype)


def ones_like(x, dtype=None):
    if symbolic(x):
        out = add(multiply(x, 0), 1)
        return out if dtype is None else cast_like(out, dtype)
    return np.ones_like(array(x), dtype=dtype)


def cast_like(x, dtype):
    from shenjing.ops.core import cast
    return cast(x, dtype)


def full(shape, fill_value, dtype=None):
    return np.full(shape, fill_value, dtype=dtype or result_dtype(fill_value))


def arange(start, stop=None, step=1, dtype=None):
    out = np.arange(start, stop, step)
    return out.astype(dtype or ("int32" if out.dtype.kind in "iu" else "float32"))


def eye(N, M=None, k=0, dtype="float32"):
    return np.eye(N, M, k, dtype=dtype)


def logsumexp(x, axis=None, keepdims=False):
    ax = _axis_attr(axis)

    def eager(a):
        axes = None if ax is None else tuple(np.atleast_1d(ax))
        m = np.max(a, axis=axes, keepdims=True)
        out = np.log(np.sum(np.exp(a - m), axis=axes, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=axes)
    return run("logsumexp", [x], {"axis": ax, "keepdims": bool(keepdims)}, eager,
               float_dtype(x))


def getitem(x, key):
    """x[key] on a symbolic tensor: ints, slices with positive steps, None and Ellipsis. The
    batch axis can only be taken whole (``x[:, 1:]``)."""
    t = _trace.as_tensor(x)
    key = key if isinstance(key, tuple) else (key,)
    if builtins.any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        n_real = len([k for k in key if k is not None and k is not Ellipsis])
        key = key[:i] + (slice(None),) * (len(t.shape) - n_real) + key[i + 1:]
    real = [k for k in key if k is not None]
    if len(real) > len(t.shape):
        raise IndexError(f"Too many indices for a tensor of shape {t.shape}: {key}.")
    key = key + (slice(None),) * (len(t.shape) - len(real))
    begin, end, step, out_shape = [], [], [], []
    axis = 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        dim = t.shape[axis]
        if dim is None:
            if not (isinstance(k, slice) and k == slice(None)):
                raise ValueError(f"Indexing the batch axis ({k!r}) of a tensor of shape "
                                 f"{t.shape} cannot be traced{_trace.scope_label()}: take it "
                                 f"whole, as in x[:, ...].")
            out_shape.append(None)
            axis += 1
            continue
        if isinstance(k, slice):
            lo, hi, st = k.indices(dim)
            if st < 1:
                raise ValueError(f"Slices with a negative step ({k!r}) are not supported in "
                                 f"traced code{_trace.scope_label()}.")
            size = len(range(lo, hi, st))
            if size == 0:
                raise ValueError(f"The slice {k!r} of an axis of size {dim} is empty"
                                 f"{_trace.scope_label()}.")
            begin.append(lo), end.append(hi), step.append(st)
            out_shape.append(size)
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            i = int(k) + dim if k < 0 else int(k)
            if not 0 <= i < dim:
                raise IndexError(f"Index {k} is out of bounds for an axis of size {dim}.")
            begin.append(i), end.append(i + 1), step.append(1)
        else:
            raise TypeError(f"Only ints, slices, None and ... can index a symbolic tensor"
                            f"{_trace.scope_label()}; received {k!r:.100}.")
        axis += 1
    sizes = [s for s in t.shape if s is not None]
    if [b for b in begin] != [0] * len(begin) or end != sizes or step != [1] * len(step):
        t = _trace.record("slice", [t], {"begin": begin, "end": end, "step": step},
                          dtype=t.dtype,
                          name=None if _trace._scopes else _auto_name("get_item"))
    if tuple(out_shape) != t.shape:
        t = reshape(t, out_shape)
    return t
