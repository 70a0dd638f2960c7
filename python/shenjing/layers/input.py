"""Input: a model input, as a symbolic tensor (``Input``) made by an ``InputLayer``."""
from shenjing.layers.base import Layer
from shenjing.layers.node import KerasTensor, Node, check_shape

_DTYPES = ("float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8",
           "uint16", "uint32", "uint64", "bool")


class InputLayer(Layer):
    """The layer behind ``Input(shape)``: holds the per-sample shape; its ``output`` is the
    symbolic input tensor. ``Sequential([InputLayer((784,)), Dense(10)])`` works too."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, **kwargs):
        if shape is None and "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if shape is None and "batch_shape" in kwargs:
            batch_shape = kwargs.pop("batch_shape")
            shape = None if batch_shape is None else tuple(batch_shape)[1:]
        kwargs.pop("sparse", None)
        kwargs.pop("ragged", None)
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input(shape=(784,)).")
        super().__init__(name=name or None, **kwargs)
        self.shape = (None,) + check_shape(shape, "Input shape")
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"Input: batch_size must be a positive integer or None, received "
                             f"{batch_size!r}.")
        self.batch_size = batch_size
        dtype = "float32" if dtype is None else str(getattr(dtype, "name", dtype))
        if dtype not in _DTYPES:
            raise ValueError(f"Input: dtype must be one of {', '.join(_DTYPES)}; received "
                             f"{dtype!r}.")
        self.dtype = dtype
        self.input_shape = self.output_shape = self.shape
        tensor = KerasTensor(self.shape, dtype, name=self.name)
        Node(self, tensor, [], tensor)
        self._input_tensor = tensor

    @property
    def output(self):
        return self._input_tensor

    def get_config(self):
        return {"batch_shape": list(self.shape), "dtype": self.dtype, "sparse": False,
                "name": self.name}

    def count_params(self):
        return 0


def Input(shape=None, batch_size=None, dtype=None, name=None, **kwargs):
    """A symbolic model input of per-sample ``shape`` (without the batch axis): call layers on
    it and pass it to ``Model(inputs, outputs)``, or start a ``Sequential`` with it."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                      **kwargs).output
