"""ONNX converters of SimpleRNN, LSTM and GRU (registered in _onnx_layers.py).

Each layer becomes one ONNX ``RNN`` / ``LSTM`` / ``GRU`` node. Those ops read time-major
input (T, N, F); their ``layout=1`` (batch-major, opset 14) is refused by onnxruntime's CPU
kernels, so the input is wrapped in Transposes instead, the same graph for every opset.

Weights: ONNX's W is (1, G*u, F) and R is (1, G*u, u), the transposes of Keras's kernel and
recurrent_kernel, with the gate blocks in ONNX's order: LSTM (i, o, f, c) from Keras's
(i, f, c, o); GRU (z, r, h) and SimpleRNN's single block as Keras has them. B is (1, 2*G*u),
the input bias then the recurrent bias: Keras's one bias (LSTM, SimpleRNN, GRU without
reset_after) goes to the input half with zeros after it; a reset_after GRU's (2, 3u) bias
gives both halves, and ``linear_before_reset=1`` is exactly reset_after's
``r * (h U_h + b_rh)``. Without use_bias B is left out (ONNX's default is zeros).

Outputs: ONNX's Y (T, 1, N, u) is squeezed and transposed to Keras's (N, T, u), or Y_h
(1, N, u) squeezed to (N, u). go_backwards is ``direction="reverse"``; ONNX then writes Y in
the input's time order, while Keras returns the outputs in the order they were computed
(last input step first), so Y is reversed along time (Slice with step -1) in that case.
"""
import numpy as np

from shenjing.layers.recurrent import GRU, LSTM, SimpleRNN

# ONNX's names of the cell activations the layers allow; "linear" is Affine(alpha=1, beta=0).
_ACTIVATIONS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "linear": "Affine"}
# Configuration fields the converters honour (or that do not change the output), and those
# they export at one value only; any other field or value is refused by name rather than
# exported with a silently different meaning (a field added to the layers later included).
_FIELDS = {"name", "trainable", "dtype", "units", "activation", "recurrent_activation",
           "use_bias", "kernel_initializer", "recurrent_initializer", "bias_initializer",
           "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer",
           "bias_regularizer", "activity_regularizer", "kernel_constraint",
           "recurrent_constraint", "bias_constraint", "seed", "return_sequences",
           "go_backwards", "unroll", "reset_after", "dropout", "recurrent_dropout"}
# dropout, recurrent_dropout and seed act in training only: the exported inference graph is
# the same whatever they are.
_MUST_BE = {"return_state": False, "stateful": False, "zero_output_for_mask": False}


def _refuse(layer, why):
    raise ValueError(f"export_onnx: {type(layer).__name__} '{layer.name}': {why}")


def _check(layer):
    """ValueError naming the layer for anything the ONNX node cannot express."""
    config = layer.get_config()
    for key, value in config.items():
        if key in _MUST_BE:
            if value != _MUST_BE[key]:
                _refuse(layer, f"{key}={value!r} has no ONNX conversion.")
        elif key not in _FIELDS:
            _refuse(layer, f"configuration field '{key}' has no ONNX conversion.")
    for what in ("activation", "recurrent_activation"):
        name = getattr(layer, what, None)
        if name is not None and name not in _ACTIVATIONS:
            _refuse(layer, f"{what}='{name}' has no ONNX conversion.")
    if len(layer.input_shape) != 3:
        _refuse(layer, f"expects input (batch, timesteps, features), built for "
                       f"{layer.input_shape!r}.")


def _weights(layer, gates, bias_rows):
    """kernel, recurrent_kernel, bias (or None) with the shapes the layer's config implies."""
    F, u = layer.input_shape[-1], layer.units
    want = [(F, gates * u), (u, gates * u)]
    if layer.use_bias:
        want.append((bias_rows, gates * u) if bias_rows > 1 else (gates * u,))
    weights = layer.get_weights()
    if [tuple(w.shape) for w in weights] != want:
        _refuse(layer, f"weights of shapes {[tuple(w.shape) for w in weights]} do not fit "
                       f"its configuration (expected {want}).")
    return [np.asarray(w, np.float32) for w in weights] + [None] * (3 - len(weights))


def _reorder(a, order, axis):
    """The gate blocks along ``axis`` of ``a`` in ``order`` (indices of Keras's blocks)."""
    blocks = np.split(a, len(order), axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


def _activation_attrs(names):
    """activations (+ activation_alpha/beta when one is Affine) of the node. The alpha and
    beta lists get one entry per activation: runtimes that read them positionally and those
    that hand them only to the functions taking parameters (onnxruntime) then agree."""
    acts = [_ACTIVATIONS[n] for n in names]
    attrs = {"activations": acts}
    if "Affine" in acts:
        attrs["activation_alpha"] = [1.0] * len(acts)
        attrs["activation_beta"] = [0.0] * len(acts)
    return attrs


def _recurrent(g, layer, x, op_type, order, names, bias_rows, **attrs):
    """One ONNX recurrent node on x (N, T, F). ``order`` takes Keras's gate blocks to ONNX's;
    ``names`` are the cell's activations in ONNX's order; ``bias_rows`` is 2 for a bias that
    already holds [input bias; recurrent bias] (reset_after GRU), else 1."""
    _check(layer)
    name, u = layer.name, layer.units
    kernel, recurrent, bias = _weights(layer, len(order), bias_rows)
    # (G*u, F) and (G*u, u) with the leading direction axis.
    W = _reorder(kernel.T, order, 0)[None]
    R = _reorder(recurrent.T, order, 0)[None]
    inputs = [g.op("Transpose", [x], name + "/time_major", perm=[1, 0, 2]),
              g.const(W, name + "/W"), g.const(R, name + "/R")]
    if bias is not None:
        if bias_rows == 1:  # Keras's one bias is the input bias; the recurrent one is zero
            bias = np.stack([bias, np.zeros_like(bias)])
        inputs.append(g.const(_reorder(bias, order, 1).reshape(1, -1), name + "/B"))
    attrs.update(_activation_attrs(names))
    if layer.go_backwards:
        attrs["direction"] = "reverse"
    y = g.op(op_type, inputs, name + "/" + op_type.lower(), hidden_size=u, **attrs)
    if not layer.return_sequences:
        # Only the last state is needed: the node writes Y_h (1, N, u), its Y output unnamed.
        node = g.nodes[-1]
        del node.output[:]
        node.output.extend(["", y])
        return g.op("Squeeze", [y, g.const([0], name + "/axis0", np.int64)], name)
    y = g.op("Squeeze", [y, g.const([1], name + "/axis1", np.int64)], name + "/sequence")
    if layer.go_backwards:  # into the order Keras computed the steps in (see module doc)
        y = g.op("Slice", [y, g.const([-1], name + "/start", np.int64),
                           g.const([np.iinfo(np.int64).min], name + "/end", np.int64),
                           g.const([0], name + "/axis0", np.int64),
                           g.const([-1], name + "/step", np.int64)], name + "/reversed")
    return g.op("Transpose", [y], name, perm=[1, 0, 2])


def simple_rnn(g, layer, x):
    return _recurrent(g, layer, x, "RNN", [0], [layer.activation], 1)


def lstm(g, layer, x):
    # ONNX's activations are (f, g, h): the gates', the candidate's and the cell output's.
    return _recurrent(g, layer, x, "LSTM", [0, 3, 1, 2],
                      [layer.recurrent_activation, layer.activation, layer.activation], 1)


def gru(g, layer, x):
    # ONNX's activations are (f, g): the z and r gates', the candidate's.
    return _recurrent(g, layer, x, "GRU", [0, 1, 2],
                      [layer.recurrent_activation, layer.activation],
                      2 if layer.reset_after else 1,
                      linear_before_reset=int(layer.reset_after))


CONVERTERS = {SimpleRNN: simple_rnn, LSTM: lstm, GRU: gru}
