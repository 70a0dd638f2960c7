"""One batch from a Python iterable as NumPy arrays: torch tensors (and anything with
``__array__``) converted without a copy where the memory allows, the batch unpacked into
``(x, y, sample_weight)`` as Keras's data adapters do, class weights turned into sample
weights (Keras's ``class_weight_to_sample_weights``)."""
import numpy as np


def _is_torch_tensor(v):
    return type(v).__module__.startswith("torch") and hasattr(v, "detach")


def to_numpy(v):
    """An array leaf as a NumPy array; a CPU torch tensor shares its memory."""
    if isinstance(v, np.ndarray):
        return v
    if _is_torch_tensor(v):
        t = v.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
            t = t.float()
        return t.numpy()
    return np.asarray(v)


def map_arrays(value):
    """to_numpy over a batch's tuples, lists and dicts (None stays None)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(map_arrays(v) for v in value)
    if isinstance(value, list):
        return [map_arrays(v) for v in value]
    if isinstance(value, dict):
        return {k: map_arrays(v) for k, v in value.items()}
    return to_numpy(value)


def unpack(batch, where):
    """(x, y, sample_weight) of a batch: ``(x,)``, ``(x, y)``, ``(x, y, sample_weight)`` (a
    list is taken as a tuple, as Keras does for PyDataset and torch DataLoader batches), or x
    alone (an array or a dict of inputs)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if isinstance(batch, tuple):
        if not 1 <= len(batch) <= 3:
            raise ValueError(
                f"{where} must be a tuple, either (input,) or (inputs, targets) or (inputs, "
                f"targets, sample_weights); received a tuple of {len(batch)} elements.")
        return tuple(batch) + (None,) * (3 - len(batch))
    if isinstance(batch, dict) or hasattr(batch, "shape") or hasattr(batch, "__array__"):
        return batch, None, None
    raise ValueError(
        f"{where} must be a tuple, either (input,) or (inputs, targets) or (inputs, targets, "
        f"sample_weights); received {str(batch)[:100]} of type {type(batch).__name__}.")


def class_weight_to_sample_weights(y, class_weight):
    """One weight per sample: ``class_weight[class]`` (1.0 for a class not in the dict); the
    class of one-hot targets is their argmax, of a trailing axis of 1 its value (Keras)."""
    y = np.asarray(y)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else np.squeeze(y, axis=-1)
    if y.ndim > 1:
        raise ValueError("`class_weight` not supported for 3+ dimensional targets.")
    labels = np.round(y).astype(np.int32)
    return np.array([class_weight.get(int(c), 1.0) for c in labels], dtype=np.float32)


def check_class_weight(class_weight):
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be a dict mapping class indices to weights, "
                         f"received {class_weight!r}.")
    for k, v in class_weight.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"class_weight keys must be integer class indices, received "
                             f"{k!r}.")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) \
                or not np.isfinite(v):
            raise ValueError(f"class_weight values must be finite numbers, received {v!r} "
                             f"for class {k}.")
