"""Broken and hostile model files: every case gives a ValueError that says what is wrong,
from both loaders (Python's load_model and the C++ Model::load that native programs use);
nothing crashes, hangs, or allocates memory the file does not justify. A fuzz test flips,
cuts and splices bytes of valid files thousands of times."""
import json
import struct

import numpy as np
import pytest

import shenjing
from shenjing import layers
from shenjing.models import Sequential, load_model

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


def _valid_model():
    shenjing.utils.set_random_seed(0)
    model = Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                        layers.BatchNormalization(), layers.Flatten(), layers.Dropout(0.5),
                        layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 1)).astype(np.float32)
    model.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "m.keras"
    _valid_model().save(path)
    return path.read_bytes()


def _split(raw):
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _join(header, data, pad=True):
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def _both_refuse(tmp_path, raw, pattern):
    """Both loaders raise ValueError matching pattern (and name the file)."""
    path = tmp_path / "bad.keras"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=pattern) as e:
        load_model(path)
    assert "bad.keras" in str(e.value)
    with pytest.raises(ValueError, match=pattern) as e:
        shenjing._core.Model.load(str(path))
    assert "bad.keras" in str(e.value)


def _edit_config(valid_bytes, edit):
    header, data = _split(valid_bytes)
    config = json.loads(header["__metadata__"]["model_config"])
    edit(config["config"]["layers"])
    header["__metadata__"]["model_config"] = json.dumps(config)
    return _join(header, data)


# -- the container ---------------------------------------------------------------------------
def test_missing_file_and_directory(tmp_path):
    for loader in (load_model, lambda p: shenjing._core.Model.load(str(p))):
        with pytest.raises(ValueError, match="no such file"):
            loader(tmp_path / "absent.keras")
        with pytest.raises(ValueError, match="directory"):
            loader(tmp_path)


@pytest.mark.parametrize("raw, pattern", [
    (b"", "empty"),
    (b"\x10\x00", "too short"),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, "not a .*safetensors"),
    (b"PK\x03\x04" + b"\x00" * 60, "not a .*safetensors"),
    (b'{"class_name": "Sequential"}', "not a .*safetensors"),
])
def test_wrong_kinds_of_file(tmp_path, raw, pattern):
    _both_refuse(tmp_path, raw, pattern)


def test_truncated_file(tmp_path, valid_bytes):
    for cut in (9, 100, len(valid_bytes) // 2, len(valid_bytes) - 1):
        _both_refuse(tmp_path, valid_bytes[:cut], "truncated|shorter|past the end|out of range")


def test_header_length_larger_than_the_file(tmp_path, valid_bytes):
    huge = struct.pack("<Q", 2**62) + valid_bytes[8:]
    _both_refuse(tmp_path, huge, "header")
    big = struct.pack("<Q", len(valid_bytes)) + valid_bytes[8:]
    _both_refuse(tmp_path, big, "truncated|header")


def test_offsets_out_of_range_or_overlapping(tmp_path, valid_bytes):
    header, data = _split(valid_bytes)
    bad = json.loads(json.dumps(header))
    bad["layers.0.kernel"]["data_offsets"][1] += 10**6
    _both_refuse(tmp_path, _join(bad, data), "offsets|range|size")
    bad = json.loads(json.dumps(header))
    b, e = bad["layers.0.bias"]["data_offsets"]
    bad["layers.0.bias"]["data_offsets"] = [b - 4, e - 4]  # overlaps the kernel
    _both_refuse(tmp_path, _join(bad, data), "overlap|hole|tile|cover")
    bad = json.loads(json.dumps(header))
    bad["layers.0.bias"]["data_offsets"] = [e, b]
    _both_refuse(tmp_path, _join(bad, data), "offsets|begin|end")


def test_dtype_and_shape_mismatches(tmp_path, valid_bytes):
    header, data = _split(valid_bytes)
    bad = json.loads(json.dumps(header))
    bad["layers.0.kernel"]["dtype"] = "I32"  # same size, wrong type
    _both_refuse(tmp_path, _join(bad, data), "layers.0.kernel.*F32|float32")
    bad = json.loads(json.dumps(header))
    bad["layers.0.kernel"]["dtype"] = "Q99"
    _both_refuse(tmp_path, _join(bad, data), "dtype")
    bad = json.loads(json.dumps(header))
    bad["layers.0.kernel"]["shape"] = [3, 3, 2, 1]  # same size, wrong shape
    _both_refuse(tmp_path, _join(bad, data), r"layers.0.kernel.*shape \(3, 3, 2, 1\)")
    bad = json.loads(json.dumps(header))
    bad["layers.0.kernel"]["shape"] = [-3, 3, 1, 2]
    _both_refuse(tmp_path, _join(bad, data), "shape")
    bad = json.loads(json.dumps(header))
    bad["layers.0.kernel"]["shape"] = [2**40, 2**40, 2**40]
    _both_refuse(tmp_path, _join(bad, data), "shape|large")


def test_nan_weights(tmp_path, valid_bytes):
    header, data = _split(valid_bytes)
    b, _ = header["layers.4.kernel"]["data_offsets"]
    data = data[:b] + np.float32(np.nan).tobytes() + data[b + 4:]
    _both_refuse(tmp_path, _join(header, data), "NaN")


def test_missing_and_extra_weights(tmp_path, valid_bytes):
    header, data = _split(valid_bytes)
    renamed = {("layers.9.kernel" if k == "layers.4.kernel" else k): v for k, v in header.items()}
    _both_refuse(tmp_path, _join(renamed, data), "'layers.4.kernel'.* missing")


def test_metadata_that_is_not_ours(tmp_path, valid_bytes):
    header, data = _split(valid_bytes)
    header["__metadata__"]["format"] = "pt"
    _both_refuse(tmp_path, _join(header, data), "not .*shenjing")
    del header["__metadata__"]
    _both_refuse(tmp_path, _join(header, data), "not .*shenjing")


def test_json_nesting_bombs(tmp_path, valid_bytes):
    _, data = _split(valid_bytes)
    bomb = b"[" * 100000 + b"]" * 100000
    raw = struct.pack("<Q", len(bomb)) + bomb
    _both_refuse(tmp_path, raw, "deeper|nest|depth|JSON")
    header, data = _split(valid_bytes)
    header["__metadata__"]["model_config"] = "[" * 200000 + "]" * 200000
    _both_refuse(tmp_path, _join(header, data), "JSON|deeper|nest")


# -- the architecture ------------------------------------------------------------------------
def test_unknown_layer_type(tmp_path, valid_bytes):
    def edit(specs):
        specs[1]["class_name"] = "Lambda"
    _both_refuse(tmp_path, _edit_config(valid_bytes, edit), "Lambda")


def test_absurd_sizes_allocate_nothing(tmp_path, valid_bytes):
    """A config asking for gigabytes is refused before anything is allocated."""
    def units(specs):
        specs[-1]["config"]["units"] = 2**23
    _both_refuse(tmp_path, _edit_config(valid_bytes, units), "layers.4.kernel|units")

    def padding(specs):
        specs.insert(1, {"class_name": "ZeroPadding2D",
                         "config": {"name": "zp", "padding": [2**23, 2**23]}})
    _both_refuse(tmp_path, _edit_config(valid_bytes, padding), "2\\^28|too large|padding")

    def input_shape(specs):
        specs[0]["config"]["batch_shape"] = [None, 2**24, 2**24, 1]
    _both_refuse(tmp_path, _edit_config(valid_bytes, input_shape), "2\\^28|Input")


@pytest.mark.parametrize("key, value, pattern", [
    ("filters", -2, "'filters'"),
    ("filters", "two", "'filters'"),
    ("kernel_size", [3, 3, 3], "'kernel_size'"),
    ("strides", 0, "'strides'"),
    ("padding", "mirror", "padding"),
    ("activation", "os.system", "activation"),
    ("kernel_regularizer", {"class_name": "Pickle", "config": {}}, "regularizer"),
])
def test_bad_layer_fields(tmp_path, valid_bytes, key, value, pattern):
    def edit(specs):
        specs[1]["config"][key] = value
    _both_refuse(tmp_path, _edit_config(valid_bytes, edit), pattern)


def test_not_a_sequential_config(tmp_path, valid_bytes):
    header, data = _split(valid_bytes)
    header["__metadata__"]["model_config"] = json.dumps({"class_name": "Functional",
                                                         "config": {}})
    _both_refuse(tmp_path, _join(header, data), "Sequential")


# -- fuzzing ---------------------------------------------------------------------------------
def _load_or_refuse(path):
    """Both loaders either load or raise ValueError; anything else fails the test."""
    for loader in (load_model, lambda p: shenjing._core.Model.load(str(p))):
        try:
            loader(path)
        except ValueError:
            pass


def test_random_byte_flips(tmp_path, valid_bytes):
    rng = np.random.default_rng(0)
    path = tmp_path / "fuzz.keras"
    n = struct.unpack("<Q", valid_bytes[:8])[0]
    for i in range(3000):
        raw = bytearray(valid_bytes)
        # Mostly the header (where the structure is), sometimes anywhere.
        end = 8 + n if i % 4 else len(raw)
        for _ in range(rng.integers(1, 4)):
            raw[rng.integers(0, end)] = rng.integers(0, 256)
        path.write_bytes(bytes(raw))
        _load_or_refuse(path)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_cuts_and_splices(tmp_path, valid_bytes, data):
    raw = valid_bytes
    cut = data.draw(st.integers(0, len(raw)))
    insert = data.draw(st.binary(max_size=16))
    at = data.draw(st.integers(0, len(raw)))
    mutated = raw[:at] + insert + raw[at:]
    mutated = mutated[:cut] if data.draw(st.booleans()) else mutated
    path = tmp_path / "hyp.keras"
    path.write_bytes(mutated)
    _load_or_refuse(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(value=st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) |
                          st.floats(allow_nan=False) | st.text(max_size=8),
                          lambda c: st.lists(c, max_size=4) |
                          st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12),
       where=st.sampled_from(["units", "rate", "kernel_size", "pool_size", "padding", "name",
                              "batch_shape", "target_shape", "axis", "class_name"]))
def test_hypothesis_config_values(tmp_path, valid_bytes, value, where):
    """Any JSON value in any config field: a model or a ValueError."""
    def edit(specs):
        target = {"batch_shape": 0, "class_name": 3}.get(where, len(specs) - 1)
        if where == "class_name":
            specs[target]["class_name"] = value
        else:
            specs[target]["config"][where] = value
    path = tmp_path / "cfg.keras"
    path.write_bytes(_edit_config(valid_bytes, edit))
    _load_or_refuse(path)
