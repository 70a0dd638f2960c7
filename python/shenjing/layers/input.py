"""Input: declares the per-sample input shape of a model."""
from shenjing.layers.base import Layer, _shape_tuple


class InputLayer(Layer):
    """Placeholder for the model input; ``Sequential([Input((784,)), Dense(10)])``."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, **kwargs):
        if shape is None and "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input(shape=(784,)).")
        super().__init__(name=name, **kwargs)
        self.shape = (None,) + _shape_tuple(shape, "Input shape")
        self.batch_size = batch_size


def Input(shape=None, batch_size=None, dtype=None, name=None, **kwargs):
    """Declares a model input of per-sample ``shape`` (without the batch axis)."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, **kwargs)
