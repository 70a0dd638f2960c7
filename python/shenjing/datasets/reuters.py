"""Reuters newswire topic classification dataset."""
import numpy as np

from shenjing.datasets import _sequences as sq

_LABEL_NAMES = (
    "cocoa",
    "grain",
    "veg-oil",
    "earn",
    "acq",
    "wheat",
    "copper",
    "housing",
    "money-supply",
    "coffee",
    "sugar",
    "trade",
    "reserves",
    "ship",
    "cotton",
    "carcass",
    "crude",
    "nat-gas",
    "cpi",
    "money-fx",
    "interest",
    "gnp",
    "meal-feed",
    "alum",
    "oilseed",
    "gold",
    "tin",
    "strategic-metal",
    "livestock",
    "retail",
    "ipi",
    "iron-steel",
    "rubber",
    "heat",
    "jobs",
    "lei",
    "bop",
    "zinc",
    "orange",
    "pet-chem",
    "dlr",
    "gas",
    "silver",
    "wpi",
    "hog",
    "lead",
)


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2,
              seed=113, start_char=1, oov_char=2, index_from=3):
    """Loads the Reuters newswire dataset, as ``keras.datasets.reuters.load_data()``: 11,228
    newswires labelled over 46 topics, each a list of word ids, shuffled with
    ``np.random.RandomState(seed)`` and split at ``int(n * (1 - test_split))``.

    ``reuters.npz`` is looked up in ``$SHENJING_DATA/reuters/``, then in the cache
    ``$SHENJING_HOME/datasets/reuters/``, and otherwise downloaded into the cache; its
    SHA-256 is checked (Keras's). Its object arrays are read without the pickle module.
    The other arguments are those of ``imdb.load_data``; ``path`` is accepted and ignored.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``x`` 1-D object arrays of lists of ints,
        ``y`` the topic ids (0..45; ``get_label_names()`` names them).
    """
    del path
    sq.check_args(num_words, skip_top, maxlen, start_char, oov_char, index_from)
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float)) or \
            not 0 <= test_split <= 1:
        raise ValueError(f"`test_split` must be a number in [0, 1]. Received: "
                         f"test_split={test_split!r}")
    xs, labels = sq.load_arrays("reuters", "reuters.npz", ["x", "y"])
    if len(xs) != len(labels):
        raise ValueError("reuters.npz: the sequences and labels differ in number.")
    rng = np.random.RandomState(seed)
    indices = np.arange(len(xs))
    rng.shuffle(indices)
    xs, labels = xs[indices], labels[indices]
    xs = sq.reindex(xs, start_char, index_from, "reuters.npz")
    if maxlen:
        xs, labels = sq.remove_long(maxlen, xs, labels)
    xs = sq.limit_vocabulary(xs, num_words, skip_top, oov_char)
    idx = int(len(xs) * (1 - test_split))
    return ((sq.object_array(xs[:idx]), np.array(labels[:idx])),
            (sq.object_array(xs[idx:]), np.array(labels[idx:])))


def get_word_index(path="reuters_word_index.json"):
    """The dict word -> index of the Reuters data (``reuters_word_index.json``, found like
    ``reuters.npz``, MD5-checked). Ids in ``load_data`` are these plus ``index_from``."""
    del path
    return sq.word_index("reuters", "reuters_word_index.json")


def get_label_names():
    """The 46 topic names, indexed by label (Keras's list)."""
    return _LABEL_NAMES
