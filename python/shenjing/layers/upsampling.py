"""UpSampling1D and UpSampling2D (nearest or bilinear), channels last, as Keras 3."""
import numbers

from shenjing.layers._window import check_data_format, int_tuple
from shenjing.layers.base import Layer


class UpSampling1D(Layer):
    """Repeats each step ``size`` times along the steps axis: (steps, ch) -> (steps * size, ch).

    Args:
        size: positive integer, 2 by default.
    """

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"UpSampling1D: size must be an integer, received {size!r}.")
        if size <= 0:
            raise ValueError(f"UpSampling1D: size must be a positive integer, received {size}.")
        self.size = int(size)


class UpSampling2D(Layer):
    """Upsamples (rows, cols, channels) inputs by ``size``: (rows * size[0], cols * size[1]).

    Args:
        size: int or tuple of 2 ints, (2, 2) by default.
        data_format: None or 'channels_last' (the only layout supported).
        interpolation: 'nearest' (the default: each cell repeated) or 'bilinear'
            (half-pixel centres, as Keras's ``ops.image.resize``, TensorFlow and JAX, and
            PyTorch's ``interpolate(..., align_corners=False)``; edges clamp to the border).
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, "UpSampling2D")
        self.data_format = "channels_last"
        self.size = int_tuple(size, 2, "size", "UpSampling2D")
        if not isinstance(interpolation, str):
            raise TypeError(f"UpSampling2D: interpolation must be a string, received "
                            f"{interpolation!r}.")
        if interpolation.lower() not in ("nearest", "bilinear"):
            raise ValueError(f"UpSampling2D: interpolation must be 'nearest' or 'bilinear' "
                             f"(the others of Keras are not supported), received "
                             f"{interpolation!r}.")
        self.interpolation = interpolation.lower()
