"""Keras's activation layers with their own arguments: ReLU, LeakyReLU, PReLU, ELU, Softmax
(computed in C++, cpp/src/layers/activation_layers.cpp)."""
import numbers
import warnings

from shenjing import initializers, regularizers
from shenjing.layers.base import Layer


def _number(cls, what, v, minimum=None, allow_none=False):
    """v as a float (or None where allowed); ValueError naming the layer otherwise."""
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != v or \
            abs(v) == float("inf"):
        raise ValueError(f"{cls}: {what} must be a finite number, received {v!r}.")
    if minimum is not None and v < minimum:
        raise ValueError(f"{what} of a {cls} layer cannot be a negative value. "
                         f"Received: {what}={v}")
    return float(v)


class ReLU(Layer):
    """Keras's ReLU layer: ``x`` above ``threshold`` (clipped at ``max_value`` when given),
    ``negative_slope * (x - threshold)`` below it.

    Args:
        max_value: float >= 0 or None (unbounded, the default).
        negative_slope: float >= 0, 0.0 by default.
        threshold: float >= 0, 0.0 by default.
    """

    supports_masking = True

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _number("ReLU", "max_value", max_value, 0.0, allow_none=True)
        self.negative_slope = _number("ReLU", "negative_slope", negative_slope, 0.0)
        self.threshold = _number("ReLU", "threshold", threshold, 0.0)


class LeakyReLU(Layer):
    """``x`` for x > 0, ``negative_slope * x`` otherwise (0.3 by default, as Keras)."""

    supports_masking = True
    _config_kwargs = ("alpha",)  # Keras 2 configs

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras 2's name, accepted with Keras 3's warning
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.")
        super().__init__(**kwargs)
        self.negative_slope = _number("LeakyReLU", "negative_slope", negative_slope, 0.0)


class ELU(Layer):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise.

    Keras 3's ELU leaves ``alpha`` out of its config (a saved ELU comes back with alpha 1.0);
    shenjing writes it, so a model saved here loads with the alpha it was trained with, and a
    Keras file without it loads with Keras's 1.0.
    """

    supports_masking = True

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number("ELU", "alpha", alpha)


def _initializer(value):
    # Keras also takes class names ("Zeros", PReLU's default).
    if isinstance(value, str):
        cls = getattr(initializers, value, None)
        if isinstance(cls, type) and issubclass(cls, initializers.Initializer):
            return cls()
    return initializers.get(value)


class PReLU(Layer):
    """Parametric ReLU: ``x`` for x > 0, ``alpha * x`` otherwise, with a trained ``alpha`` of
    the input's per-sample shape; ``shared_axes`` (1-based, after the batch axis) share one
    alpha along those axes (``shared_axes=[1, 2]`` for one alpha per channel of an image).

    Weights: alpha.
    """

    supports_masking = True

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        if alpha_constraint is not None:
            raise ValueError(f"PReLU: alpha_constraint is not supported (constraints are not "
                             f"implemented); received {alpha_constraint!r:.80}.")
        self.alpha_initializer = _initializer(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = None
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) and a >= 1
                       for a in axes):
                raise ValueError(f"PReLU: shared_axes must be None, an integer or a list of "
                                 f"integers >= 1 (axes after the batch axis), received "
                                 f"{shared_axes!r}.")
            self.shared_axes = [int(a) for a in axes]

    def _initial_values(self, name, shape):
        return self.alpha_initializer(shape)


class Softmax(Layer):
    """Softmax over ``axis`` (an int, -1 by default, or a list of adjacent axes), counting the
    batch axis as Keras does. A masked input (Keras's ``mask`` argument) is refused."""

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)

        def is_int(v):
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)
        if is_int(axis):
            self.axis = int(axis)
        elif isinstance(axis, (list, tuple)) and axis and all(is_int(a) for a in axis):
            self.axis = [int(a) for a in axis]
        else:
            raise ValueError(f"Softmax: axis must be an integer or a list of integers, "
                             f"received {axis!r}.")

    def compute_mask(self, inputs, previous_mask):
        if previous_mask is not None:  # Keras sets the masked positions to -1e9 first
            raise ValueError(f"Softmax '{self.name}': its input carries a mask (from "
                             f"Embedding(mask_zero=True) or Masking); a masked softmax is not "
                             f"supported.")
        return None
