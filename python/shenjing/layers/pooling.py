"""Pooling layers, channels last, with Keras 3 arguments and defaults."""
from shenjing.layers._window import check_data_format, int_tuple, padding_name
from shenjing.layers.base import Layer


class _Pool(Layer):
    _rank = 2
    _max = True

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        cls = type(self).__name__
        self.pool_size = int_tuple(pool_size, self._rank, "pool_size", cls)
        self.strides = self.pool_size if strides is None else \
            int_tuple(strides, self._rank, "strides", cls)
        self.padding = padding_name(padding, cls)
        check_data_format(data_format, cls)
        self.data_format = "channels_last"


_POOL_ARGS = """
    Args:
        pool_size: int or tuple of {n} ints, the window size ({default} by default).
        strides: int or tuple of {n} ints; None (the default) means pool_size.
        padding: 'valid' (the default) or 'same' (output size ceil(input / strides), the
            extra padding after the input when odd, as TensorFlow does).
        data_format: None or 'channels_last' (the only layout supported).
"""


class MaxPooling2D(_Pool):
    """Maximum over windows of each channel: (batch, rows, cols, channels) in and out."""
    __doc__ += _POOL_ARGS.format(n=2, default="(2, 2)")

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling2D(_Pool):
    """Mean over windows of each channel; with 'same' padding a border window averages only
    the cells inside the input (as TF/Keras)."""
    __doc__ += _POOL_ARGS.format(n=2, default="(2, 2)")
    _max = False

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class MaxPooling1D(_Pool):
    """Maximum over windows of steps: (batch, steps, channels) in and out."""
    __doc__ += _POOL_ARGS.format(n=1, default="2")
    _rank = 1

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling1D(_Pool):
    """Mean over windows of steps (border windows with 'same' average only real steps)."""
    __doc__ += _POOL_ARGS.format(n=1, default="2")
    _rank = 1
    _max = False

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class _GlobalPool(Layer):
    _rank = 2
    _max = False

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, type(self).__name__)
        self.data_format = "channels_last"
        self.keepdims = bool(keepdims)


class GlobalAveragePooling2D(_GlobalPool):
    """Mean over rows and cols: (batch, rows, cols, channels) -> (batch, channels), or
    (batch, 1, 1, channels) with ``keepdims=True``."""


class GlobalMaxPooling2D(_GlobalPool):
    """Maximum over rows and cols: (batch, rows, cols, channels) -> (batch, channels), or
    (batch, 1, 1, channels) with ``keepdims=True``."""
    _max = True


class GlobalAveragePooling1D(_GlobalPool):
    """Mean over steps: (batch, steps, channels) -> (batch, channels). With a mask (from
    ``Embedding(mask_zero=True)`` or ``Masking``) the mean is over the unmasked steps."""
    _rank = 1
    supports_masking = True
    _takes_mask = True

    def compute_mask(self, inputs, mask=None):
        return None


class GlobalMaxPooling1D(_GlobalPool):
    """Maximum over steps: (batch, steps, channels) -> (batch, channels)."""
    _rank = 1
    _max = True


MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
