"""utils: timeseries_dataset_from_array, image/text_dataset_from_directory, split_dataset,
get_file, normalize. Reference values come from Keras 3.15 where it runs without TensorFlow
(the snippets are in the comments); its *_dataset_from_* functions themselves need TensorFlow
or grain, which the Keras venv lacks, so their window/order rules are checked against Keras's
documented examples and its own helpers (index_directory, RandomState/random shuffles)."""
import hashlib
import os
import random

import numpy as np
import pytest

import shenjing as keras
from shenjing import utils


# -- timeseries_dataset_from_array -----------------------------------------------------------
def test_timeseries_windows_match_keras_docstring_example():
    # Keras's docstring, example 1: indices 0..98, sequence_length=10, sampling_rate=2,
    # sequence_stride=3 -> [0 2 .. 18], [3 5 .. 21], [6 8 .. 24], ..., last [78 80 .. 96].
    ds = utils.timeseries_dataset_from_array(np.arange(99), None, sequence_length=10,
                                             sampling_rate=2, sequence_stride=3,
                                             batch_size=16)
    assert isinstance(ds, utils.PyDataset)
    windows = np.concatenate([b for b in ds])
    assert windows.shape == (27, 10)
    np.testing.assert_array_equal(windows[0], np.arange(0, 20, 2))
    np.testing.assert_array_equal(windows[1], np.arange(3, 23, 2))
    np.testing.assert_array_equal(windows[2], np.arange(6, 26, 2))
    np.testing.assert_array_equal(windows[-1], np.arange(78, 98, 2))
    assert len(ds) == 2 and ds[1].shape == (11, 10)


def test_timeseries_targets_and_regression_example():
    # Keras's example 2: inputs data[:-10], targets data[10:], windows of 10.
    data = np.random.default_rng(0).normal(size=(50, 3)).astype("float32")
    ds = utils.timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10,
                                             batch_size=8)
    x, y = ds[0]
    np.testing.assert_array_equal(x[0], data[:10])
    np.testing.assert_array_equal(y[0], data[10])
    np.testing.assert_array_equal(x[3], data[3:13])
    np.testing.assert_array_equal(y[3], data[13])
    assert sum(len(b[0]) for b in ds) == 31  # 40 - 9 windows


def test_timeseries_start_end_index_and_unbatched():
    ds = utils.timeseries_dataset_from_array(np.arange(30), np.arange(30) * 10, 4,
                                             start_index=5, end_index=20, batch_size=None)
    # windows start at 5..16 (the last ends at 19 < end_index)
    assert len(ds) == 12
    x, y = ds[0]
    np.testing.assert_array_equal(x, [5, 6, 7, 8])
    assert y == 50
    np.testing.assert_array_equal(ds[-1][0], [16, 17, 18, 19])


def test_timeseries_shuffle_is_keras_start_order_and_reshuffles_each_epoch():
    ds = utils.timeseries_dataset_from_array(np.arange(40), None, 5, sequence_stride=2,
                                             shuffle=True, seed=11, batch_size=4)
    # Keras: start_positions = np.arange(0, 36, 2); RandomState(seed).shuffle(start_positions)
    starts = np.arange(0, 36, 2, dtype=np.int32)
    np.random.RandomState(11).shuffle(starts)
    first = np.concatenate([ds[i] for i in range(len(ds))])
    np.testing.assert_array_equal(first[:, 0], starts)
    ds.on_epoch_end()
    second = np.concatenate([ds[i] for i in range(len(ds))])
    assert sorted(second[:, 0]) == sorted(starts) and not np.array_equal(second[:, 0], starts)
    again = utils.timeseries_dataset_from_array(np.arange(40), None, 5, sequence_stride=2,
                                                shuffle=True, seed=11, batch_size=4)
    again.on_epoch_end()
    np.testing.assert_array_equal(np.concatenate(list(again))[:, 0], second[:, 0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(sampling_rate=0), "sampling_rate"), (dict(sequence_stride=20), "sequence_stride"),
    (dict(start_index=-1), "start_index"), (dict(end_index=25), "end_index"),
    (dict(start_index=8, end_index=4), "end_index"), (dict(batch_size=0), "batch_size"),
    (dict(format="torch"), "format")])
def test_timeseries_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        utils.timeseries_dataset_from_array(np.arange(20), None, 3, **kwargs)


# -- split_dataset ---------------------------------------------------------------------------
def test_split_dataset_arrays_tuples_and_keras_shuffle():
    x = np.arange(10)
    left, right = utils.split_dataset(x, left_size=0.8)
    np.testing.assert_array_equal(left, np.arange(8))
    np.testing.assert_array_equal(right, [8, 9])
    # Keras: random.seed(5); random.shuffle(list(range(10))) -> [2, 3, 1, 0, 8, 7, 6, 5, 4, 9]
    state = random.getstate()
    left, right = utils.split_dataset((x, x * 10), left_size=7, right_size=2, shuffle=True,
                                      seed=5)
    assert random.getstate() == state  # the global random state is left alone
    np.testing.assert_array_equal(left[0], [2, 3, 1, 0, 8, 7, 6])
    np.testing.assert_array_equal(left[1], [20, 30, 10, 0, 80, 70, 60])
    np.testing.assert_array_equal(right[0], [4, 9])
    # Keras's _rescale_dataset_split_sizes: (0.33, None, 10) -> (3, 7); (None, 0.25) -> (8, 2)
    a, b = utils.split_dataset(x, left_size=0.33)
    assert (len(a), len(b)) == (3, 7)
    a, b = utils.split_dataset(x, right_size=0.25)
    assert (len(a), len(b)) == (8, 2)


@pytest.mark.parametrize("kwargs, err", [
    (dict(), ValueError), (dict(left_size=0.6, right_size=0.6), ValueError),
    (dict(left_size=10), ValueError), (dict(left_size="5"), TypeError),
    (dict(left_size=1.5), ValueError), (dict(left_size=6, right_size=6), ValueError)])
def test_split_dataset_bad_sizes(kwargs, err):
    with pytest.raises(err):
        utils.split_dataset(np.arange(10), **kwargs)


def test_split_dataset_of_a_pydataset_keeps_batches():
    ds = utils.timeseries_dataset_from_array(np.arange(20), np.arange(20), 3, batch_size=4)
    left, right = utils.split_dataset(ds, left_size=0.5)
    assert isinstance(left, utils.PyDataset) and left.batch_size == 4
    xl = np.concatenate([b[0] for b in left])
    xr = np.concatenate([b[0] for b in right])
    assert len(xl) == 9 and len(xr) == 9
    np.testing.assert_array_equal(xl[:, 0], np.arange(9))
    np.testing.assert_array_equal(xr[:, 0], np.arange(9, 18))


def test_split_dataset_rejects_other_types_and_ragged():
    with pytest.raises(TypeError):
        utils.split_dataset(object(), left_size=0.5)
    with pytest.raises(ValueError, match="same length"):
        utils.split_dataset((np.arange(4), np.arange(5)), left_size=0.5)


# -- directories -----------------------------------------------------------------------------
def _text_tree(root):
    # The tree Keras's index_directory was run on (snippet below).
    for c, n in (("b_cls", 3), ("a_cls", 4), ("c_cls", 2)):
        os.makedirs(root / c / "sub", exist_ok=True)
        for i in range(n):
            (root / c / ("sub" if i == 0 else "") / f"f{i}.txt").write_text(f"{c} {i} é")
    (root / "a_cls" / "skip.csv").write_text("x")
    return root


# Keras 3.15 (KERAS_BACKEND=torch /work/kvenv/bin/python):
#   dataset_utils.index_directory(root, "inferred", (".txt",), shuffle=True, seed=7)
KERAS_SEED7_ORDER = ["a_cls/f3.txt", "c_cls/f1.txt", "a_cls/f1.txt", "c_cls/sub/f0.txt",
                     "b_cls/f2.txt", "a_cls/sub/f0.txt", "b_cls/sub/f0.txt", "a_cls/f2.txt",
                     "b_cls/f1.txt"]
KERAS_SEED7_LABELS = [0, 2, 0, 2, 1, 0, 1, 0, 1]


def test_text_dataset_file_order_labels_and_class_names_match_keras(tmp_path, capsys):
    root = _text_tree(tmp_path / "t")
    ds = utils.text_dataset_from_directory(root, batch_size=4, seed=7)
    assert "Found 9 files belonging to 3 classes." in capsys.readouterr().out
    assert ds.class_names == ["a_cls", "b_cls", "c_cls"]
    assert [os.path.relpath(p, root) for p in ds.file_paths] == KERAS_SEED7_ORDER
    batches = list(ds)  # one pass (each complete pass of a shuffling dataset reshuffles)
    texts = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert texts.dtype == object and labels.dtype == np.int32
    assert list(labels) == KERAS_SEED7_LABELS
    assert [t.split()[0] for t in texts] == [p.split("/")[0] for p in KERAS_SEED7_ORDER]
    assert texts[0] == "a_cls 3 é"


def test_text_dataset_modes_max_length_and_both_subsets(tmp_path):
    root = _text_tree(tmp_path / "t")
    ds = utils.text_dataset_from_directory(root, label_mode="categorical", shuffle=False,
                                           max_length=3, batch_size=None, verbose=False)
    x, y = ds[0]
    assert x == "a_c" and y.dtype == np.float32
    np.testing.assert_array_equal(y, [1, 0, 0])
    train, val = utils.text_dataset_from_directory(root, validation_split=0.25, subset="both",
                                                   seed=7, batch_size=2, verbose=False)
    # Keras: the last int(0.25 * 9) = 2 files are the validation subset
    assert [os.path.relpath(p, root) for p in train.file_paths] == KERAS_SEED7_ORDER[:7]
    assert [os.path.relpath(p, root) for p in val.file_paths] == KERAS_SEED7_ORDER[7:]
    only = utils.text_dataset_from_directory(root, label_mode=None, shuffle=False,
                                             batch_size=9, verbose=False)
    assert only[0].shape == (9,) and only.class_names is None
    left, right = utils.split_dataset(train, left_size=4)
    assert left.class_names == train.class_names and left.batch_size == 2
    assert list(np.concatenate([b[0] for b in left])) + \
        list(np.concatenate([b[0] for b in right])) == \
        list(np.concatenate([b[0] for b in (train[i] for i in range(len(train)))]))
    with pytest.raises(ValueError, match="exactly 2"):
        utils.text_dataset_from_directory(root, label_mode="binary", verbose=False)
    with pytest.raises(ValueError, match="seed"):
        utils.text_dataset_from_directory(root, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="class_names"):
        utils.text_dataset_from_directory(root, class_names=["zzz"])


def test_text_dataset_on_epoch_end_reshuffles_deterministically(tmp_path):
    root = _text_tree(tmp_path / "t")
    a = utils.text_dataset_from_directory(root, batch_size=3, seed=3, verbose=False)
    b = utils.text_dataset_from_directory(root, batch_size=3, seed=3, verbose=False)
    first = list(np.concatenate([x for x, _ in (a[i] for i in range(len(a)))]))
    a.on_epoch_end()
    b.on_epoch_end()
    second = list(np.concatenate([x for x, _ in (a[i] for i in range(len(a)))]))
    assert sorted(first) == sorted(second) and first != second
    assert second == list(np.concatenate([x for x, _ in (b[i] for i in range(len(b)))]))
    with pytest.raises(IndexError):
        a[len(a)]


# Keras 3.15: keras.ops.image.resize(img, (4, 3), ...) on img = arange(30).reshape(3, 5, 2)
# ** 1.5 (float32), torch backend; channel 0 of the results.
KERAS_RESIZE = {
    "bilinear": [[0.9428, 8.0, 19.9839], [22.19, 35.7395, 52.6471],
                 [57.0957, 76.8303, 98.7655], [94.0249, 117.5755, 142.9662]],
    "nearest": [[0.0, 8.0, 22.6274], [31.6228, 52.3832, 76.3675],
                [31.6228, 52.3832, 76.3675], [89.4427, 117.5755, 148.1621]],
    "crop": [[2.8284, 5.4142, 8.0], [27.0414, 31.3905, 35.7395],
             [64.6767, 70.7535, 76.8303], [103.1892, 110.3823, 117.5755]],
    "pad": [[0.1179, 1.0, 2.498], [13.6911, 24.6437, 39.5818],
            [71.8674, 93.1284, 116.4458], [11.7531, 14.6969, 17.8708]],
    "bicubic": [[-1.805, 4.8143, 16.7262], [15.6015, 29.2274, 46.3621],
                [59.0343, 80.7514, 104.4737], [97.1929, 122.2548, 149.182]],
}
KERAS_UPSAMPLE_ROW3 = [31.6228, 34.9383, 40.4641, 46.3754, 52.3832, 58.837, 65.3742, 72.245,
                       76.3675]  # resize(img, (7, 9))[3, :, 0]
KERAS_UPSAMPLE_BICUBIC_ROW3 = [30.62, 34.1533, 39.943, 46.3685, 52.3832, 58.5343, 65.9016,
                               73.1194, 77.6145]  # ... interpolation="bicubic"


def test_resize_matches_keras_ops_image_resize():
    from shenjing._image_dataset import resize
    img = np.arange(30, dtype="float32").reshape(3, 5, 2) ** 1.5
    for key, kw in (("bilinear", {}), ("nearest", dict(interpolation="nearest")),
                    ("crop", dict(crop_to_aspect_ratio=True)),
                    ("pad", dict(pad_to_aspect_ratio=True)),
                    ("bicubic", dict(interpolation="bicubic"))):
        out = resize(img, (4, 3), **kw)
        np.testing.assert_allclose(out[..., 0], KERAS_RESIZE[key], atol=2e-4, err_msg=key)
    np.testing.assert_allclose(resize(img, (7, 9))[3, :, 0], KERAS_UPSAMPLE_ROW3, atol=2e-4)
    np.testing.assert_allclose(resize(img, (7, 9), "bicubic")[3, :, 0],
                               KERAS_UPSAMPLE_BICUBIC_ROW3, atol=2e-4)
    np.testing.assert_array_equal(resize(img, (3, 5)), img)


def _image_tree(root, Image):
    rng = np.random.default_rng(0)
    for c, n in (("cat", 3), ("dog", 2)):
        os.makedirs(root / c)
        for i in range(n):
            arr = rng.integers(0, 256, size=(6 + i, 8, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_dataset_from_directory(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from shenjing._image_dataset import resize
    root = _image_tree(tmp_path / "img", Image)
    ds = utils.image_dataset_from_directory(root, image_size=(4, 5), batch_size=2,
                                            shuffle=False, verbose=False)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 3
    x, y = ds[0]
    assert x.shape == (2, 4, 5, 3) and x.dtype == np.float32 and y.dtype == np.int32
    with Image.open(root / "cat" / "0.png") as im:
        raw = np.asarray(im, dtype=np.float32)
    np.testing.assert_allclose(x[0], resize(raw, (4, 5)), rtol=1e-6)
    assert list(np.concatenate([b[1] for b in ds])) == [0, 0, 0, 1, 1]
    gray = utils.image_dataset_from_directory(root, image_size=3, color_mode="grayscale",
                                              label_mode="binary", batch_size=8,
                                              shuffle=False, verbose=False,
                                              data_format="channels_first")
    x, y = gray[0]
    assert x.shape == (5, 1, 3, 3) and y.shape == (5, 1) and y.dtype == np.float32
    train, val = utils.image_dataset_from_directory(root, validation_split=0.4, subset="both",
                                                    seed=1, image_size=(2, 2),
                                                    label_mode="categorical", verbose=False)
    assert len(train.file_paths) == 3 and len(val.file_paths) == 2
    assert not set(train.file_paths) & set(val.file_paths)
    assert val[0][1].shape == (2, 2)
    with pytest.raises(ValueError, match="color_mode"):
        utils.image_dataset_from_directory(root, color_mode="cmyk")
    with pytest.raises(ValueError, match="image_size"):
        utils.image_dataset_from_directory(root, image_size=(2, 2, 2))
    with pytest.raises(NotImplementedError, match="area"):
        utils.image_dataset_from_directory(root, interpolation="area")
    with pytest.raises(ValueError, match="interpolation"):
        utils.image_dataset_from_directory(root, interpolation="cubic")
    with pytest.raises(ValueError, match="No images"):
        empty = tmp_path / "empty"
        os.makedirs(empty / "a")
        utils.image_dataset_from_directory(empty, verbose=False)


def test_image_dataset_without_pillow_says_what_to_install(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_pil)
    os.makedirs(tmp_path / "a")
    with pytest.raises(ImportError, match="pip install pillow"):
        utils.image_dataset_from_directory(tmp_path)


# -- get_file --------------------------------------------------------------------------------
def _read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def test_get_file_downloads_checks_and_caches(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello shenjing" * 100)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    path = utils.get_file("data.bin", origin=src.as_uri(), file_hash=sha, cache_dir=cache)
    assert path == str(cache / "datasets" / "data.bin")
    assert _read(path) == src.read_bytes()
    src.write_bytes(b"changed")  # a cached, valid file is not fetched again
    assert utils.get_file("data.bin", origin=src.as_uri(), md5_hash=md5,
                          cache_dir=cache) == path
    assert _read(path) == b"hello shenjing" * 100
    with pytest.raises(ValueError, match="hash"):  # a corrupt cache is re-fetched: mismatch
        with open(path, "wb") as f:
            f.write(b"corrupt")
        utils.get_file("data.bin", origin=src.as_uri(), file_hash=sha, cache_dir=cache)
    assert _read(path) == b"corrupt"  # the failed download replaced nothing
    assert [n for n in os.listdir(cache / "datasets") if n != "data.bin"] == []
    # fname defaults to the URL's last component
    assert utils.get_file(origin=src.as_uri(), cache_dir=cache).endswith("src.bin")


def test_get_file_offline_message_names_url_and_place(tmp_path):
    url = (tmp_path / "missing.tar.gz").as_uri()
    with pytest.raises(OSError) as e:
        utils.get_file("x.tar.gz", origin=url, cache_dir=tmp_path / "c")
    assert url in str(e.value) and str(tmp_path / "c" / "datasets" / "x.tar.gz") in str(e.value)
    with pytest.raises(ValueError, match="origin"):
        utils.get_file("x")
    with pytest.raises(ValueError, match="cache_dir"):
        utils.get_file("a/b", origin=url)


def test_get_file_extracts_tar_and_zip_and_refuses_escapes(tmp_path):
    import tarfile
    import zipfile
    payload = tmp_path / "payload"
    os.makedirs(payload / "inner")
    (payload / "inner" / "a.txt").write_text("A")
    tgz = tmp_path / "arch.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(payload / "inner", arcname="inner")
    out = utils.get_file("arch.tar.gz", origin=tgz.as_uri(), extract=True,
                         cache_dir=tmp_path / "c")
    assert out == str(tmp_path / "c" / "datasets" / "arch_extracted")
    assert _read(os.path.join(out, "inner", "a.txt"), "r") == "A"
    z = tmp_path / "z.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("b.txt", "B")
    out = utils.get_file("zdata", origin=z.as_uri(), extract=True, cache_dir=tmp_path / "c")
    assert out.endswith("zdata") and _read(os.path.join(out, "b.txt"), "r") == "B"
    assert os.path.isfile(out + "_archive")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as f:
        f.writestr("../../escaped.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        utils.get_file("evil.zip", origin=evil.as_uri(), extract=True,
                       cache_dir=tmp_path / "c")
    assert not os.path.exists(tmp_path / "c" / "datasets" / "evil_extracted")
    assert not os.path.exists(tmp_path / "escaped.txt")


# -- normalize -------------------------------------------------------------------------------
def test_normalize_matches_keras():
    # Keras 3.15: keras.utils.normalize(np.array([[3., 4., 0.], [0., 0., 0.], [1., 2., 2.]]))
    x = np.array([[3., 4., 0.], [0., 0., 0.], [1., 2., 2.]])
    np.testing.assert_allclose(utils.normalize(x),
                               [[0.6, 0.8, 0.0], [0, 0, 0], [1 / 3, 2 / 3, 2 / 3]])
    # ... normalize([[3, 4, 0], [1, 2, 2]], order=1)
    np.testing.assert_allclose(utils.normalize(np.array([[3., 4., 0.], [1., 2., 2.]]), order=1),
                               [[3 / 7, 4 / 7, 0.0], [0.2, 0.4, 0.4]])
    # axis=0 normalizes columns (Keras's NumPy path would turn 0 into -1)
    col = utils.normalize(np.array([[3., 1.], [4., 1.]]), axis=0)
    np.testing.assert_allclose(col, [[0.6, 2 ** -0.5], [0.8, 2 ** -0.5]])
    with pytest.raises(ValueError, match="axis"):
        utils.normalize(np.ones(3), axis=2)
    assert keras.utils.normalize is utils.normalize
