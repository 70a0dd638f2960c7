"""Merge layers (Keras 3's ``keras.layers.merging``): layers called on a list of tensors.

``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum`` and ``Minimum`` combine their
inputs elementwise. Shapes broadcast as in Keras: they are aligned on their last axes (an
input of lower rank gets axes of size 1 after the batch axis) and an axis of size 1 stretches
to the other inputs' size, so ``(None, 3, 4)`` and ``(None, 1, 4)`` or ``(None, 4)`` give
``(None, 3, 4)``. ``Concatenate`` joins inputs along one axis and ``Dot`` takes the batch dot
product of two. The lower-case functions (``add([a, b])``, ``concatenate([a, b], axis=1)``,
...) build the layer and call it at once, as Keras's do.

The computation is the C++ core's (``cpp/src/layers/merge.cpp``, ``concatenate.cpp``,
``dot.cpp``), built from ``get_config()`` like every layer; shapes are checked when the layer is
built on its inputs, with Keras's messages.
"""
import numbers

from shenjing.layers.base import Layer


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class _Merge(Layer):
    """Base of the elementwise merges: no arguments besides the common layer ones (name,
    trainable, dtype), so ``get_config()`` holds just those, as Keras's."""

    _multi_input = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


class Add(_Merge):
    """Elementwise sum of a list of inputs: ``inputs[0] + inputs[1] + ...``.

    Example: ``Add()([x1, x2])`` with two ``(None, 8)`` tensors gives ``(None, 8)``.
    """


class Subtract(_Merge):
    """Elementwise difference of exactly two inputs: ``inputs[0] - inputs[1]``.

    Called on any other number of inputs, it raises ValueError.
    """


class Multiply(_Merge):
    """Elementwise product of a list of inputs."""


class Average(_Merge):
    """Elementwise mean of a list of inputs: ``(inputs[0] + ... + inputs[k-1]) / k``."""


class Maximum(_Merge):
    """Elementwise maximum of a list of inputs.

    The gradient of each output goes to the first input holding the maximum (TensorFlow's
    rule; JAX and PyTorch split it between tied inputs instead).
    """


class Minimum(_Merge):
    """Elementwise minimum of a list of inputs; ties send the gradient to the first input."""


class Concatenate(Layer):
    """Concatenates a list of inputs along ``axis``.

    Args:
        axis: int, the axis to join along, counted with the batch axis as Keras counts it:
            -1 (the default) is the last axis, 1 the first after the batch. Every input must
            have the same shape except along this axis. 0 (the batch axis) is refused.
    """

    _multi_input = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(axis):
            raise TypeError(f"Concatenate: axis must be an integer, received {axis!r}.")
        if axis == 0:
            raise ValueError("Concatenate: axis=0 is the batch axis; concatenate along another "
                             "axis (axis=-1 is the last one).")
        self.axis = int(axis)


class Dot(Layer):
    """Dot product of two inputs along one axis of each (Keras's batch dot).

    With inputs ``(None, 3, 5)`` and ``(None, 10, 3)`` and ``axes=(1, 2)``, the output is
    ``(None, 5, 10)``: the first input's remaining axes, then the second's. Two vectors give
    ``(None, 1)``.

    Args:
        axes: int (the same axis of both inputs) or a pair of ints (one axis per input),
            counted with the batch axis (negative values count from the end). The two axes must
            have the same size; axis 0 (the batch axis) is refused.
        normalize: bool, False by default. If True, both inputs are L2-normalized along their
            dot axes first (``x / max(|x|, 1e-7)``), so the output is the cosine proximity.
    """

    _multi_input = True

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(axes):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(f"Invalid type for argument `axes`: it should be a list or an "
                                f"int. Received: axes={axes!r}")
            if len(axes) != 2:
                raise ValueError(f"Invalid format for argument `axes`: it should contain two "
                                 f"elements. Received: axes={axes!r}")
            if not all(_is_int(a) for a in axes):
                raise ValueError(f"Invalid format for argument `axes`: list elements should be "
                                 f"integers. Received: axes={axes!r}")
        pair = (axes, axes) if _is_int(axes) else tuple(axes)
        if 0 in pair:
            raise ValueError(f"Dot: cannot perform batch_dot over axis 0 (the batch axis). "
                             f"Received: axes={axes!r}")
        if not isinstance(normalize, bool):
            raise TypeError(f"Dot: normalize must be True or False, received {normalize!r}.")
        self.axes = int(axes) if _is_int(axes) else [int(a) for a in axes]
        self.normalize = normalize


# -- functional interface: build the layer and call it on the inputs, as Keras's ---------------
def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``: the elementwise sum of a list of tensors."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``: ``inputs[0] - inputs[1]``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``: the elementwise product of a list of tensors."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``: the elementwise mean of a list of tensors."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``: the elementwise maximum of a list of tensors."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``: the elementwise minimum of a list of tensors."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """``Dot(axes=axes, normalize=normalize, **kwargs)(inputs)``; ``axes`` defaults to -1 as
    in Keras's ``keras.layers.dot``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
