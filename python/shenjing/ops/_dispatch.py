"""How an op runs: eagerly with NumPy on arrays, or traced into a graph node on symbolic
tensors (and on Variables while a layer's call() is traced). Dtypes follow Keras's result
types: Python numbers are weak (2 * int32 is int32, 0.5 * int32 is float32), and float64
only comes from float64 arrays."""
import numbers

import numpy as np

from shenjing.layers.node import KerasTensor
from shenjing.ops import _trace

_FLOATS = ("float16", "bfloat16", "float32", "float64")


def symbolic(*xs):
    """Whether an op on these arguments records a node instead of computing."""
    from shenjing.variables import Variable
    flat = []
    for x in xs:
        flat.extend(x if isinstance(x, (list, tuple)) else [x])
    if any(isinstance(x, KerasTensor) for x in flat):
        return True
    return bool(_trace._scopes) and any(isinstance(x, Variable) for x in flat)


def array(x):
    """x as a NumPy array for eager computing (Variables read their values)."""
    from shenjing.variables import Variable
    if isinstance(x, Variable):
        return x.value
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, bool):
        return np.asarray(x)
    if isinstance(x, numbers.Integral):
        return np.asarray(x, dtype=np.int32)
    if isinstance(x, numbers.Real):
        return np.asarray(x, dtype=np.float32)
    arr = np.asarray(x)
    if arr.dtype == np.float64 and not isinstance(x, np.generic):
        arr = arr.astype(np.float32)  # Python lists of floats: Keras's floatx
    if arr.dtype == np.int64 and not isinstance(x, np.generic):
        arr = arr.astype(np.int32)
    return arr


def dtype_of(x):
    """(dtype name, weak): Python numbers are weak."""
    from shenjing.variables import Variable
    if isinstance(x, KerasTensor):
        return x.dtype, False
    if isinstance(x, Variable):
        return "float32", False
    if isinstance(x, bool):
        return "bool", True
    if isinstance(x, numbers.Integral) and not isinstance(x, np.generic):
        return "int32", True
    if isinstance(x, numbers.Real) and not isinstance(x, np.generic):
        return "float32", True
    return str(array(x).dtype), False


def result_dtype(*xs):
    """Keras's result type of an op on xs."""
    kinds = [dtype_of(x) for x in xs]
    strong = [d for d, is_weak in kinds if not is_weak]
    weak = [d for d, is_weak in kinds if is_weak]
    floats = [d for d in strong if d in _FLOATS]
    if floats:
        return "float64" if "float64" in floats else "float32"
    if "float32" in weak:
        return "float32"
    ints = [d for d in strong if d != "bool"]
    if ints:
        return max(ints, key=lambda d: np.dtype(d).itemsize)
    if "int32" in weak:
        return "int32"
    return "bool"


def float_dtype(*xs):
    """The result type, promoted to float32 for ints and bools (sqrt, exp, divide, ...)."""
    d = result_dtype(*xs)
    return d if d in _FLOATS else "float32"


def run(op, args, attrs, eager, dtype):
    """The op on args: a node when symbolic, else eager(*arrays) cast to dtype."""
    if symbolic(*args):
        return _trace.record(op, [_trace.as_tensor(a) for a in args], attrs, dtype=dtype)
    out = eager(*[array(a) for a in args])
    return np.asarray(out).astype(dtype, copy=False)
