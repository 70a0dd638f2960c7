"""Checks and conversions of what users pass to compile/fit/evaluate/predict: argument values,
numeric arrays, finiteness (in chunks, so a large data set costs no full-size temporary)."""
import numpy as np

from shenjing import _core


def check_batch_size(batch_size):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}.")
    return int(batch_size)


def verbosity(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, received {verbose!r}.")
    return verbose


def numeric(a, what):
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or \
            np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"{what} must be a numeric array, received dtype {a.dtype}.")
    if a.ndim == 0 or a.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {a.shape}): it needs at least one sample.")
    return a


# Input dtypes the core reads directly, converting each batch as it gathers it (so a uint8
# data set is never copied whole as float32); other dtypes are converted here, once.
CORE_DTYPES = frozenset(np.dtype(t) for t in (
    np.float32, np.float64, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32,
    np.uint64, np.int64, np.bool_))
F32_MAX = float(np.finfo(np.float32).max)


def to_float32(a, what):
    """a as float32; values too large for float32 are refused instead of becoming inf."""
    if a.dtype == np.float32:
        return a
    check_finite(a, what)
    return a.astype(np.float32)


def check_finite(a, what):
    """ValueError when a floating array holds NaN/inf or values beyond float32's range.
    Checks in chunks, so a large float64 data set costs no full-size temporary."""
    if a.dtype == np.float32 and a.flags.c_contiguous:
        if not _core.all_finite(a):  # one parallel pass, no temporary array
            raise ValueError(f"{what} contains NaN or infinity; fix or drop those samples "
                             f"first.")
        return
    if not np.issubdtype(a.dtype, np.floating):
        return  # integers and booleans are always finite in float32
    step = max(1, (1 << 22) // max(1, a[:1].size))  # about 4M values per chunk
    for i in range(0, len(a), step):
        chunk = a[i:i + step]
        if not np.isfinite(chunk).all():
            raise ValueError(f"{what} contains NaN or infinity; fix or drop those samples "
                             f"first.")
        if a.dtype.itemsize > 4 and np.abs(chunk).max(initial=0.0) > F32_MAX:
            raise ValueError(f"{what} has values too large for float32 (the largest is about "
                             f"3.4e38); scale them first.")
