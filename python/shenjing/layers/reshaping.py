"""Flatten and Reshape: new per-sample shapes over the same data (free at run time)."""
from shenjing.layers.base import Layer


class Flatten(Layer):
    """Flattens each sample to one axis: (None, 28, 28) -> (None, 784)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        from shenjing.layers._window import check_data_format
        check_data_format(data_format, "Flatten")
        self.data_format = "channels_last"


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            self.target_shape = tuple(int(s) for s in target_shape)
        except TypeError:
            raise TypeError(f"Reshape: target_shape must be a tuple of integers, received "
                            f"{target_shape!r}.") from None


def _pad_pair(value, what, cls):
    from shenjing.layers._window import int_tuple
    return int_tuple(value, 2, what, cls, allow_zero=True)


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around (rows, cols, channels) inputs.

    Args:
        padding: int ``p`` (p rows/cols on every side), tuple ``(rows, cols)`` (symmetric), or
            ``((top, bottom), (left, right))``; (1, 1) by default.
        data_format: None or 'channels_last' (the only layout supported).
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        from shenjing.layers._window import check_data_format, int_tuple
        cls = "ZeroPadding2D"
        check_data_format(data_format, cls)
        self.data_format = "channels_last"
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and \
                all(isinstance(p, (tuple, list)) for p in padding):
            self.padding = (_pad_pair(padding[0], "padding", cls),
                            _pad_pair(padding[1], "padding", cls))
        else:
            r, c = int_tuple(padding, 2, "padding", cls, allow_zero=True)
            self.padding = ((r, r), (c, c))


class ZeroPadding1D(Layer):
    """Adds steps of zeros before and after (steps, channels) inputs.

    Args:
        padding: int ``p`` (p on both sides) or tuple ``(before, after)``; 1 by default.
    """

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        from shenjing.layers._window import check_data_format
        check_data_format(data_format, "ZeroPadding1D")
        self.data_format = "channels_last"
        self.padding = _pad_pair(padding, "padding", "ZeroPadding1D")
