"""Conv1DTranspose and Conv2DTranspose, channels last, with Keras 3 arguments and defaults."""
from shenjing.layers._window import check_data_format, int_tuple, padding_name
from shenjing.layers.base import Layer
from shenjing.layers.convolutional import _Conv, _set_kernel_options, _set_window_options


class _ConvTranspose(Layer):
    _rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        n = self._rank
        _set_window_options(self, cls, filters, kernel_size, strides, dilation_rate)
        self.padding = padding_name(padding, cls)
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = int_tuple(output_padding, n, "output_padding", cls,
                                            allow_zero=True)
            for i, (op, s) in enumerate(zip(self.output_padding, self.strides)):
                if op >= s:  # Keras's rule: the extra cells lie within one stride
                    raise ValueError(
                        f"{cls}: output_padding must be strictly less than strides along each "
                        f"axis; at axis {i} output_padding is {op} and strides is {s} "
                        f"(received output_padding={output_padding!r}, strides={strides!r}).")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{cls}: strides > 1 is not supported together with "
                             f"dilation_rate > 1, received strides={strides!r} and "
                             f"dilation_rate={dilation_rate!r}.")
        check_data_format(data_format, cls)
        self.data_format = "channels_last"
        _set_kernel_options(self, cls, activation, use_bias, kernel_initializer,
                            bias_initializer, kernel_regularizer, bias_regularizer,
                            activity_regularizer, kernel_constraint, bias_constraint)

    _initial_values = _Conv._initial_values


class Conv2DTranspose(_ConvTranspose):
    """2-D transposed convolution (the adjoint of ``Conv2D``, used to upsample in decoders).

    Each input cell adds ``kernel[i, j] . x[h, w]`` to the output cell
    ``(h * strides[0] + i * dilation_rate[0] - pad_top, ...)``. The kernel has shape
    ``(kernel_rows, kernel_cols, filters, in_channels)`` as in Keras.

    Args:
        filters: positive integer, number of output channels.
        kernel_size: int or tuple of 2 ints, the window size.
        strides: int or tuple of 2 ints, (1, 1) by default.
        padding: 'valid' (the default) or 'same'. Output size per axis, with
            ``k' = (kernel_size - 1) * dilation_rate + 1``: 'valid' gives
            ``(in - 1) * strides + max(k', strides)``, 'same' gives ``in * strides``.
        output_padding: None (the default: size as above) or int / tuple of 2 ints, each
            smaller than its stride: the output size is then ``(in - 1) * strides + k' + op``
            ('valid') or ``(in - 1) * strides + k' % 2 + op`` ('same').
        data_format: None or 'channels_last' (the only layout supported).
        dilation_rate: int or tuple of 2 ints, (1, 1) by default; > 1 needs strides 1.
        activation: name or function from ``shenjing.activations``; None means linear.
        use_bias: whether to add a bias vector (True by default).
        kernel_initializer: 'glorot_uniform' by default.
        bias_initializer: 'zeros' by default.
        kernel_regularizer, bias_regularizer: None, 'l1', 'l2', or a regularizer instance.

    Input shape ``(batch, rows, cols, channels)``; output ``(batch, new_rows, new_cols,
    filters)``.
    """

    _rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format,
                         dilation_rate, activation, use_bias, kernel_initializer,
                         bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)


class Conv1DTranspose(_ConvTranspose):
    """1-D transposed convolution over (steps, channels) inputs (the adjoint of ``Conv1D``).

    The kernel has shape ``(kernel_size, filters, in_channels)`` as in Keras. Arguments and
    output length as for ``Conv2DTranspose``, each an int or a tuple of 1 int (strides and
    dilation_rate 1 by default).

    Input shape ``(batch, steps, channels)``; output ``(batch, new_steps, filters)``.
    """

    _rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format,
                         dilation_rate, activation, use_bias, kernel_initializer,
                         bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)
