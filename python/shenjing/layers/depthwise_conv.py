"""DepthwiseConv1D/2D and SeparableConv1D/2D, channels last, with Keras 3 arguments, defaults
and weights (computed in C++, cpp/src/layers/depthwise_conv.cpp).

Weights in Keras order: DepthwiseConv ``kernel`` (*kernel_size, in, depth_multiplier) and
``bias`` (in * depth_multiplier); SeparableConv ``depthwise_kernel`` (*kernel_size, in,
depth_multiplier), ``pointwise_kernel`` (*(1,) * rank, in * depth_multiplier, filters) and
``bias`` (filters).
"""
import numbers

from shenjing import activations, initializers, regularizers
from shenjing.layers._window import check_data_format, int_tuple, padding_name
from shenjing.layers.base import Layer


class _Depthwise(Layer):
    _rank = 2
    _separable = False

    def _setup(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
               depth_multiplier, activation, use_bias, initializers_, regularizers_,
               activity_regularizer, constraints):
        cls, n = type(self).__name__, self._rank
        if self._separable:
            if isinstance(filters, bool) or not isinstance(filters, numbers.Integral) or \
                    filters <= 0:
                raise ValueError(f"{cls}: filters must be a positive integer, received "
                                 f"{filters!r}.")
            self.filters = int(filters)
        if isinstance(depth_multiplier, bool) or not isinstance(
                depth_multiplier, numbers.Integral) or depth_multiplier <= 0:
            raise ValueError(f"{cls}: Invalid value for argument `depth_multiplier`. Expected a "
                             f"strictly positive value. Received "
                             f"depth_multiplier={depth_multiplier!r}.")
        self.depth_multiplier = int(depth_multiplier)
        self.kernel_size = int_tuple(kernel_size, n, "kernel_size", cls)
        self.strides = int_tuple(strides, n, "strides", cls)
        self.dilation_rate = int_tuple(dilation_rate, n, "dilation_rate", cls)
        self.padding = padding_name(padding, cls)
        check_data_format(data_format, cls)
        self.data_format = "channels_last"
        for what, v in [("activity_regularizer", activity_regularizer)] + list(constraints):
            if v is not None:
                raise ValueError(f"{cls}: {what} is not supported.")
        self.activation = activations.get_name(activation)
        self.use_bias = bool(use_bias)
        for what, v in initializers_:
            setattr(self, what, initializers.get(v))
        for what, v in regularizers_:
            setattr(self, what, regularizers.get(v))

    def _initial_values(self, name, shape):
        init = {"kernel": "depthwise_initializer", "depthwise_kernel": "depthwise_initializer",
                "pointwise_kernel": "pointwise_initializer", "bias": "bias_initializer"}[name]
        return getattr(self, init)(shape)


class _DepthwiseConv(_Depthwise):
    def __init__(self, kernel_size, strides, padding, depth_multiplier, data_format,
                 dilation_rate, activation, use_bias, depthwise_initializer, bias_initializer,
                 depthwise_regularizer, bias_regularizer, activity_regularizer,
                 depthwise_constraint, bias_constraint, **kwargs):
        super().__init__(**kwargs)
        self._setup(None, kernel_size, strides, padding, data_format, dilation_rate,
                    depth_multiplier, activation, use_bias,
                    [("depthwise_initializer", depthwise_initializer),
                     ("bias_initializer", bias_initializer)],
                    [("depthwise_regularizer", depthwise_regularizer),
                     ("bias_regularizer", bias_regularizer)], activity_regularizer,
                    [("depthwise_constraint", depthwise_constraint),
                     ("bias_constraint", bias_constraint)])
        self.activity_regularizer = self.depthwise_constraint = self.bias_constraint = None


class DepthwiseConv2D(_DepthwiseConv):
    """Each input channel convolved with its own ``depth_multiplier`` kernels: output channel
    ``c * depth_multiplier + m`` (Keras's and TensorFlow's order)."""

    _rank = 2

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, **kwargs)


class DepthwiseConv1D(_DepthwiseConv):
    """DepthwiseConv2D over (steps, channels) inputs."""

    _rank = 1

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, **kwargs)


class _SeparableConv(_Depthwise):
    _separable = True

    def __init__(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
                 depth_multiplier, activation, use_bias, depthwise_initializer,
                 pointwise_initializer, bias_initializer, depthwise_regularizer,
                 pointwise_regularizer, bias_regularizer, activity_regularizer,
                 depthwise_constraint, pointwise_constraint, bias_constraint, **kwargs):
        super().__init__(**kwargs)
        self._setup(filters, kernel_size, strides, padding, data_format, dilation_rate,
                    depth_multiplier, activation, use_bias,
                    [("depthwise_initializer", depthwise_initializer),
                     ("pointwise_initializer", pointwise_initializer),
                     ("bias_initializer", bias_initializer)],
                    [("depthwise_regularizer", depthwise_regularizer),
                     ("pointwise_regularizer", pointwise_regularizer),
                     ("bias_regularizer", bias_regularizer)], activity_regularizer,
                    [("depthwise_constraint", depthwise_constraint),
                     ("pointwise_constraint", pointwise_constraint),
                     ("bias_constraint", bias_constraint)])
        self.activity_regularizer = None
        self.depthwise_constraint = self.pointwise_constraint = self.bias_constraint = None


class SeparableConv2D(_SeparableConv):
    """A depthwise convolution (``depth_multiplier`` kernels per input channel) followed by a
    1x1 convolution to ``filters`` channels, then bias and activation."""

    _rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         depth_multiplier, activation, use_bias, depthwise_initializer,
                         pointwise_initializer, bias_initializer, depthwise_regularizer,
                         pointwise_regularizer, bias_regularizer, activity_regularizer,
                         depthwise_constraint, pointwise_constraint, bias_constraint, **kwargs)


class SeparableConv1D(_SeparableConv):
    """SeparableConv2D over (steps, channels) inputs."""

    _rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         depth_multiplier, activation, use_bias, depthwise_initializer,
                         pointwise_initializer, bias_initializer, depthwise_regularizer,
                         pointwise_regularizer, bias_regularizer, activity_regularizer,
                         depthwise_constraint, pointwise_constraint, bias_constraint, **kwargs)
