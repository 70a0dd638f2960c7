"""What imdb and reuters share: reading their .npz of word-id lists without pickle, Keras's
re-indexing of the ids (start_char, index_from, oov_char, skip_top, num_words, maxlen), and
the word index JSON files."""
import json

import numpy as np

from shenjing.datasets import _files, _npz


def load_arrays(dataset, name, keys):
    (path,) = _files.get_files(dataset, [name])
    arrays = _npz.load_npz(path)
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the arrays {missing}; it has {sorted(arrays)}.")
    for k in keys:
        if arrays[k].ndim != 1:
            raise ValueError(f"{path}: '{k}' should be one-dimensional, it has shape "
                             f"{arrays[k].shape}.")
    return [arrays[k] for k in keys]


def _as_id_list(x, what):
    seq = list(x)
    if not all(isinstance(w, (int, np.integer)) and not isinstance(w, (bool, np.bool_))
               for w in seq):
        raise ValueError(f"{what} holds a sequence that is not a list of integer word ids.")
    return [int(w) for w in seq]


def check_args(num_words, skip_top, maxlen, start_char, oov_char, index_from):
    for name, v, none_ok in (("num_words", num_words, True), ("skip_top", skip_top, False),
                             ("maxlen", maxlen, True), ("start_char", start_char, True),
                             ("oov_char", oov_char, True), ("index_from", index_from, False)):
        if v is None and none_ok:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"`{name}` must be a non-negative integer"
                             f"{' or None' if none_ok else ''}. Received: {name}={v!r}")


def reindex(seqs, start_char, index_from, what):
    """Keras's shift of the ids by ``index_from``, after a ``start_char``."""
    seqs = [_as_id_list(x, what) for x in seqs]
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in seqs]
    return [[w + index_from for w in x] for x in seqs]


def remove_long(maxlen, seqs, labels):
    """Keras's remove_long_seq: keeps the sequences shorter than ``maxlen``."""
    keep = [i for i, x in enumerate(seqs) if len(x) < maxlen]
    return [seqs[i] for i in keep], labels[np.asarray(keep, dtype=np.int64)]


def limit_vocabulary(xs, num_words, skip_top, oov_char):
    if not num_words:
        num_words = max((max(x) for x in xs if x), default=0)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def object_array(seqs):
    """A 1-D object array of lists (np.array would make a 2-D array when all the lists have
    the same length)."""
    out = np.empty(len(seqs), dtype=object)
    out[:] = seqs
    return out


def word_index(dataset, name):
    (path,) = _files.get_files(dataset, [name])
    with open(path, encoding="utf-8") as f:
        try:
            index = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(index, dict):
        raise ValueError(f"{path} is not a JSON object of word -> index.")
    return index
