"""datasets.cifar10/cifar100/imdb/reuters on small files written here in the canonical
formats (the real files are not on this machine), with the checksum table pointed at them;
their pickled parts are read without the pickle module (datasets/_safe_pickle.py)."""
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from shenjing import datasets
from shenjing.datasets import _files, _safe_pickle


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """SHENJING_DATA and SHENJING_HOME in tmp_path, downloads pointed at a missing file://
    folder (so nothing reaches the network), and a helper registering a file's checksum."""
    root = tmp_path / "data"
    os.makedirs(root)
    monkeypatch.setenv("SHENJING_DATA", str(root))
    monkeypatch.setenv("SHENJING_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(_files, "CHECKSUMS", dict(_files.CHECKSUMS))
    monkeypatch.setattr(_files, "MIRRORS", {k: [(tmp_path / "offline").as_uri() + "/"]
                                            for k in _files.MIRRORS})

    def put(dataset, name, data, md5=False):
        os.makedirs(root / dataset, exist_ok=True)
        (root / dataset / name).write_bytes(data)
        digest = (hashlib.md5 if md5 else hashlib.sha256)(data).hexdigest()
        _files.CHECKSUMS[(dataset, name)] = (len(data), digest)
    return put


# -- a Python 2 cPickle (protocol 2) writer: how the original CIFAR batches are spelled ------
def _p2_str(b):
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b


def _p2_int(v):
    return b"K" + bytes([v]) if v < 256 else (b"M" + struct.pack("<H", v) if v < 65536
                                               else b"J" + struct.pack("<i", v))


def _p2_value(v):
    if isinstance(v, bytes):
        return _p2_str(v)
    if isinstance(v, list):
        return b"](" + b"".join(_p2_int(x) if isinstance(x, int) else _p2_str(x)
                                for x in v) + b"e" if v else b"]"
    assert v.dtype == np.uint8 and v.ndim == 2
    shape = _p2_int(v.shape[0]) + _p2_int(v.shape[1]) + b"\x86"
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
            b"(K\x01" + shape + b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
            b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
            + _p2_str(v.tobytes()) + b"tb")


def py2_pickle(d):
    return b"\x80\x02}(" + b"".join(_p2_value(k) + _p2_value(v) for k, v in d.items()) + b"u."


def _tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _cifar10_archive(rng, per_batch=(2, 3, 1, 2, 2), test=3, writer=py2_pickle):
    members, xs, ys = {}, [], []
    for i, n in enumerate(list(per_batch) + [test]):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        name = f"data_batch_{i + 1}" if i < 5 else "test_batch"
        members[f"cifar-10-batches-py/{name}"] = writer(
            {b"batch_label": b"training batch", b"labels": labels, b"data": data,
             b"filenames": [b"x.png"] * n})
        xs.append(data)
        ys.append(labels)
    members["cifar-10-batches-py/batches.meta"] = b"unused"
    return _tar_gz(members), xs, ys


def test_cifar10_reads_python2_batches(data_dir):
    archive, xs, ys = _cifar10_archive(np.random.default_rng(0))
    data_dir("cifar10", "cifar-10-python.tar.gz", archive)
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    assert x_train.shape == (10, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (10, 1) and y_train.dtype == np.uint8
    assert x_test.shape == (3, 32, 32, 3) and y_test.shape == (3, 1)
    # Keras: data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
    expect = np.concatenate(xs[:5]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(x_train, expect)
    np.testing.assert_array_equal(y_train[:, 0], sum(ys[:5], []))
    np.testing.assert_array_equal(x_test, xs[5].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y_test[:, 0], ys[5])


def test_cifar100_reads_python3_protocol_2_and_4(data_dir):
    rng = np.random.default_rng(1)
    for proto in (2, 4):
        parts = {}
        for split, n in (("train", 4), ("test", 2)):
            parts[split] = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                            b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                            b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)]}
        archive = _tar_gz({f"cifar-100-python/{s}": pickle.dumps(d, protocol=proto)
                           for s, d in parts.items()})
        data_dir("cifar100", "cifar-100-python.tar.gz", archive)
        (x, y), (xt, yt) = datasets.cifar100.load_data()
        assert x.shape == (4, 32, 32, 3) and y.dtype == np.int64 and y.shape == (4, 1)
        np.testing.assert_array_equal(
            x, parts["train"][b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(y[:, 0], parts["train"][b"fine_labels"])
        (_, yc), (_, ytc) = datasets.cifar100.load_data(label_mode="coarse")
        np.testing.assert_array_equal(ytc[:, 0], parts["test"][b"coarse_labels"])
    with pytest.raises(ValueError, match="label_mode"):
        datasets.cifar100.load_data(label_mode="medium")


def test_cifar_bad_files(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10") as e:
        datasets.cifar10.load_data()
    assert "cifar-10-python.tar.gz" in str(e.value) and "SHENJING_DATA" in str(e.value)
    archive, _, _ = _cifar10_archive(np.random.default_rng(2))
    data_dir("cifar10", "cifar-10-python.tar.gz", archive)
    _files.CHECKSUMS[("cifar10", "cifar-10-python.tar.gz")] = (None, "0" * 64)
    with pytest.raises(ValueError, match="corrupt or not the original"):
        datasets.cifar10.load_data()
    # A batch whose pickle names another callable is refused, and nothing runs.
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    members = {f"cifar-10-batches-py/data_batch_{i}": pickle.dumps({b"data": Evil()}, 2)
               for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = members["cifar-10-batches-py/data_batch_1"]
    data_dir("cifar10", "cifar-10-python.tar.gz", _tar_gz(members))
    with pytest.raises(ValueError, match="refusing the callable"):
        datasets.cifar10.load_data()
    assert not marker.exists()
    data_dir("cifar10", "cifar-10-python.tar.gz", b"not a tar file")
    with pytest.raises(ValueError, match="tar.gz"):
        datasets.cifar10.load_data()


# -- the plain-data pickle reader ------------------------------------------------------------
def test_safe_pickle_round_trips_plain_data_and_refuses_the_rest():
    value = {b"a": [1, -2, 70000, 2 ** 40, -(2 ** 70)], "b": (1.5, None, True, "é"),
             "arr": np.arange(6, dtype="<f8").reshape(2, 3), "f": np.ones((2, 2), order="F")}
    for proto in range(5):
        out, _ = _safe_pickle.loads(pickle.dumps(value, protocol=proto))
        assert out[b"a"] == value[b"a"] and out["b"] == value["b"]
        np.testing.assert_array_equal(out["arr"], value["arr"])
        np.testing.assert_array_equal(out["f"], value["f"])
    for bad in (pickle.dumps(print, 2), pickle.dumps({1, 2}, 4),
                pickle.dumps(np.zeros(2, dtype=[("x", "i4")]), 2)):
        with pytest.raises(ValueError, match="plain-data"):
            _safe_pickle.loads(bad)
    loop = []
    loop.append(loop)
    for bad in (pickle.dumps(loop, 2), b"\x80\x02(" + b"](" * 100000):
        with pytest.raises(ValueError, match="plain-data"):
            _safe_pickle.loads(bad)
    good = pickle.dumps(value, 2)
    for cut in (1, 10, len(good) // 2, len(good) - 1):
        with pytest.raises(ValueError, match="plain-data"):
            _safe_pickle.loads(good[:cut])


# -- imdb / reuters --------------------------------------------------------------------------
def _obj(seqs):
    a = np.empty(len(seqs), dtype=object)
    a[:] = seqs
    return a


IMDB_X_TRAIN = [[1, 5, 9], [2, 2, 7, 30], [4], [8, 1, 1, 1, 1, 6], [3, 12]]
IMDB_X_TEST = [[7, 7], [1, 2, 3, 4, 5, 6, 7], [11, 3, 2]]
REUTERS_Y = [3, 0, 45, 2, 1, 7, 3, 3]


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # object arrays are stored as pickles, as in Keras's files
    return buf.getvalue()


# Keras 3.15 on the same files (keras.datasets.imdb/reuters with get_file pointed at them):
#   imdb.load_data(**kw); reuters.load_data(**kw)  -> [list(x) ...], y.tolist()
KERAS_IMDB = [
    ({}, [[1, 5, 5, 10, 2], [1, 4, 8, 12], [1, 11, 4, 4, 4, 4, 9], [1, 7], [1, 6, 15]],
     [1, 0, 0, 1, 1], [[1, 4, 5, 6, 7, 8, 9, 10], [1, 10, 10], [1, 14, 6, 5]], [0, 1, 0]),
    (dict(num_words=8, skip_top=2, maxlen=6, seed=1),
     [[2, 7], [2, 5, 5, 2, 2], [2, 6, 2], [2, 4, 2, 2]], [1, 1, 1, 0],
     [[2, 2, 2], [2, 2, 6, 5]], [1, 0]),
    (dict(start_char=None, oov_char=None, index_from=0, num_words=6),
     [[2, 2], [1, 5], [1, 1, 1, 1], [4], [3]], [1, 0, 0, 1, 1],
     [[1, 2, 3, 4, 5], [], [3, 2]], [0, 1, 0]),
]
KERAS_REUTERS = [
    ({}, [[1, 5, 5, 10, 2], [1, 11, 4, 4, 4, 4, 9], [1, 4, 5, 6, 7, 8, 9, 10], [1, 4, 8, 12],
          [1, 14, 6, 5], [1, 7]], [0, 2, 3, 3, 3, 45], [[1, 6, 15], [1, 10, 10]], [1, 7]),
    (dict(num_words=9, skip_top=1, maxlen=5, test_split=0.3, seed=2),
     [[1, 6, 2], [1, 7], [1, 2, 6, 5]], [1, 45, 3], [[1, 2, 2], [1, 4, 8, 2]], [7, 3]),
]


@pytest.mark.parametrize("kwargs, xtr, ytr, xte, yte", KERAS_IMDB)
def test_imdb_matches_keras(data_dir, kwargs, xtr, ytr, xte, yte):
    data_dir("imdb", "imdb.npz", _npz(x_train=_obj(IMDB_X_TRAIN), y_train=np.array([0, 1, 1, 0, 1]),
                                      x_test=_obj(IMDB_X_TEST), y_test=np.array([1, 0, 0])))
    (a, b), (c, d) = datasets.imdb.load_data(**kwargs)
    assert a.dtype == object and a.ndim == 1 and c.ndim == 1
    assert [list(x) for x in a] == xtr and b.tolist() == ytr
    assert [list(x) for x in c] == xte and d.tolist() == yte


@pytest.mark.parametrize("kwargs, xtr, ytr, xte, yte", KERAS_REUTERS)
def test_reuters_matches_keras(data_dir, kwargs, xtr, ytr, xte, yte):
    data_dir("reuters", "reuters.npz", _npz(x=_obj(IMDB_X_TRAIN + IMDB_X_TEST),
                                            y=np.array(REUTERS_Y)))
    (a, b), (c, d) = datasets.reuters.load_data(**kwargs)
    assert [list(x) for x in a] == xtr and b.tolist() == ytr
    assert [list(x) for x in c] == xte and d.tolist() == yte
    assert len(datasets.reuters.get_label_names()) == 46


def test_word_indexes_and_bad_files(data_dir):
    data_dir("imdb", "imdb_word_index.json", json.dumps({"the": 1, "film": 2}).encode(),
             md5=True)
    assert datasets.imdb.get_word_index() == {"the": 1, "film": 2}
    data_dir("reuters", "reuters_word_index.json", b"[1, 2]", md5=True)
    with pytest.raises(ValueError, match="word -> index"):
        datasets.reuters.get_word_index()
    data_dir("imdb", "imdb.npz", _npz(x_train=_obj(IMDB_X_TRAIN), y_train=np.arange(5)))
    with pytest.raises(ValueError, match="lacks the arrays"):
        datasets.imdb.load_data()
    data_dir("imdb", "imdb.npz", b"garbage")
    with pytest.raises(ValueError, match="npz"):
        datasets.imdb.load_data()
    with pytest.raises(ValueError, match="num_words"):
        datasets.imdb.load_data(num_words=-1)
    with pytest.raises(TypeError, match="nb_words"):
        datasets.imdb.load_data(nb_words=10)
    with pytest.raises(FileNotFoundError, match="reuters.npz"):
        datasets.reuters.load_data()
