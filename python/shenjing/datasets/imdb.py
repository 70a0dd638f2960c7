"""IMDB sentiment classification dataset."""
import numpy as np

from shenjing.datasets import _sequences as sq


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113,
              start_char=1, oov_char=2, index_from=3, **kwargs):
    """Loads the IMDB dataset, as ``keras.datasets.imdb.load_data()``: 25,000 movie reviews
    for training and 25,000 for testing, labelled by sentiment (1 positive, 0 negative),
    each a list of word ids (a word's id is its frequency rank + ``index_from``).

    ``imdb.npz`` is looked up in ``$SHENJING_DATA/imdb/``, then in the cache
    ``$SHENJING_HOME/datasets/imdb/``, and otherwise downloaded into the cache; its SHA-256 is
    checked (Keras's). Its object arrays are read without the pickle module.

    Args:
        path: accepted for compatibility with Keras (its cache file name); ignored.
        num_words: keep the ids below this (the most frequent words); others become
            ``oov_char`` (or are dropped when ``oov_char`` is None). Default: all.
        skip_top: ids below this (the most frequent words) are out of vocabulary too.
        maxlen: keep only the sequences shorter than this.
        seed: shuffles training and test sets with ``np.random.RandomState(seed)`` as Keras.
        start_char: id put at the start of each sequence (None: none).
        oov_char: id of the words left out.
        index_from: added to every word id.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``x`` 1-D object arrays of lists of ints,
        ``y`` the label arrays.
    """
    del path
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments: {kwargs}")
    sq.check_args(num_words, skip_top, maxlen, start_char, oov_char, index_from)
    x_train, labels_train, x_test, labels_test = sq.load_arrays(
        "imdb", "imdb.npz", ["x_train", "y_train", "x_test", "y_test"])
    if len(x_train) != len(labels_train) or len(x_test) != len(labels_test):
        raise ValueError("imdb.npz: the sequences and labels differ in number.")
    rng = np.random.RandomState(seed)
    indices = np.arange(len(x_train))
    rng.shuffle(indices)
    x_train, labels_train = x_train[indices], labels_train[indices]
    indices = np.arange(len(x_test))
    rng.shuffle(indices)
    x_test, labels_test = x_test[indices], labels_test[indices]
    x_train = sq.reindex(x_train, start_char, index_from, "imdb.npz")
    x_test = sq.reindex(x_test, start_char, index_from, "imdb.npz")
    if maxlen:
        x_train, labels_train = sq.remove_long(maxlen, x_train, labels_train)
        x_test, labels_test = sq.remove_long(maxlen, x_test, labels_test)
        if not x_train or not x_test:
            raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, "
                             f"no sequence was kept. Increase maxlen.")
    xs = sq.limit_vocabulary(x_train + x_test, num_words, skip_top, oov_char)
    labels = np.concatenate([labels_train, labels_test])
    idx = len(x_train)
    return ((sq.object_array(xs[:idx]), labels[:idx]),
            (sq.object_array(xs[idx:]), labels[idx:]))


def get_word_index(path="imdb_word_index.json"):
    """The dict word -> index of the IMDB data (``imdb_word_index.json``, found like
    ``imdb.npz``, MD5-checked). Ids in ``load_data`` are these plus ``index_from``."""
    del path
    return sq.word_index("imdb", "imdb_word_index.json")
