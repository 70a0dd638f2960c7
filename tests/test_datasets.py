"""shenjing.datasets: real files from $SHENJING_DATA, corrupt files, offline and download paths."""

import gzip
import hashlib
import io
import os
import struct
from urllib.error import URLError

import numpy as np
import pytest

from shenjing.datasets import _files, boston_housing, digits, fashion_mnist, mnist

DATA = os.environ.get("SHENJING_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="SHENJING_DATA is not set")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache, and the network is never reached."""
    monkeypatch.setenv("SHENJING_HOME", str(tmp_path / "home"))

    def no_network(url, timeout=None):
        raise URLError("network disabled in tests")

    monkeypatch.setattr(_files, "urlopen", no_network)
    return tmp_path / "home" / "datasets"


def write_idx(path, magic, dims, payload, compress=True):
    raw = struct.pack(">" + "I" * (1 + len(dims)), magic, *dims) + payload
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


# ---- real data ---------------------------------------------------------------------

@needs_data
def test_mnist_matches_keras_layout():
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags.writeable
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert x_train.max() == 255 and x_train.min() == 0
    mnist.load_data(path="mnist.npz")  # Keras's signature is accepted


@needs_data
def test_fashion_mnist_class_counts():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


@needs_data
@pytest.mark.parametrize("test_split,seed", [(0.2, 113), (0.5, 7), (0.0, 1)])
def test_boston_housing_equals_keras_split(test_split, seed):
    (x_train, y_train), (x_test, y_test) = boston_housing.load_data(
        test_split=test_split, seed=seed)
    # Keras's rule, written independently: seed numpy, permute, cut at int(n*(1-split)).
    with np.load(os.path.join(DATA, "boston_housing", "boston_housing.npz")) as f:
        x, y = f["x"], f["y"]
    np.random.seed(seed)
    order = np.random.permutation(len(x))
    cut = int(len(x) * (1 - test_split))
    np.testing.assert_array_equal(x_train, x[order[:cut]])
    np.testing.assert_array_equal(y_train, y[order[:cut]])
    np.testing.assert_array_equal(x_test, x[order[cut:]])
    np.testing.assert_array_equal(y_test, y[order[cut:]])
    assert x_train.dtype == np.float64 and y_train.dtype == np.float64
    assert x_train.shape[1:] == (13,) and y_test.ndim == 1


@needs_data
def test_boston_housing_defaults_and_bad_split():
    (x_train, y_train), (x_test, y_test) = boston_housing.load_data()
    assert (len(x_train), len(y_train), len(x_test), len(y_test)) == (404, 404, 102, 102)
    with pytest.raises(ValueError, match="test_split"):
        boston_housing.load_data(test_split=1.0)


@needs_data
def test_checksum_table_matches_shared_sums():
    sums = {}
    with open(os.path.join(DATA, "SHA256SUMS")) as f:
        for line in f:
            digest, name = line.split()
            sums[name.lstrip("*./")] = digest
    checked = set()
    for (dataset, name), (size, digest) in _files.CHECKSUMS.items():
        if f"{dataset}/{name}" not in sums:
            continue  # not in the shared folder (cifar, imdb, reuters: Keras's hashes)
        assert sums[f"{dataset}/{name}"] == digest
        assert os.path.getsize(os.path.join(DATA, dataset, name)) == size
        checked.add(dataset)
    assert checked == {"mnist", "fashion-mnist", "boston_housing"}


def test_digits_shipped_offline():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape == (1437, 8, 8) and x_test.shape == (360, 8, 8)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
    assert x_train.max() == 16 and x_train.min() == 0
    y = np.concatenate([y_train, y_test])
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    (x2, _), _ = digits.load_data()
    np.testing.assert_array_equal(x_train, x2)  # same seed, same split
    (_, _), (x_all_test, _) = digits.load_data(test_split=0.0)
    assert len(x_all_test) == 0


# ---- corrupt files -----------------------------------------------------------------

def test_read_idx_accepts_valid(tmp_path):
    p = write_idx(tmp_path / "ok.gz", 2051, (2, 3, 4), bytes(range(24)))
    np.testing.assert_array_equal(_files.read_idx(p, 2051, (2, 3, 4)),
                                  np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("magic,dims,payload,compress,match", [
    (2049, (2, 3, 4), bytes(24), True, "magic number 2049, expected 2051"),
    (2051, (2, 3, 5), bytes(30), True, r"dims \(2, 3, 5\)"),
    (2051, (2, 3, 4), bytes(23), True, "only 23 of the 24 bytes"),
    (2051, (2, 3, 4), bytes(25), True, "more than the 24 bytes"),
    (2051, (2, 3, 4), bytes(24), False, "not a valid gzip stream"),
])
def test_read_idx_rejects_corrupt(tmp_path, magic, dims, payload, compress, match):
    p = write_idx(tmp_path / "bad.gz", magic, dims, payload, compress)
    with pytest.raises(ValueError, match=match):
        _files.read_idx(p, 2051, (2, 3, 4))


def test_read_idx_rejects_truncated_gzip(tmp_path):
    p = write_idx(tmp_path / "t.gz", 2051, (2, 3, 4), bytes(24))
    p.write_bytes(p.read_bytes()[:-12])
    with pytest.raises(ValueError, match="not a valid gzip stream"):
        _files.read_idx(p, 2051, (2, 3, 4))
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="truncated"):
        _files.read_idx(p, 2051, (2, 3, 4))


def test_wrong_checksum_names_file_and_hashes(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    bad = write_idx(folder / "train-labels-idx1-ubyte.gz", 2049, (60000,), bytes(60000))
    monkeypatch.setenv("SHENJING_DATA", str(tmp_path / "data"))
    _, expected = _files.CHECKSUMS[("mnist", "train-labels-idx1-ubyte.gz")]
    with pytest.raises(ValueError) as e:
        mnist.load_data()
    msg = str(e.value)
    assert str(bad) in msg and expected in msg and _files.sha256_of(bad) in msg


# ---- missing files, offline --------------------------------------------------------

def test_offline_and_missing_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SHENJING_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as e:
        fashion_mnist.load_data()
    assert isinstance(e.value, _files.DatasetNotFoundError)
    msg = str(e.value)
    assert "SHENJING_DATA" in msg
    # Once every mirror has failed for one file, the others are not tried (no long waits).
    assert msg.count("network disabled") == len(_files.MIRRORS["fashion-mnist"])
    assert "t10k-labels-idx1-ubyte.gz" in msg and "train-images-idx3-ubyte.gz" in msg
    assert str(tmp_path / "empty" / "fashion-mnist") in msg
    assert str(tmp_path / "home" / "datasets" / "fashion-mnist") in msg


# ---- download ----------------------------------------------------------------------

@needs_data
def test_download_into_cache_atomically(isolated_cache, monkeypatch):
    monkeypatch.delenv("SHENJING_DATA")
    source = os.path.join(DATA, "boston_housing", "boston_housing.npz")
    urls = []

    def serve(url, timeout=None):
        urls.append(url)
        return open(source, "rb")

    monkeypatch.setattr(_files, "urlopen", serve)
    (x_train, _), _ = boston_housing.load_data()
    assert urls == ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
                    "boston_housing.npz"]
    folder = isolated_cache / "boston_housing"
    assert os.listdir(folder) == ["boston_housing.npz"]  # no temporary file left
    assert _files.sha256_of(folder / "boston_housing.npz") == _files.CHECKSUMS[
        ("boston_housing", "boston_housing.npz")][1]
    assert x_train.shape == (404, 13)

    monkeypatch.setattr(_files, "urlopen", lambda url, timeout=None: 1 / 0)
    (x_again, _), _ = boston_housing.load_data()  # now served from the cache
    np.testing.assert_array_equal(x_train, x_again)


def test_download_with_wrong_checksum_is_not_saved(isolated_cache, monkeypatch):
    monkeypatch.delenv("SHENJING_DATA", raising=False)
    monkeypatch.setattr(_files, "urlopen", lambda url, timeout=None: io.BytesIO(b"not it"))
    with pytest.raises(ValueError, match="does not match its checksum"):
        boston_housing.load_data()
    assert os.listdir(isolated_cache / "boston_housing") == []


def test_mirrors_tried_in_order(isolated_cache, monkeypatch):
    monkeypatch.delenv("SHENJING_DATA", raising=False)
    payload = b"label bytes"
    monkeypatch.setitem(_files.CHECKSUMS, ("mnist", "x.gz"),
                        (len(payload), hashlib.sha256(payload).hexdigest()))
    urls = []

    def flaky(url, timeout=None):
        urls.append(url)
        if len(urls) == 1:
            raise URLError("first mirror down")
        return io.BytesIO(payload)

    monkeypatch.setattr(_files, "urlopen", flaky)
    (path,) = _files.get_files("mnist", ["x.gz"])
    assert urls == [m + "x.gz" for m in _files.MIRRORS["mnist"][:2]]
    with open(path, "rb") as f:
        assert f.read() == payload


# ---- verification is cached --------------------------------------------------------

@needs_data
def test_local_files_hashed_once_per_process(monkeypatch):
    monkeypatch.setattr(_files, "_verified", {})
    calls = []
    real = _files.sha256_of
    monkeypatch.setattr(_files, "sha256_of", lambda p: calls.append(p) or real(p))
    boston_housing.load_data()
    boston_housing.load_data()
    assert len(calls) == 1
