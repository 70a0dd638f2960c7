"""Activation functions (NumPy reference versions); layers run them in C++ by name."""
import math

import numpy as np

_KNOWN = ("linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "gelu",
          "softplus", "swish")


def linear(x):
    return np.asarray(x)


def relu(x):
    return np.maximum(x, 0)


def sigmoid(x):
    x = np.asarray(x)
    return 0.5 * (1 + np.tanh(0.5 * x))


def tanh(x):
    return np.tanh(x)


def softmax(x, axis=-1):
    x = np.asarray(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def leaky_relu(x, negative_slope=0.2):
    x = np.asarray(x)
    return np.where(x > 0, x, negative_slope * x)


def elu(x, alpha=1.0):
    x = np.asarray(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def gelu(x, approximate=False):
    x = np.asarray(x)
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1 + erf(x / math.sqrt(2)))).astype(np.result_type(x, np.float32))


def softplus(x):
    return np.logaddexp(0, x)


def swish(x):
    return np.asarray(x) * sigmoid(x)


silu = swish
_ALIASES = {"silu": "swish", None: "linear", "None": "linear"}


def serialize(activation):
    """The Keras name of an activation given as a name, one of these functions, or None."""
    return get_name(activation)


def get_name(identifier):
    """Resolves an activation (name string, function from this module, or None) to its name."""
    if identifier is None or identifier == "":
        return "linear"
    if callable(identifier):
        name = getattr(identifier, "__name__", None)
        name = _ALIASES.get(name, name)
        if name in _KNOWN and globals().get(name) is identifier or identifier is silu:
            return name
        raise ValueError(
            f"Unsupported activation function {identifier!r}: only the built-in activations "
            f"run in the C++ core. Known activations: {', '.join(_KNOWN)}.")
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        if name in _KNOWN:
            return name
        raise ValueError(f"Unknown activation '{identifier}'. Known activations: "
                         f"{', '.join(_KNOWN)}.")
    raise TypeError(f"Could not interpret activation identifier: {identifier!r}.")


def get(identifier):
    """Returns the activation function for a name or function (Keras ``activations.get``)."""
    return globals()[get_name(identifier)]
