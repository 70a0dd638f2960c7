"""``utils.timeseries_dataset_from_array`` (keras/src/utils/timeseries_dataset_utils.py):
sliding windows over an array whose first axis is time, gathered one batch at a time (the
windows are never all materialized)."""
import numpy as np

from shenjing import _dataset_utils as du


def _int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{what}` must be an integer. Received: {what}={value!r}")
    return int(value)


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None, format="tf"):
    """Keras's ``timeseries_dataset_from_array`` as a ``utils.PyDataset``.

    Window ``i`` holds ``data[start_index + p_i + k * sampling_rate]`` for ``k`` in
    ``range(sequence_length)``, where ``p_i = i * sequence_stride``; its target is
    ``targets[start_index + p_i]``. Each batch is ``(windows, targets)``, or ``windows`` alone
    when ``targets`` is None; ``batch_size=None`` yields single windows. With ``shuffle``, the
    window order of the first pass is Keras's (``np.random.RandomState(seed)`` shuffling the
    start positions); Keras's tf.data adds a per-iteration shuffle within a buffer of
    ``8 * batch_size`` windows that cannot be reproduced without TensorFlow, so later passes
    here draw a fresh permutation of all windows from ``seed`` instead. ``format`` ('tf' or
    'grain') is accepted as in Keras; both give the PyDataset.
    """
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError(f"`data` must be an array whose first axis is time, received a "
                         f"scalar {data!r}.")
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError("`targets` must be an array (one target per timestep) or None.")
    sequence_length = _int(sequence_length, "sequence_length")
    sequence_stride = _int(sequence_stride, "sequence_stride")
    sampling_rate = _int(sampling_rate, "sampling_rate")
    if sequence_length <= 0:
        raise ValueError(f"`sequence_length` must be higher than 0. Received: "
                         f"sequence_length={sequence_length}")
    if start_index:
        start_index = _int(start_index, "start_index")
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: "
                             f"start_index={start_index}")
        if start_index >= len(data):
            raise ValueError(f"`start_index` must be lower than the length of the data. "
                             f"Received: start_index={start_index}, for data of length "
                             f"{len(data)}")
    if end_index:
        end_index = _int(end_index, "end_index")
        if start_index and end_index <= start_index:
            raise ValueError(f"`end_index` must be higher than `start_index`. Received: "
                             f"start_index={start_index}, and end_index={end_index} ")
        if end_index >= len(data):
            raise ValueError(f"`end_index` must be lower than the length of the data. "
                             f"Received: end_index={end_index}, for data of length "
                             f"{len(data)}")
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: "
                             f"end_index={end_index}")
    if sampling_rate <= 0:
        raise ValueError(f"`sampling_rate` must be higher than 0. Received: "
                         f"sampling_rate={sampling_rate}")
    if sampling_rate >= len(data):
        raise ValueError(f"`sampling_rate` must be lower than the length of the data. "
                         f"Received: sampling_rate={sampling_rate}, for data of length "
                         f"{len(data)}")
    if sequence_stride <= 0:
        raise ValueError(f"`sequence_stride` must be higher than 0. Received: "
                         f"sequence_stride={sequence_stride}")
    if sequence_stride >= len(data):
        raise ValueError(f"`sequence_stride` must be lower than the length of the data. "
                         f"Received: sequence_stride={sequence_stride}, for data of length "
                         f"{len(data)}")
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: '
                         f"format={format}")
    batch_size = du.check_positive_int(batch_size, "batch_size", allow_none=True)
    seed = du.check_seed(seed)
    start_index = start_index or 0
    end_index = end_index or len(data)

    num_seqs = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets) - start_index)
    # Keras draws the start positions this way (int32 when they fit, as its tf path).
    positions = np.arange(0, max(num_seqs, 0), sequence_stride,
                          dtype=np.int32 if num_seqs < 2147483647 else np.int64)
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(1e6))
        np.random.RandomState(seed).shuffle(positions)
    positions = positions.astype(np.int64) + start_index
    steps = np.arange(sequence_length, dtype=np.int64) * sampling_rate

    def load(indices):
        starts = positions[indices]
        windows = data[starts[:, None] + steps[None, :]]
        if targets is None:
            return windows
        return windows, targets[starts]

    return du.SampleDataset(len(positions), load, batch_size, shuffle, seed)
