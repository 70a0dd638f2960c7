"""Conv1D and Conv2D, channels last (NHWC), with Keras 3 arguments and defaults."""
import numbers

from shenjing import activations, initializers, regularizers
from shenjing.layers._window import check_data_format, int_tuple, padding_name
from shenjing.layers.base import Layer


def _set_window_options(layer, cls, filters, kernel_size, strides, dilation_rate):
    """filters, kernel_size, strides and dilation_rate of a convolution (Conv and
    ConvTranspose), checked and set as tuples of ``layer._rank`` ints."""
    if isinstance(filters, bool) or not isinstance(filters, numbers.Integral) or filters <= 0:
        raise ValueError(f"{cls}: filters must be a positive integer, received {filters!r}.")
    n = layer._rank
    layer.filters = int(filters)
    layer.kernel_size = int_tuple(kernel_size, n, "kernel_size", cls)
    layer.strides = int_tuple(strides, n, "strides", cls)
    layer.dilation_rate = int_tuple(dilation_rate, n, "dilation_rate", cls)


def _set_kernel_options(layer, cls, activation, use_bias, kernel_initializer, bias_initializer,
                        kernel_regularizer, bias_regularizer, activity_regularizer,
                        kernel_constraint, bias_constraint):
    """The kernel/bias arguments convolutions share (Conv and ConvTranspose), checked and set;
    activity regularizers and constraints are not implemented (ValueError)."""
    for what, v in (("activity_regularizer", activity_regularizer),
                    ("kernel_constraint", kernel_constraint),
                    ("bias_constraint", bias_constraint)):
        if v is not None:
            raise ValueError(f"{cls}: {what} is not supported.")
    layer.activation = activations.get_name(activation)
    layer.use_bias = bool(use_bias)
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)


class _Conv(Layer):
    _rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        n = self._rank
        _set_window_options(self, cls, filters, kernel_size, strides, dilation_rate)
        allowed = ("valid", "same", "causal") if n == 1 else ("valid", "same")
        self.padding = padding_name(padding, cls, allowed)
        check_data_format(data_format, cls)
        self.data_format = "channels_last"
        if groups != 1:
            raise ValueError(f"{cls}: groups={groups!r} is not supported (only groups=1).")
        self.groups = 1
        _set_kernel_options(self, cls, activation, use_bias, kernel_initializer,
                            bias_initializer, kernel_regularizer, bias_regularizer,
                            activity_regularizer, kernel_constraint, bias_constraint)

    def _initial_values(self, name, shape):
        init = self.kernel_initializer if name == "kernel" else self.bias_initializer
        return init(shape)


class Conv2D(_Conv):
    """2-D convolution over (rows, cols, channels) inputs: ``activation(conv(x, kernel) + bias)``.

    The kernel has shape ``(kernel_rows, kernel_cols, in_channels, filters)`` as in Keras.

    Args:
        filters: positive integer, number of output channels.
        kernel_size: int or tuple of 2 ints, the window size.
        strides: int or tuple of 2 ints, (1, 1) by default.
        padding: 'valid' (no padding, the default) or 'same' (output size ceil(input /
            stride); when the padding is odd the extra row/column goes at the bottom/right,
            as TensorFlow does).
        data_format: None or 'channels_last' (the only layout supported).
        dilation_rate: int or tuple of 2 ints, (1, 1) by default.
        groups: must be 1.
        activation: name or function from ``shenjing.activations``; None means linear.
        use_bias: whether to add a bias vector (True by default).
        kernel_initializer: 'glorot_uniform' by default.
        bias_initializer: 'zeros' by default.
        kernel_regularizer, bias_regularizer: None, 'l1', 'l2', or a regularizer instance.

    Input shape ``(batch, rows, cols, channels)``; for grayscale images add the channel axis,
    e.g. ``x[..., None]``. Output shape ``(batch, new_rows, new_cols, filters)``.
    """

    _rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)


class Conv1D(_Conv):
    """1-D convolution over (steps, channels) inputs: ``activation(conv(x, kernel) + bias)``.

    The kernel has shape ``(kernel_size, in_channels, filters)`` as in Keras.

    Args:
        filters: positive integer, number of output channels.
        kernel_size: int or tuple of 1 int.
        strides: int or tuple of 1 int, 1 by default.
        padding: 'valid' (the default), 'same' (extra padding at the end when odd) or
            'causal' (``(kernel_size - 1) * dilation_rate`` zeros before the sequence).
        dilation_rate: int or tuple of 1 int, 1 by default.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer: as for ``Conv2D``.

    Input shape ``(batch, steps, channels)``; output ``(batch, new_steps, filters)``.
    """

    _rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)
