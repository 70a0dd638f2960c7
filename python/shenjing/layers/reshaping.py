"""Flatten and Reshape (new per-sample shapes over the same data, free at run time), padding,
cropping, RepeatVector and Permute."""
import numbers

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


class Cropping1D(Layer):
    """Removes steps from the start and end of (steps, channels) inputs.

    Args:
        cropping: int ``c`` (c on both sides) or tuple ``(start, end)``; (1, 1) by default.
            Together they must leave at least one step.
    """

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pad_pair(cropping, "cropping", "Cropping1D")


class Cropping2D(Layer):
    """Removes rows and columns at the borders of (rows, cols, channels) inputs.

    Args:
        cropping: int ``c`` (every side), tuple ``(rows, cols)`` (symmetric), or
            ``((top, bottom), (left, right))``; ((0, 0), (0, 0)) by default. Each axis must
            keep at least one cell.
        data_format: None or 'channels_last' (the only layout supported).
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        from shenjing.layers._window import check_data_format
        cls = "Cropping2D"
        check_data_format(data_format, cls)
        self.data_format = "channels_last"
        if isinstance(cropping, numbers.Integral) and not isinstance(cropping, bool):
            c = _pad_pair(cropping, "cropping", cls)[0]
            self.cropping = ((c, c), (c, c))
        elif isinstance(cropping, (tuple, list)) and len(cropping) == 2:
            self.cropping = (_pad_pair(cropping[0], "cropping[0] (rows)", cls),
                             _pad_pair(cropping[1], "cropping[1] (cols)", cls))
        else:
            raise ValueError(f"{cls}: cropping must be an int, a tuple of 2 ints (rows, cols) "
                             f"or a tuple of 2 tuples of 2 ints ((top, bottom), (left, right)), "
                             f"received {cropping!r}.")


class RepeatVector(Layer):
    """Repeats each sample's vector ``n`` times: (batch, features) -> (batch, n, features).

    Args:
        n: positive integer, the number of repetitions.
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"RepeatVector: n must be an integer, received {n!r}.")
        if n <= 0:
            raise ValueError(f"RepeatVector: n must be a positive integer, received {n}.")
        self.n = int(n)


class Permute(Layer):
    """Permutes the axes of each sample: ``Permute((2, 1))`` turns (10, 64) into (64, 10).

    Args:
        dims: tuple of integers, a permutation of 1, ..., k over the k non-batch axes (the
            batch axis is not counted, as in Keras).
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            items = tuple(dims)
        except TypeError:
            raise TypeError(f"Permute: dims must be a tuple of integers, received "
                            f"{dims!r}.") from None
        if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in items):
            raise TypeError(f"Permute: dims must be a tuple of integers, received {dims!r}.")
        self.dims = tuple(int(d) for d in items)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Permute: the set of indices in dims must be consecutive and "
                             f"start from 1, received dims={dims!r}.")
