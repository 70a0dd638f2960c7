"""The ONNX converters of the primitive ops (``shenjing.ops`` traced into a graph: custom
layers, Lambda layers, subclassed models, ops called at model level), used by _onnx.py.

Each converter takes (graph, Operation, [input value names], node) and returns the name of
its output value. Shapes come from the node's symbolic tensors (full shapes: a batched one
starts with None). Every value is float32, as in the C++ core: ints and bools are exact
floats, so comparisons and logical ops Cast their ONNX bools back to 0/1 floats and index
inputs are Cast to int64. Axes attributes count the batch axis, as ONNX's do; the "shape" and
slice lists of a batched tensor leave it out (cpp/src/ops/*.cpp give each op's semantics).
"""
import numpy as np

from shenjing._onnx_layers import _activation, _axis_pads, _channels_first

_FLOAT, _INT64, _BOOL = 1, 7, 9  # onnx.TensorProto element types


def _batched(t):
    return len(t.shape) > 0 and t.shape[0] is None


def _c(g, value, dtype=np.float32):
    """A constant; equal ones are stored once."""
    return g.const(value, "const", dtype)


def _to_float(g, x, hint):
    return g.op("Cast", [x], hint, to=_FLOAT)


def _truth(g, x, hint):
    """x != 0 as an ONNX bool (NaN is true, as in C++)."""
    return g.op("Not", [g.op("Equal", [x, _c(g, 0.0)], hint + "/is_zero")], hint + "/truth")


# -- sources --------------------------------------------------------------------------------------
def _variable(g, op, xs, node):
    """One initializer per Variable, however many nodes (and traces) read it."""
    key = ("variable", id(op.variable))
    if key not in g.sources:
        name = g._fresh(op.variable.path)
        value = np.ascontiguousarray(op.variable.numpy(), np.float32)
        g.initializers.append(g.numpy_helper.from_array(value, name))
        g.sources[key] = name
    return g.sources[key]


def _constant(g, op, xs, node):
    values = np.asarray(op.attrs["values"], np.float64).reshape(op.attrs["shape"])
    return g.const(values, "constant")


# -- one input ------------------------------------------------------------------------------------
_SIMPLE = {"negative": "Neg", "abs": "Abs", "sign": "Sign", "sqrt": "Sqrt", "exp": "Exp",
           "log": "Log", "reciprocal": "Reciprocal", "sin": "Sin", "cos": "Cos", "tanh": "Tanh",
           "sigmoid": "Sigmoid", "relu": "Relu", "softplus": "Softplus", "softsign": "Softsign",
           "floor": "Floor", "ceil": "Ceil", "round": "Round"}  # Round: half to even, as C++


def _unary(g, op, xs, node):
    x, h, kind = xs[0], op.name, op.op
    if kind in _SIMPLE:
        return g.op(_SIMPLE[kind], [x], h)
    if kind in ("identity", "stop_gradient"):
        return x
    if kind == "square":
        return g.op("Mul", [x, x], h)
    if kind == "rsqrt":
        return g.op("Reciprocal", [g.op("Sqrt", [x], h + "/sqrt")], h)
    if kind == "log1p":
        return g.op("Log", [g.op("Add", [x, _c(g, 1.0)], h + "/plus1")], h)
    if kind == "expm1":
        return g.op("Sub", [g.op("Exp", [x], h + "/exp"), _c(g, 1.0)], h)
    if kind == "relu6":
        return g.op("Clip", [x, _c(g, 0.0), _c(g, 6.0)], h)
    if kind == "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x], h + "/sigmoid")], h)
    if kind == "selu":
        return g.op("Selu", [x], h, alpha=1.6732632423543772, gamma=1.0507009873554805)
    if kind == "elu":
        return g.op("Elu", [x], h, alpha=float(op.attrs.get("alpha", 1.0)))
    if kind == "leaky_relu":
        return g.op("LeakyRelu", [x], h, alpha=float(op.attrs.get("negative_slope", 0.2)))
    if kind == "gelu":
        if not op.attrs.get("approximate", True):
            return _activation(g, "gelu", x, h)  # the erf form
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", [g.op("Mul", [x, x], h + "/sq"), x], h + "/cube")
        inner = g.op("Add", [x, g.op("Mul", [cube, _c(g, 0.044715)], h + "/cubic")], h + "/in")
        t = g.op("Tanh", [g.op("Mul", [inner, _c(g, 0.7978845608028654)], h + "/arg")],
                 h + "/tanh")
        half_x = g.op("Mul", [x, _c(g, 0.5)], h + "/half_x")
        return g.op("Mul", [half_x, g.op("Add", [t, _c(g, 1.0)], h + "/t1")], h)
    if kind == "hard_sigmoid":  # Keras 3: relu6(x + 3) / 6
        r6 = g.op("Clip", [g.op("Add", [x, _c(g, 3.0)], h + "/plus3"), _c(g, 0.0), _c(g, 6.0)],
                  h + "/relu6")
        return g.op("Div", [r6, _c(g, 6.0)], h)
    if kind == "clip":  # min(max(x, lo), hi): min > max gives max everywhere, as np.clip
        lo = g.op("Max", [x, _c(g, float(op.attrs["min"]))], h + "/lo")
        return g.op("Min", [lo, _c(g, float(op.attrs["max"]))], h)
    if kind == "logical_not":
        return _to_float(g, g.op("Equal", [x, _c(g, 0.0)], h + "/eq0"), h)
    if kind == "isnan":
        return _to_float(g, g.op("IsNaN", [x], h + "/b"), h)
    if kind == "isinf":
        return _to_float(g, g.op("IsInf", [x], h + "/b"), h)
    if kind == "isfinite":
        bad = g.op("Or", [g.op("IsNaN", [x], h + "/nan"), g.op("IsInf", [x], h + "/inf")],
                   h + "/bad")
        return _to_float(g, g.op("Not", [bad], h + "/b"), h)
    raise _unsupported(op)


# -- two or three inputs (NumPy broadcasting, as ONNX's) ------------------------------------------
_ARITH = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "power": "Pow",
          "maximum": "Max", "minimum": "Min"}
_COMPARE = {"equal": "Equal", "greater": "Greater", "greater_equal": "GreaterOrEqual",
            "less": "Less", "less_equal": "LessOrEqual"}
_LOGICAL = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}


def _binary(g, op, xs, node):
    a, b = xs
    h, kind = op.name, op.op
    if kind in _ARITH:
        return g.op(_ARITH[kind], [a, b], h)
    if kind in _COMPARE:
        return _to_float(g, g.op(_COMPARE[kind], [a, b], h + "/b"), h)
    if kind == "not_equal":
        return _to_float(g, g.op("Not", [g.op("Equal", [a, b], h + "/eq")], h + "/b"), h)
    if kind in _LOGICAL:
        both = [_truth(g, a, h + "/a"), _truth(g, b, h + "/b")]
        return _to_float(g, g.op(_LOGICAL[kind], both, h + "/bool"), h)
    if kind in ("mod", "floor_divide"):
        return _floor_div(g, a, b, h, kind == "mod")
    raise _unsupported(op)


def _floor_div(g, a, b, h, want_mod):
    """NumPy's float floor division / remainder (cpp/src/ops/binary.cpp floor_div):
    mod = fmod(a, b), div = (a - mod) / b, both moved by one where mod and b differ in sign,
    then div rounded to the nearest integer below; b == 0 gives fmod(a, 0) and a / b."""
    zero = _c(g, 0.0)
    mod = g.op("Mod", [a, b], h + "/fmod", fmod=1)
    div = g.op("Div", [g.op("Sub", [a, mod], h + "/a_minus_mod"), b], h + "/div")
    signs = g.op("Xor", [g.op("Less", [b, zero], h + "/b_neg"),
                         g.op("Less", [mod, zero], h + "/mod_neg")], h + "/signs")
    fix = g.op("And", [signs, _truth(g, mod, h + "/mod")], h + "/fix")
    if want_mod:
        moved = g.op("Where", [fix, g.op("Add", [mod, b], h + "/mod_b"), mod], h + "/moved")
        return g.op("Where", [g.op("Equal", [b, zero], h + "/b0"), mod, moved], h)
    div = g.op("Where", [fix, g.op("Sub", [div, _c(g, 1.0)], h + "/div_1"), div], h + "/moved")
    q = g.op("Floor", [div], h + "/floor")
    up = g.op("Greater", [g.op("Sub", [div, q], h + "/frac"), _c(g, 0.5)], h + "/up")
    q = g.op("Where", [up, g.op("Add", [q, _c(g, 1.0)], h + "/q1"), q], h + "/q")
    plain = g.op("Div", [a, b], h + "/a_over_b")
    return g.op("Where", [g.op("Equal", [b, zero], h + "/b0"), plain, q], h)


def _where(g, op, xs, node):
    return g.op("Where", [_truth(g, xs[0], op.name + "/cond"), xs[1], xs[2]], op.name)


# -- reductions and ops along an axis -------------------------------------------------------------
_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin",
           "prod": "ReduceProd", "logsumexp": "ReduceLogSumExp"}


def _reduce_op(g, op_type, x, axes, keepdims, hint):
    """op_type over ``axes`` (None: all); ReduceSum takes axes as an input from opset 13, the
    others from opset 18 (an attribute before)."""
    attrs = {"keepdims": int(keepdims)}
    if axes is None:
        return g.op(op_type, [x], hint, **attrs)
    if op_type == "ReduceSum" or g.opset >= 18:
        return g.op(op_type, [x, _c(g, list(axes), np.int64)], hint, **attrs)
    return g.op(op_type, [x], hint, axes=list(axes), **attrs)


def _reduce(g, op, xs, node):
    axis = op.attrs.get("axis")
    axes = None if axis is None else [int(a) for a in
                                      (axis if isinstance(axis, (list, tuple)) else [axis])]
    return _reduce_op(g, _REDUCE[op.op], xs[0], axes, op.attrs.get("keepdims", False), op.name)


def _arg(g, op, xs, node):
    y = g.op("ArgMax" if op.op == "argmax" else "ArgMin", [xs[0]], op.name + "/index",
             axis=int(op.attrs["axis"]), keepdims=int(bool(op.attrs.get("keepdims", False))))
    return _to_float(g, y, op.name)


def _softmax(g, op, xs, node):
    return g.op("Softmax" if op.op == "softmax" else "LogSoftmax", [xs[0]], op.name,
                axis=int(op.attrs.get("axis", -1)))


def _matmul(g, op, xs, node):
    return g.op("MatMul", xs, op.name)  # NumPy's matmul, as the core's


# -- shapes ---------------------------------------------------------------------------------------
def _shape_of(t):
    """An ONNX Reshape target for symbolic tensor t: 0 (copy the input's) for the batch axis."""
    return [0 if s is None else int(s) for s in t.shape]


def _reshape(g, op, xs, node):
    # The batch axis is never reshaped, so the output's axis 0 is the input's.
    return g.op("Reshape", [xs[0], _c(g, _shape_of(node.output), np.int64)], op.name)


def _transpose(g, op, xs, node):
    rank = len(node.inputs[0].shape)
    axes = op.attrs.get("axes")
    perm = list(range(rank))[::-1] if axes is None else [int(a) % rank for a in axes]
    return g.op("Transpose", xs, op.name, perm=perm)


def _slice(g, op, xs, node):
    begin, end = op.attrs["begin"], op.attrs["end"]
    step = op.attrs.get("step") or [1] * len(begin)
    first = 1 if _batched(node.inputs[0]) else 0
    axes = list(range(first, first + len(begin)))
    ins = [xs[0], *(_c(g, list(v), np.int64) for v in (begin, end, axes, step))]
    return g.op("Slice", ins, op.name)


def _concatenate(g, op, xs, node):
    return g.op("Concat", xs, op.name, axis=int(op.attrs.get("axis", -1)))


def _take(g, op, xs, node):
    """Gather with the indices as the core reads them: NaN -> 0, truncated toward zero, a
    negative one counted from the end once, then clipped to [0, dim - 1]."""
    x, idx = xs
    h, rank = op.name, len(node.inputs[0].shape)
    axis = int(op.attrs.get("axis", 0)) % rank
    dim = node.inputs[0].shape[axis]
    v = g.op("Where", [g.op("IsNaN", [idx], h + "/nan"), _c(g, 0.0), idx], h + "/no_nan")
    v = g.op("Clip", [v, _c(g, -1e15), _c(g, 1e15)], h + "/bounded")
    k = g.op("Cast", [v], h + "/int", to=_INT64)
    zero = _c(g, 0, np.int64)
    k = g.op("Where", [g.op("Less", [k, zero], h + "/neg"),
                       g.op("Add", [k, _c(g, dim, np.int64)], h + "/wrapped"), k], h + "/from_end")
    k = g.op("Clip", [k, zero, _c(g, dim - 1, np.int64)], h + "/indices")
    return g.op("Gather", [x, k], h, axis=axis)


def _one_hot(g, op, xs, node):
    """x == class along the output's axis, as 0/1 floats: an out-of-range, negative or
    non-integer value gives a row of zeros, as the core (ONNX's OneHot would wrap negatives)."""
    n = int(op.attrs["num_classes"])
    rank = len(node.output.shape)
    axis = int(op.attrs.get("axis", -1)) % rank
    h = op.name
    x = g.op("Unsqueeze", [xs[0], _c(g, [axis], np.int64)], h + "/unsqueeze")
    classes = np.arange(n, dtype=np.float32).reshape([n] + [1] * (rank - 1 - axis))
    return _to_float(g, g.op("Equal", [x, _c(g, classes)], h + "/eq"), h)


def _repeat(g, op, xs, node):
    """Each slice along the axis repeated in place: a new axis after it tiled, then merged."""
    h, rank = op.name, len(node.inputs[0].shape)
    axis = int(op.attrs["axis"]) % rank
    x = g.op("Unsqueeze", [xs[0], _c(g, [axis + 1], np.int64)], h + "/unsqueeze")
    reps = [1] * (rank + 1)
    reps[axis + 1] = int(op.attrs["repeats"])
    x = g.op("Tile", [x, _c(g, reps, np.int64)], h + "/tile")
    return g.op("Reshape", [x, _c(g, _shape_of(node.output), np.int64)], h)


def _broadcast_to(g, op, xs, node):
    # Expand broadcasts both ways: a 1 keeps the input's size there (its batch size).
    shape = [1 if s == -1 else int(s) for s in op.attrs["shape"]]
    return g.op("Expand", [xs[0], _c(g, shape, np.int64)], op.name)


def _conv(g, op, xs, node):
    """ops.conv with a kernel tensor: the kernel ([KH,] KW, C, F) transposed in the graph to
    ONNX's (F, C, [KH,] KW), the data wrapped in Transposes to channels-first."""
    x, kernel = xs
    h = op.name
    rank = len(node.inputs[1].shape) - 2
    kshape = node.inputs[1].shape[:rank]
    w = g.op("Transpose", [kernel], h + "/kernel", perm=[rank + 1, rank, *range(rank)])

    def pair(key):
        v = op.attrs.get(key, 1)
        v = [v, v] if not isinstance(v, (list, tuple)) else list(v) * (3 - len(v))
        return [int(s) for s in v[2 - rank:2]]  # 1-D: the cols value, as the core
    strides, dilation = pair("strides"), pair("dilation_rate")
    padding = op.attrs.get("padding", "valid")
    sizes = node.inputs[0].shape[1:-1]
    pads = [_axis_pads(n, k, s, d, padding)
            for n, k, s, d in zip(sizes, kshape, strides, dilation)]
    attrs = {"kernel_shape": [int(k) for k in kshape], "strides": strides,
             "pads": [p[0] for p in pads] + [p[1] for p in pads]}
    if any(d != 1 for d in dilation):
        attrs["dilations"] = dilation
    return _channels_first(g, x, rank, h, "Conv", [w], **attrs)


def _unsupported(op):
    return ValueError(f"export_onnx: op '{op.op}' (node '{op.name}') has no ONNX conversion.")


_CONVERTERS = {"variable": _variable, "constant": _constant, "where": _where,
               "argmax": _arg, "argmin": _arg, "softmax": _softmax, "log_softmax": _softmax,
               "matmul": _matmul, "reshape": _reshape, "transpose": _transpose,
               "slice": _slice, "concatenate": _concatenate, "take": _take,
               "one_hot": _one_hot, "repeat": _repeat, "broadcast_to": _broadcast_to,
               "conv": _conv}
_CONVERTERS.update({k: _unary for k in [*_SIMPLE, "identity", "stop_gradient", "square",
                                        "rsqrt", "log1p", "expm1", "relu6", "silu", "selu",
                                        "elu", "leaky_relu", "gelu", "hard_sigmoid", "clip",
                                        "logical_not", "isnan", "isinf", "isfinite"]})
_CONVERTERS.update({k: _binary for k in [*_ARITH, *_COMPARE, *_LOGICAL, "not_equal", "mod",
                                         "floor_divide"]})
_CONVERTERS.update({k: _reduce for k in _REDUCE})


def convert(g, op, xs, node):
    """The ONNX value computing ``node`` (an Operation's call) from input values ``xs``;
    ValueError naming the op if it has none."""
    fn = _CONVERTERS.get(op.op)
    if fn is None:
        raise _unsupported(op)
    return fn(g, op, xs, node)
