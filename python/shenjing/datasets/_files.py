"""Finding, downloading and checking dataset files; reading IDX files.

Each file is looked up, in order, in:

1. `$SHENJING_DATA/<dataset>/<name>`, a read-only folder of original files
   (laid out as `mnist/`, `fashion-mnist/`, `boston_housing/`, `cifar10/`,
   `cifar100/`, `imdb/`, `reuters/`);
2. the cache, `$SHENJING_HOME/datasets/<dataset>/<name>` (`SHENJING_HOME`
   defaults to `~/.shenjing`);
3. the canonical download URLs, saved into the cache.

Every file, local or downloaded, must match its SHA-256 (or MD5, where Keras publishes
only that) below; a file is hashed once per process unless its size or modification time
changes.
"""

import gzip
import hashlib
import os
import sys
import tempfile
import zlib
from urllib.error import URLError
from urllib.request import urlopen

import numpy as np

# (dataset folder, file name) -> (size in bytes, SHA-256).
# Sources: the shared data README (official MD5s, TFDS and Keras SHA-256s).
CHECKSUMS = {
    ("mnist", "train-images-idx3-ubyte.gz"): (
        9912422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    ("mnist", "train-labels-idx1-ubyte.gz"): (
        28881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ("mnist", "t10k-images-idx3-ubyte.gz"): (
        1648877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("mnist", "t10k-labels-idx1-ubyte.gz"): (
        4542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ("fashion-mnist", "train-images-idx3-ubyte.gz"): (
        26421880,
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    ("fashion-mnist", "train-labels-idx1-ubyte.gz"): (
        29515,
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    ("fashion-mnist", "t10k-images-idx3-ubyte.gz"): (
        4422102,
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"): (
        5148,
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ("boston_housing", "boston_housing.npz"): (
        57026,
        "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"),
    # Keras's hashes (keras/src/datasets/*.py); the word indexes have only an MD5 there.
    ("cifar10", "cifar-10-python.tar.gz"): (
        None, "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    ("cifar100", "cifar-100-python.tar.gz"): (
        None, "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),
    ("imdb", "imdb.npz"): (
        None, "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"),
    ("imdb", "imdb_word_index.json"): (None, "bfafd718b763782e994055a2d397834f"),
    ("reuters", "reuters.npz"): (
        None, "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"),
    ("reuters", "reuters_word_index.json"): (None, "4d44cc38712099c9e383dc6e5f11a921"),
}

# Dataset folder -> URL prefixes (mirrors), tried in order; the file name is appended.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
    "boston_housing": [
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
    "cifar100": ["https://www.cs.toronto.edu/~kriz/"],
    "imdb": ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"],
    "reuters": ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"],
}

DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a mirror is given up
_verified = {}  # realpath -> (size, mtime_ns) of a file whose hash matched


class DatasetNotFoundError(FileNotFoundError):
    """Raised when dataset files are neither on disk nor downloadable."""


def cache_dir():
    """The cache folder: `$SHENJING_HOME/datasets` or `~/.shenjing/datasets`."""
    home = os.environ.get("SHENJING_HOME") or os.path.join(
        os.path.expanduser("~"), ".shenjing")
    return os.path.join(home, "datasets")


def search_dirs():
    """The root folders searched, in order (`$SHENJING_DATA` if set, the cache)."""
    dirs = []
    if os.environ.get("SHENJING_DATA"):
        dirs.append(os.path.abspath(os.environ["SHENJING_DATA"]))
    dirs.append(cache_dir())
    return dirs


def _hasher(expected):
    """SHA-256, or MD5 for the 32-digit hashes Keras publishes for some files."""
    return hashlib.md5() if len(expected) == 32 else hashlib.sha256()


def _size(size):
    return "size unknown" if size is None else f"{size} bytes"


def sha256_of(path, hasher=None):
    h = hasher or hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest_of(path, expected):
    if len(expected) == 32:
        return sha256_of(path, hashlib.md5())
    return sha256_of(path)


def verify(path, dataset, name):
    """Checks `path` against the known SHA-256 of `dataset/name`.

    Raises:
        ValueError: naming the file, the expected and the actual hash.
    """
    size, expected = CHECKSUMS[(dataset, name)]
    st = os.stat(path)
    key, stamp = os.path.realpath(path), (st.st_size, st.st_mtime_ns)
    if _verified.get(key) == stamp:
        return
    actual = _digest_of(path, expected)
    if actual != expected:
        raise ValueError(
            f"Dataset file {path} is corrupt or not the original: expected "
            f"{_hasher(expected).name} {expected} ({_size(size)}), got {actual} "
            f"({st.st_size} bytes). Delete it or replace it with the original.")
    _verified[key] = stamp


def download(url, dest, dataset, name):
    """Downloads `url` to `dest` atomically, checking the SHA-256 before the rename.

    The data goes to a temporary file beside `dest`, renamed into place
    only once complete and verified, so `dest` is never half-written.
    """
    size, expected = CHECKSUMS[(dataset, name)]
    folder = os.path.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    print(f"Downloading data from {url}", file=sys.stderr)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        h = _hasher(expected)
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        actual = h.hexdigest()
        if actual != expected:
            raise ValueError(
                f"Downloaded file {name} from {url} does not match its "
                f"checksum: expected {h.name} {expected} ({_size(size)}), got "
                f"{actual} ({os.path.getsize(tmp)} bytes). It was not saved.")
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    st = os.stat(dest)
    _verified[os.path.realpath(dest)] = (st.st_size, st.st_mtime_ns)


def get_files(dataset, names, local_names=None):
    """Returns verified local paths for `names` of `dataset`, downloading if needed.

    `local_names` (default: `names`) are the file names looked up on disk and
    saved to in the cache; `names` pick the checksum and download URL.

    Raises:
        ValueError: a file found or downloaded does not match its checksum.
        DatasetNotFoundError: some files are missing and could not be
            downloaded; the message names them, the folders searched and the
            download errors.
    """
    roots = search_dirs()
    local = dict(zip(names, local_names or names))
    paths, missing = {}, []
    for name in names:
        for root in roots:
            path = os.path.join(root, dataset, local[name])
            if os.path.isfile(path):
                verify(path, dataset, name)
                paths[name] = path
                break
        else:
            missing.append(name)
    errors = []
    for name in missing:
        dest = os.path.join(cache_dir(), dataset, local[name])
        for prefix in MIRRORS[dataset]:
            try:
                download(prefix + name, dest, dataset, name)
                paths[name] = dest
                break
            except (URLError, OSError) as e:  # offline, HTTP error, timeout
                errors.append(f"  {prefix + name}: {e}")
        else:
            break  # every mirror failed: likely offline, so don't wait on the rest
    still = [n for n in names if n not in paths]
    if still:
        folders = "\n".join(f"  {os.path.join(r, dataset)}" for r in roots)
        raise DatasetNotFoundError(
            f"Could not find or download the {dataset} files "
            f"{', '.join(local[n] for n in still)}.\nFolders searched:\n{folders}\n"
            f"Download errors:\n" + "\n".join(errors) + "\n"
            f"Set SHENJING_DATA to a folder holding {dataset}/<file> "
            f"(the original file names), or put the files in "
            f"{os.path.join(cache_dir(), dataset)}.")
    return [paths[n] for n in names]


def read_idx(path, magic, shape):
    """Reads a gzipped IDX file of unsigned bytes into a new uint8 array.

    Args:
        path: the `.gz` file.
        magic: 2051 for images (3 dims) or 2049 for labels (1 dim).
        shape: the expected dims, e.g. `(60000, 28, 28)`.

    Raises:
        ValueError: the header, dims or payload length are not as expected,
            or the gzip stream is damaged.
    """
    header_len = 4 + 4 * len(shape)
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(header_len)
            if len(header) < header_len:
                raise ValueError(f"IDX file {path} is truncated: header has "
                                 f"{len(header)} of {header_len} bytes.")
            head = np.frombuffer(header, dtype=">u4")
            if int(head[0]) != magic:
                raise ValueError(f"IDX file {path} has magic number "
                                 f"{int(head[0])}, expected {magic}.")
            dims = tuple(int(d) for d in head[1:])
            if dims != tuple(shape):
                raise ValueError(f"IDX file {path} has dims {dims}, "
                                 f"expected {tuple(shape)}.")
            out = np.empty(shape, dtype=np.uint8)
            view, got = memoryview(out.reshape(-1)), 0
            while got < out.size:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
            extra = len(f.read(1))
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"IDX file {path} is not a valid gzip stream: {e}") from e
    if got != out.size or extra:
        found = "more than" if extra else f"only {got} of"
        raise ValueError(f"IDX file {path} payload has {found} the "
                         f"{out.size} bytes its dims {tuple(shape)} need.")
    return out


def load_idx_dataset(dataset, num_classes=10):
    """Loads the four MNIST-layout IDX files of `dataset` (Keras's return layout)."""
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    p = get_files(dataset, names)
    x_train = read_idx(p[0], 2051, (60000, 28, 28))
    y_train = read_idx(p[1], 2049, (60000,))
    x_test = read_idx(p[2], 2051, (10000, 28, 28))
    y_test = read_idx(p[3], 2049, (10000,))
    for path, y in ((p[1], y_train), (p[3], y_test)):
        if y.max() >= num_classes:
            raise ValueError(f"Label file {path} has label {int(y.max())}, "
                             f"expected 0..{num_classes - 1}.")
    return (x_train, y_train), (x_test, y_test)


def split(x, y, test_split, seed):
    """Shuffles with `RandomState(seed)` and splits, exactly as Keras's boston_housing."""
    if not 0 <= test_split < 1:
        raise ValueError(f"test_split must be in [0, 1), got {test_split}.")
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    n_train = int(len(x) * (1 - test_split))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
