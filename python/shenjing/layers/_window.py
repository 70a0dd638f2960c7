"""Argument checks shared by the convolution, pooling and padding layers (Keras conventions)."""
import numbers


def int_tuple(value, n, what, layer, allow_zero=False):
    """An int or a sequence of n ints -> tuple of n ints (positive unless allow_zero)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items = (int(value),) * n
    else:
        try:
            items = tuple(value)
        except TypeError:
            items = None
        if items is None or len(items) != n or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
            raise ValueError(f"{layer}: {what} must be an integer or a tuple of {n} "
                             f"integer{'s' if n > 1 else ''}, received {value!r}.")
        items = tuple(int(v) for v in items)
    if any(v < 0 or (v == 0 and not allow_zero) for v in items):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{layer}: {what} must contain {kind} integers, received {value!r}.")
    return items


def padding_name(padding, layer, allowed=("valid", "same")):
    if not isinstance(padding, str) or padding.lower() not in allowed:
        names = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise ValueError(f"{layer}: padding must be {names}, received {padding!r}.")
    return padding.lower()


def check_data_format(data_format, layer):
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{layer}: only data_format='channels_last' (NHWC, Keras's default) is supported, "
            f"received {data_format!r}. Move the channel axis last, e.g. "
            f"x.transpose(0, 2, 3, 1) for NCHW images.")


def pair(t):
    """(1, k) for a 1-D tuple (one row), the tuple itself for 2-D."""
    return (1, t[0]) if len(t) == 1 else tuple(t)
