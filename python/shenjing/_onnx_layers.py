"""The ONNX converters of the layers, used by the graph exporter (_onnx.py).

Each converter writes one layer call as a few ONNX nodes on the channels-last tensor the model
itself uses; the channels-first ONNX Conv and pooling ops are wrapped in Transpose nodes.
Padding is always given explicitly, computed as the C++ layers compute it (TensorFlow's 'same':
the odd cell after), so the graph gives what ``predict`` gives. Converters read the shapes of
the call from ``layer.input_shape`` / ``layer.output_shape``: a layer called several times
(shared weights) is called on the same shapes every time (layers/base.py refuses others).
"""
import numpy as np

from shenjing._onnx_image import CONVERTERS as _IMAGE_CONVERTERS
from shenjing._onnx_layer_norm import layer_norm as _layer_norm
from shenjing._onnx_rnn import CONVERTERS as _RNN_CONVERTERS
from shenjing._onnx_time_distributed import time_distributed as _time_distributed
from shenjing.layers.convolutional import _Conv
from shenjing.layers.convolutional_transpose import _ConvTranspose
from shenjing.layers.core import Activation, Dense, Dropout, Identity
from shenjing.layers.embedding import Embedding
from shenjing.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply,
                                     Subtract)
from shenjing.layers.normalization import BatchNormalization, LayerNormalization
from shenjing.layers.pooling import _GlobalPool, _Pool
from shenjing.layers.reshaping import (Cropping1D, Cropping2D, Flatten, Permute, RepeatVector,
                                       Reshape, ZeroPadding1D, ZeroPadding2D)
from shenjing.layers.time_distributed import TimeDistributed
from shenjing.layers.upsampling import UpSampling1D, UpSampling2D


# -- activations ---------------------------------------------------------------------------------
def _activation(g, name, x, hint):
    """act(x) for a ``shenjing.activations`` name, with the constants the C++ core uses."""
    if name == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
    if name in simple:
        return g.op(simple[name], [x], hint)
    if name == "softmax":
        return g.op("Softmax", [x], hint, axis=-1)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], hint, alpha=0.2)  # Keras's default slope, as the core
    if name == "elu":
        return g.op("Elu", [x], hint, alpha=1.0)
    if name == "swish":
        return g.op("Mul", [x, g.op("Sigmoid", [x], hint + "/sigmoid")], hint)
    if name == "gelu":  # exact (erf) form, as the core; the Gelu op needs opset 20
        scaled = g.op("Mul", [x, g.const(np.sqrt(0.5), "sqrt_half")], hint + "/scaled")
        erf = g.op("Erf", [scaled], hint + "/erf")
        cdf = g.op("Mul", [g.op("Add", [erf, g.const(1.0, "one")], hint + "/erf1"),
                           g.const(0.5, "half")], hint + "/cdf")
        return g.op("Mul", [x, cdf], hint)
    raise ValueError(f"export_onnx: activation '{name}' has no ONNX conversion.")


# -- layers: each takes (graph, layer, input tensor name) and returns its output tensor name ------
def _dense(g, layer, x):
    weights = layer.get_weights()
    y = g.op("MatMul", [x, g.const(weights[0], layer.name + "/kernel")], layer.name + "/matmul")
    if layer.use_bias:  # MatMul and Add broadcast, so rank > 2 inputs work on the last axis
        y = g.op("Add", [y, g.const(weights[1], layer.name + "/bias")], layer.name + "/biased")
    return _activation(g, layer.activation, y, layer.name)


def _activation_layer(g, layer, x):
    return _activation(g, layer.activation, x, layer.name)


def _identity(g, layer, x):
    return x


def _reshape(g, layer, x):
    # 0 copies the batch size from the input; the other sizes are known after building.
    shape = g.const([0, *layer.output_shape[1:]], layer.name + "/shape", np.int64)
    return g.op("Reshape", [x, shape], layer.name)


def _axis_pads(size, k, stride, dilation, padding):
    """(before, after) padding of one axis, as the C++ layers compute it."""
    eff = (k - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return eff - 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _window_attrs(layer, kernel, dilation=None):
    """kernel_shape/strides/pads (/dilations) attributes of a channels-first Conv or Pool."""
    sizes = layer.input_shape[1:-1]
    dilation = dilation or (1,) * len(sizes)
    pads = [_axis_pads(n, k, s, d, layer.padding)
            for n, k, s, d in zip(sizes, kernel, layer.strides, dilation)]
    attrs = {"kernel_shape": list(kernel), "strides": list(layer.strides),
             "pads": [p[0] for p in pads] + [p[1] for p in pads]}
    if any(d != 1 for d in dilation):
        attrs["dilations"] = list(dilation)
    return attrs


def _channels_first(g, x, rank, hint, op_type, inputs, **attrs):
    """op_type on x transposed to channels-first, transposed back to channels-last."""
    to_first = [0, rank + 1, *range(1, rank + 1)]
    to_last = [0, *range(2, rank + 2), 1]
    xt = g.op("Transpose", [x], hint + "/to_channels_first", perm=to_first)
    y = g.op(op_type, [xt, *inputs], hint + "/" + op_type.lower(), **attrs)
    return g.op("Transpose", [y], hint + "/to_channels_last", perm=to_last)


def _kernel_inputs(g, layer):
    """(rank, [kernel, bias]) of a convolution as ONNX constants. Keras kernels are
    (*window, a, b) and ONNX wants (b, a, *window): (filters, in) for Conv, (in, filters) for
    ConvTranspose, since Keras keeps (in, filters) and (filters, in) there respectively."""
    weights = layer.get_weights()
    rank = len(layer.kernel_size)
    kernel = np.transpose(weights[0], (rank + 1, rank, *range(rank)))
    inputs = [g.const(kernel, layer.name + "/kernel")]
    if layer.use_bias:
        inputs.append(g.const(weights[1], layer.name + "/bias"))
    return rank, inputs


def _conv(g, layer, x):
    rank, inputs = _kernel_inputs(g, layer)
    y = _channels_first(g, x, rank, layer.name, "Conv", inputs,
                        **_window_attrs(layer, layer.kernel_size, layer.dilation_rate))
    return _activation(g, layer.activation, y, layer.name)


def _pool(g, layer, x):
    # ONNX MaxPool ignores padded cells and AveragePool (count_include_pad=0) does not count
    # them, as Keras.
    return _channels_first(g, x, len(layer.pool_size), layer.name,
                           "MaxPool" if layer._max else "AveragePool", [],
                           **_window_attrs(layer, layer.pool_size))


def _global_pool(g, layer, x):
    op_type = "ReduceMax" if layer._max else "ReduceMean"
    axes = list(range(1, len(layer.input_shape) - 1))  # every axis but batch and channels
    keepdims = int(layer.keepdims)
    if g.opset < 18:  # axes moved from an attribute to an input in opset 18
        return g.op(op_type, [x], layer.name, axes=axes, keepdims=keepdims)
    return g.op(op_type, [x, g.const(axes, layer.name + "/axes", np.int64)], layer.name,
                keepdims=keepdims)


def _batch_norm(g, layer, x):
    """y = x * a + b per channel with the moving statistics, folded in float32 as the core
    folds them."""
    mean, var = layer.moving_mean, layer.moving_variance
    gamma = layer.gamma if layer.scale else np.ones_like(mean)
    beta = layer.beta if layer.center else np.zeros_like(mean)
    a = gamma / np.sqrt(var + np.float32(layer.epsilon))
    b = beta - mean * a
    y = g.op("Mul", [x, g.const(a, layer.name + "/scale")], layer.name + "/scaled")
    return g.op("Add", [y, g.const(b, layer.name + "/offset")], layer.name)


def _zero_padding(g, layer, x):
    sides = layer.padding if isinstance(layer, ZeroPadding2D) else (layer.padding,)
    # Pad takes all the befores, then all the afters, over (batch, *spatial, channels).
    pads = [0, *(s[0] for s in sides), 0, 0, *(s[1] for s in sides), 0]
    return g.op("Pad", [x, g.const(pads, layer.name + "/pads", np.int64)], layer.name)


def _deconv_axis(size, k, s, d, padding, op):
    """(output length, cells cut before) of one transposed-convolution axis, as Keras and the
    C++ layer compute them (JAX's padding placement)."""
    eff = (k - 1) * d + 1
    if padding == "valid":
        op = max(eff, s) - eff if op is None else op
        return (size - 1) * s + eff + op, 0
    pad_len = s + eff - 2 if op is None else eff + eff % 2 - 2 + op
    left = min(pad_len // 2 + pad_len % 2, eff - 1)
    out = size * s if op is None else (size - 1) * s + eff % 2 + op
    return out, eff - 1 - left


def _conv_transpose(g, layer, x):
    rank, inputs = _kernel_inputs(g, layer)
    begin, end, extra = [], [], []
    for a, size in enumerate(layer.input_shape[1:-1]):
        k, s, d = layer.kernel_size[a], layer.strides[a], layer.dilation_rate[a]
        op = None if layer.output_padding is None else layer.output_padding[a]
        out, cut = _deconv_axis(size, k, s, d, layer.padding, op)
        natural = (size - 1) * s + (k - 1) * d + 1  # ONNX's length before pads
        after = natural - cut - out  # negative: zero cells (then the bias) past the kernel
        begin.append(cut)
        end.append(max(after, 0))
        extra.append(max(-after, 0))
    attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.strides),
             "pads": begin + end}
    if any(extra):
        attrs["output_padding"] = extra
    if any(d != 1 for d in layer.dilation_rate):
        attrs["dilations"] = list(layer.dilation_rate)
    y = _channels_first(g, x, rank, layer.name, "ConvTranspose", inputs, **attrs)
    return _activation(g, layer.activation, y, layer.name)


def _upsampling(g, layer, x):
    size = (layer.size,) if isinstance(layer, UpSampling1D) else layer.size
    rank = len(size)
    scales = g.const([1.0, 1.0, *size], layer.name + "/scales")
    if getattr(layer, "interpolation", "nearest") == "nearest":
        # floor(o / size): asymmetric coordinates, rounded down.
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                 "nearest_mode": "floor"}
    else:  # Keras's ops.image.resize: half-pixel centres, clamped at the edges
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    return _channels_first(g, x, rank, layer.name, "Resize", ["", scales], **attrs)


def _cropping(g, layer, x):
    sides = layer.cropping if isinstance(layer, Cropping2D) else (layer.cropping,)
    sizes = layer.input_shape[1:-1]
    starts = [c[0] for c in sides]
    ends = [n - c[1] for n, c in zip(sizes, sides)]
    axes = list(range(1, len(sides) + 1))
    return g.op("Slice", [x, g.const(starts, layer.name + "/starts", np.int64),
                          g.const(ends, layer.name + "/ends", np.int64),
                          g.const(axes, layer.name + "/axes", np.int64)], layer.name)


def _repeat_vector(g, layer, x):
    x3 = g.op("Unsqueeze", [x, g.const([1], layer.name + "/axis", np.int64)],
              layer.name + "/unsqueeze")
    return g.op("Tile", [x3, g.const([1, layer.n, 1], layer.name + "/repeats", np.int64)],
                layer.name)


def _permute(g, layer, x):
    return g.op("Transpose", [x], layer.name, perm=[0, *layer.dims])


def _embedding(g, layer, x):
    """Gather of the table's rows. The ids arrive as float32 (every graph input is) and are
    truncated toward zero by Cast, as the core does; a negative id is sent out of range, where
    Gather fails as predict does, instead of wrapping around (ONNX Gather counts -1 as last)."""
    ids = g.op("Cast", [x], layer.name + "/ids", to=g.onnx.TensorProto.INT64)
    negative = g.op("Less", [ids, g.const(0, layer.name + "/zero", np.int64)],
                    layer.name + "/negative")
    ids = g.op("Where", [negative, g.const(layer.input_dim, layer.name + "/bad", np.int64), ids],
               layer.name + "/checked_ids")
    table = g.const(layer.get_weights()[0], layer.name + "/embeddings")
    return g.op("Gather", [table, ids], layer.name, axis=0)


_CONVERTERS = {Dense: _dense, Activation: _activation_layer, Dropout: _identity,
               Flatten: _reshape, Reshape: _reshape, _Conv: _conv, _Pool: _pool,
               _GlobalPool: _global_pool, BatchNormalization: _batch_norm,
               ZeroPadding1D: _zero_padding, ZeroPadding2D: _zero_padding,
               _ConvTranspose: _conv_transpose, UpSampling1D: _upsampling,
               UpSampling2D: _upsampling, Cropping1D: _cropping, Cropping2D: _cropping,
               RepeatVector: _repeat_vector, Permute: _permute, Identity: _identity,
               LayerNormalization: _layer_norm, Embedding: _embedding,
               TimeDistributed: _time_distributed}
_CONVERTERS.update(_RNN_CONVERTERS)  # SimpleRNN, LSTM, GRU (_onnx_rnn.py)
_CONVERTERS.update(_IMAGE_CONVERTERS)  # CenterCrop, Resizing, Random* (_onnx_image.py)
# Activation layers, noise, Rescaling, Normalization, depthwise convolutions; imported here,
# after the helpers that module uses are defined.
from shenjing._onnx_layers_extra import CONVERTERS as _EXTRA_CONVERTERS  # noqa: E402
_CONVERTERS.update(_EXTRA_CONVERTERS)


# -- merge layers: each takes (graph, layer, [input tensor names]) and returns its output name ---
# They read the per-input shapes from ``layer.input_shape``, a list of shapes with the batch
# axis first (``[(None, 3, 4), (None, 4)]``), as Keras gives it for a layer called on several
# tensors.
def _merge_shapes(layer, xs):
    shapes = layer.input_shape
    if not isinstance(shapes, (list, tuple)) or len(shapes) != len(xs) or \
            not all(isinstance(s, (list, tuple)) for s in shapes):
        raise ValueError(f"export_onnx: layer '{layer.name}' needs one input shape per input "
                         f"({len(xs)}), received input_shape={shapes!r}.")
    return [tuple(s) for s in shapes]


def _ranked(g, layer, xs):
    """The inputs with axes of size 1 added after the batch axis up to the highest rank: ONNX
    broadcasting aligns whole tensors on their last axes, batch axis included, while Keras
    aligns the per-sample shapes (its merges call expand_dims(x, 1))."""
    shapes = _merge_shapes(layer, xs)
    top = max(len(s) for s in shapes)
    out = []
    for x, s in zip(xs, shapes):
        if len(s) < top:
            axes = g.const(list(range(1, 1 + top - len(s))), layer.name + "/axes", np.int64)
            x = g.op("Unsqueeze", [x, axes], layer.name + "/expanded")
        out.append(x)
    return out


def _fold(g, layer, xs, op_type):
    """op_type applied left to right, as Keras's merges: op(op(x0, x1), x2)."""
    xs = _ranked(g, layer, xs)
    y = xs[0]
    for x in xs[1:]:
        y = g.op(op_type, [y, x], layer.name)
    return y


def _merge_add(g, layer, xs):
    return _fold(g, layer, xs, "Add")


def _merge_subtract(g, layer, xs):
    if len(xs) != 2:
        raise ValueError(f"export_onnx: Subtract '{layer.name}' takes exactly 2 inputs, "
                         f"received {len(xs)}.")
    return _fold(g, layer, xs, "Sub")


def _merge_multiply(g, layer, xs):
    return _fold(g, layer, xs, "Mul")


def _merge_maximum(g, layer, xs):
    return _fold(g, layer, xs, "Max")


def _merge_minimum(g, layer, xs):
    return _fold(g, layer, xs, "Min")


def _merge_average(g, layer, xs):
    total = _fold(g, layer, xs, "Add")  # then a division, as Keras's sum / len(inputs)
    return g.op("Div", [total, g.const(float(len(xs)), layer.name + "/count")], layer.name)


def _merge_concatenate(g, layer, xs):
    _merge_shapes(layer, xs)
    # Keras's axis counts the batch axis, as ONNX's does, and both take negative axes.
    return g.op("Concat", list(xs), layer.name, axis=int(layer.axis))


def _l2_normalize(g, x, axis, hint):
    """x / sqrt(max(sum(x^2), eps^2)) along axis: Keras's ops.normalize with its epsilon clamp
    (ONNX's LpNormalization has none and gives NaN for a zero vector)."""
    if g.opset < 18:  # axes moved from an attribute to an input in opset 18
        ss = g.op("ReduceSumSquare", [x], hint + "/sum_sq", axes=[axis], keepdims=1)
    else:
        ss = g.op("ReduceSumSquare", [x, g.const([axis], hint + "/axes", np.int64)],
                  hint + "/sum_sq", keepdims=1)
    clamped = g.op("Max", [ss, g.const(np.float32(1e-7) ** 2, hint + "/eps2")], hint + "/clamp")
    return g.op("Div", [x, g.op("Sqrt", [clamped], hint + "/norm")], hint + "/normalized")


def _merge_dot(g, layer, xs):
    """Keras's batch dot as one batched MatMul: the first input with its dot axis moved last
    and reshaped to (batch, M, d), the second with its dot axis first, (batch, d, N); the
    product (batch, M, N) reshaped to the layer's output."""
    if len(xs) != 2:
        raise ValueError(f"export_onnx: Dot '{layer.name}' takes exactly 2 inputs, received "
                         f"{len(xs)}.")
    shapes = [s[1:] for s in _merge_shapes(layer, xs)]
    pair = (layer.axes, layer.axes) if isinstance(layer.axes, int) else tuple(layer.axes)
    axes = [a - 1 if a > 0 else len(s) + a for a, s in zip(pair, shapes)]  # per-sample axes
    if any(not 0 <= a < len(s) for a, s in zip(axes, shapes)) or \
            shapes[0][axes[0]] != shapes[1][axes[1]]:
        raise ValueError(f"export_onnx: Dot '{layer.name}' with axes={layer.axes!r} does not fit "
                         f"inputs {layer.input_shape!r}.")
    name, d = layer.name, shapes[0][axes[0]]
    rest = [[n for i, n in enumerate(s) if i != a] for s, a in zip(shapes, axes)]
    mats = []
    for k, (x, s, a) in enumerate(zip(xs, shapes, axes)):
        hint = f"{name}/input{k}"
        if layer.normalize:
            x = _l2_normalize(g, x, a + 1, hint)
        others = [1 + i for i in range(len(s)) if i != a]
        perm = [0, *others, 1 + a] if k == 0 else [0, 1 + a, *others]
        if perm != list(range(len(perm))):
            x = g.op("Transpose", [x], hint + "/transposed", perm=perm)
        size = int(np.prod(rest[k], dtype=np.int64))
        target = [0, size, d] if k == 0 else [0, d, size]  # 0 copies the batch size
        mats.append(g.op("Reshape", [x, g.const(target, hint + "/shape", np.int64)],
                         hint + "/matrix"))
    y = g.op("MatMul", mats, name + "/matmul")
    out = rest[0] + rest[1] or [1]
    return g.op("Reshape", [y, g.const([0, *out], name + "/shape", np.int64)], name)


_MERGE_CONVERTERS = {Add: _merge_add, Subtract: _merge_subtract, Multiply: _merge_multiply,
                     Average: _merge_average, Maximum: _merge_maximum, Minimum: _merge_minimum,
                     Concatenate: _merge_concatenate, Dot: _merge_dot}


def converter(layer):
    """The converter of ``layer``: (graph, layer, input name) -> output name, or for a merge
    layer (graph, layer, [input names]) -> output name. ValueError naming the layer if none."""
    table = _MERGE_CONVERTERS if getattr(layer, "_multi_input", False) else _CONVERTERS
    for cls in type(layer).__mro__:
        if cls in table:
            return table[cls]
    raise ValueError(f"export_onnx: layer '{layer.name}' ({type(layer).__name__}) has no ONNX "
                     f"conversion.")
