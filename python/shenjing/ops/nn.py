"""Neural-network ops (Keras's ``keras.ops`` nn namespace): activations, softmax, one-hot,
normalization and cross-entropies, eager on arrays and traced on symbolic tensors. The
cross-entropies are written with the primitive ops, with Keras's formulas (epsilon 1e-7)."""
import numpy as np

from shenjing.ops import numpy as knp
from shenjing.ops._dispatch import float_dtype, run

_EPSILON = 1e-7


def _sigmoid(a):
    return np.where(a >= 0, 1 / (1 + np.exp(-np.abs(a))), np.exp(-np.abs(a)) / (1 + np.exp(-np.abs(a))))


def _act(op, fn, attrs=None):
    def f(x, **kwargs):
        a = dict(attrs or {})
        a.update(kwargs)
        return run(op, [x], a or None, lambda v: fn(v, **a), float_dtype(x))
    f.__name__ = op
    f.__doc__ = f"The ``{op}`` activation (Keras's ``ops.{op}``)."
    return f


def _gelu(a, approximate=True):
    if approximate:
        return 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))
    from math import erf
    return 0.5 * a * (1 + np.vectorize(erf)(a / np.sqrt(2)))


def _elu(a, alpha=1.0):
    return np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805

relu = _act("relu", lambda a: np.maximum(a, 0))
relu6 = _act("relu6", lambda a: np.clip(a, 0, 6))
sigmoid = _act("sigmoid", _sigmoid)
tanh = _act("tanh", np.tanh)
softplus = _act("softplus", lambda a: np.logaddexp(a, 0))
softsign = _act("softsign", lambda a: a / (1 + np.abs(a)))
silu = swish = _act("silu", lambda a: a * _sigmoid(a))
selu = _act("selu", lambda a: _SELU_SCALE * _elu(a, _SELU_ALPHA))
hard_sigmoid = _act("hard_sigmoid", lambda a: np.clip(a + 3, 0, 6) / 6)


def gelu(x, approximate=True):
    return run("gelu", [x], {"approximate": bool(approximate)},
               lambda a: _gelu(a, approximate), float_dtype(x))


def elu(x, alpha=1.0):
    return run("elu", [x], {"alpha": float(alpha)}, lambda a: _elu(a, alpha), float_dtype(x))


def leaky_relu(x, negative_slope=0.2):
    return run("leaky_relu", [x], {"negative_slope": float(negative_slope)},
               lambda a: np.where(a >= 0, a, negative_slope * a), float_dtype(x))


def _softmax(a, axis):
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax(x, axis=-1):
    return run("softmax", [x], {"axis": int(axis)}, lambda a: _softmax(a, axis), float_dtype(x))


def log_softmax(x, axis=-1):
    def eager(a):
        s = a - np.max(a, axis=axis, keepdims=True)
        return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
    return run("log_softmax", [x], {"axis": int(axis)}, eager, float_dtype(x))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    if sparse:
        raise ValueError("ops.one_hot(sparse=True) is not supported: shenjing has no sparse "
                         "tensors.")
    num_classes = int(num_classes)

    def eager(a):
        a = np.asarray(a).astype(np.int64)
        out = (a[..., None] == np.arange(num_classes)).astype(np.float32)
        return np.moveaxis(out, -1, axis)
    return run("one_hot", [x], {"num_classes": num_classes, "axis": int(axis)}, eager,
               dtype or "float32")


def normalize(x, axis=-1, order=2, epsilon=None):
    """x scaled to unit L``order`` norm along ``axis`` (Keras: x * min(rsqrt(sum x^2), 1/eps)
    for order 2)."""
    eps = _EPSILON if epsilon is None else float(epsilon)
    if order == 2:
        inv = knp.minimum(knp.rsqrt(knp.sum(knp.square(x), axis=axis, keepdims=True)), 1.0 / eps)
        return knp.multiply(x, inv)
    if order == 1:
        norm = knp.sum(knp.abs(x), axis=axis, keepdims=True)
    else:
        raise ValueError(f"ops.normalize supports order 1 and 2, received {order!r}.")
    return knp.divide(x, knp.maximum(norm, eps))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """-sum(target * log p) along ``axis``; p = softmax(output) with from_logits, else
    output scaled to sum 1 and clipped to [eps, 1 - eps] (Keras's formula)."""
    if from_logits:
        log_prob = log_softmax(output, axis=axis)
    else:
        p = knp.divide(output, knp.sum(output, axis=axis, keepdims=True))
        log_prob = knp.log(knp.clip(p, _EPSILON, 1.0 - _EPSILON))
    return knp.negative(knp.sum(knp.multiply(target, log_prob), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    classes = output.shape[axis]
    return categorical_crossentropy(one_hot(target, classes, axis=axis), output,
                                    from_logits=from_logits, axis=axis)


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise -(t log p + (1 - t) log(1 - p)); with from_logits the stable
    max(z, 0) - z t + log(1 + exp(-|z|))."""
    if from_logits:
        return knp.add(knp.subtract(relu(output), knp.multiply(output, target)),
                       knp.log1p(knp.exp(knp.negative(knp.abs(output)))))
    p = knp.clip(output, _EPSILON, 1.0 - _EPSILON)
    return knp.negative(knp.add(knp.multiply(target, knp.log(p)),
                                knp.multiply(knp.subtract(1.0, target),
                                             knp.log(knp.subtract(1.0, p)))))


def _pool(kind, inputs, pool_size, strides, padding, data_format):
    from shenjing import layers
    if data_format not in (None, "channels_last"):
        raise ValueError(f"ops.{kind}_pool supports data_format='channels_last' only, received "
                         f"{data_format!r}.")
    rank = len(inputs.shape) - 2
    if rank not in (1, 2):
        raise ValueError(f"ops.{kind}_pool takes inputs of rank 3 (batch, steps, channels) or "
                         f"4 (batch, rows, cols, channels), received shape {inputs.shape}.")
    cls = {("max", 1): layers.MaxPooling1D, ("max", 2): layers.MaxPooling2D,
           ("average", 1): layers.AveragePooling1D, ("average", 2): layers.AveragePooling2D}
    # The pooling layers are the core's pooling kernels: traced, they are graph nodes; on
    # arrays they run eagerly through the core.
    return cls[(kind, rank)](pool_size=pool_size, strides=strides, padding=padding)(inputs)


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Keras's ``ops.max_pool`` (channels last)."""
    return _pool("max", inputs, pool_size, strides, padding, data_format)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Keras's ``ops.average_pool`` (channels last)."""
    return _pool("average", inputs, pool_size, strides, padding, data_format)


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Keras's ``ops.conv`` (channels last): inputs (batch, [rows,] cols, channels), kernel
    ([rows,] cols, channels, filters), no bias. Traced, it is a node running the Conv1D/Conv2D
    kernels with the kernel tensor as input; on arrays the same kernels run at once."""
    import json
    from shenjing import _core
    from shenjing.ops import _trace
    from shenjing.ops._dispatch import array, symbolic
    if data_format not in (None, "channels_last"):
        raise ValueError(f"ops.conv supports data_format='channels_last' only, received "
                         f"{data_format!r}.")
    attrs = {"strides": list(strides) if isinstance(strides, (list, tuple)) else int(strides),
             "padding": padding,
             "dilation_rate": list(dilation_rate) if isinstance(dilation_rate, (list, tuple))
             else int(dilation_rate)}
    if symbolic(inputs, kernel):
        x = _trace.as_tensor(inputs)
        if not (x.shape and x.shape[0] is None):
            raise ValueError(f"ops.conv: the inputs need the batch axis, received shape "
                             f"{x.shape}{_trace.scope_label()}.")
        return _trace.record("conv", [x, _trace.as_tensor(kernel)], attrs, dtype="float32")
    x = np.ascontiguousarray(array(inputs), dtype=np.float32)
    k = np.ascontiguousarray(array(kernel), dtype=np.float32)
    spec = json.dumps({"class_name": "Op", "config": {"name": "conv", "op": "conv", **attrs}})
    return _core._run_op(spec, [x, k], [True, False], len(x), None, None)[0]
