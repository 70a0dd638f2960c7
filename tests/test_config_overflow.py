"""Sizes from configs whose arithmetic passes 32 (or 64) bits: a ValueError naming the layer,
the argument and the shapes, never a wrong output length or a crash. Configs reach the core
three ways, all tested: the Python layer API, _core.Model.add_layer(json) and saved files
(Model::load and load_model). Each value here is within the per-value caps of a config
(2^24), only their products overflow."""
import json
import re

import numpy as np
import pytest

import shenjing
from shenjing import layers
from shenjing.models import Sequential, load_model

K = 2**23 + 1          # kernel_size: with dilation 256, (K - 1) * 256 + 1 = 2^31 + 1 cells
D = 256
BIG_SPAN = r"span more than 2\^31 - 1 cells"
# Products of these wrap to exactly 4 modulo 2^64 (7695460 * 49477 * 8681 * 5581 = 2^64 + 4):
# an unchecked product accepts them as a reshape of 4 values.
WRAPS_TO_4 = [7695460, 49477, 8681, 5581]


def _no_negative_numbers(msg):
    assert not re.search(r"[\s(,]-[02-9]|[\s(,]-1\d", msg), msg  # -1 is a Reshape wildcard


def _sequential(input_shape, layer):
    return Sequential([layers.Input(input_shape), layer])


# -- the Python layer API --------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["same", "causal"])
def test_conv1d_dilated_window_past_int_range(padding):
    with pytest.raises(ValueError, match=BIG_SPAN) as e:
        _sequential((10, 1), layers.Conv1D(1, K, dilation_rate=D, padding=padding, name="c"))
    msg = str(e.value)
    assert "'c' (Conv1D)" in msg and "kernel_size 8388609" in msg and "dilation_rate 256" in msg
    assert "(None, 10, 1)" in msg and f"padding='{padding}'" in msg
    _no_negative_numbers(msg)


def test_conv1d_valid_window_larger_than_input_reports_its_real_size():
    with pytest.raises(ValueError, match="is larger than the input") as e:
        _sequential((10, 1), layers.Conv1D(1, K, dilation_rate=D, name="c"))
    assert "2147483649 with dilation" in str(e.value)
    _no_negative_numbers(str(e.value))


@pytest.mark.parametrize("kernel, dilation", [((K, 2), (D, 1)), ((2, K), (1, D))])
def test_conv2d_dilated_window_past_int_range(kernel, dilation):
    with pytest.raises(ValueError, match=BIG_SPAN) as e:
        _sequential((4, 4, 1), layers.Conv2D(1, kernel, dilation_rate=dilation, padding="same",
                                             name="c2"))
    assert "'c2' (Conv2D)" in str(e.value) and "(None, 4, 4, 1)" in str(e.value)
    _no_negative_numbers(str(e.value))


def test_conv_just_inside_int_range_still_builds():
    # (2^23 - 1) * 256 + 1 cells < 2^31: the checks refuse only what cannot be computed.
    model = _sequential((3, 1), layers.Conv1D(1, 2**23, dilation_rate=D, padding="same",
                                              use_bias=False))
    assert model.predict(np.ones((1, 3, 1), np.float32), verbose=0).shape == (1, 3, 1)


@pytest.mark.parametrize("target", [(2**24, 2**24, 2**24, -1), tuple(WRAPS_TO_4)])
def test_reshape_target_whose_product_overflows(target):
    with pytest.raises(ValueError, match=r"'r' \(Reshape\) cannot reshape input of shape "
                                         r"\(None, 4\) \(4 values per sample\)"):
        _sequential((4,), layers.Reshape(target, name="r"))


# -- _core.Model.add_layer(json) -------------------------------------------------------------
def _add(core_model, class_name, **config):
    core_model.add_layer(json.dumps({"class_name": class_name,
                                     "config": {"name": "x", **config}}))


@pytest.mark.parametrize("class_name, input_shape, config, pattern", [
    ("Conv1D", [10, 1], {"filters": 1, "kernel_size": K, "dilation_rate": D,
                         "padding": "same"}, BIG_SPAN),
    ("Conv1D", [10, 1], {"filters": 1, "kernel_size": [K], "dilation_rate": [D],
                         "padding": "causal"}, BIG_SPAN),
    ("Conv1D", [10, 1], {"filters": 1, "kernel_size": K, "dilation_rate": D},
     "2147483649 with dilation"),
    ("Conv2D", [5, 5, 2], {"filters": 1, "kernel_size": [2, K], "dilation_rate": [1, D],
                           "padding": "same"}, BIG_SPAN),
    ("Reshape", [4], {"target_shape": [2**24, 2**24, 2**24, -1]}, "cannot reshape"),
    ("Reshape", [4], {"target_shape": WRAPS_TO_4}, "cannot reshape"),
    ("Reshape", [4], {"target_shape": [2**24] * 8}, "cannot reshape"),
])
def test_add_layer_json(class_name, input_shape, config, pattern):
    m = shenjing._core.Model(input_shape)
    before = (m.num_layers, list(m.output_shape))
    with pytest.raises(ValueError, match=pattern) as e:
        _add(m, class_name, **config)
    assert f"'x' ({class_name})" in str(e.value)
    _no_negative_numbers(str(e.value))
    assert (m.num_layers, list(m.output_shape)) == before  # the failed call changed nothing
    _add(m, "Flatten")  # and the model still takes layers
    assert m.num_layers == before[0] + 1


# -- saved files: both loaders ---------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    shenjing.utils.set_random_seed(0)
    # Conv1D outputs 4 values per sample, what the Reshape test's target wraps to.
    model = Sequential([layers.Input((4, 1)), layers.Conv1D(1, 3, padding="same", name="c"),
                        layers.Flatten(), layers.Dense(2)])
    path = tmp_path_factory.mktemp("saved") / "m.keras"
    model.save(path)
    return path.read_bytes()


def _edit_config(raw, edit):
    """The model file raw with edit(list of layer specs) applied to its config."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    config = json.loads(header["__metadata__"]["model_config"])
    edit(config["config"]["layers"])
    header["__metadata__"]["model_config"] = json.dumps(config)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n:]


def _both_refuse(tmp_path, raw, pattern, label):
    path = tmp_path / "bad.keras"
    path.write_bytes(raw)
    for loader in (load_model, lambda p: shenjing._core.Model.load(str(p))):
        with pytest.raises(ValueError, match=pattern) as e:
            loader(path)
        assert label in str(e.value)
        _no_negative_numbers(str(e.value))


@pytest.mark.parametrize("changes, pattern", [
    ({"kernel_size": [K], "dilation_rate": [D]}, BIG_SPAN),
    ({"kernel_size": [K], "dilation_rate": [D], "padding": "causal"}, BIG_SPAN),
    ({"kernel_size": [K], "dilation_rate": [D], "padding": "valid"},
     "2147483649 with dilation"),
])
def test_saved_file_with_overflowing_conv(tmp_path, saved_bytes, changes, pattern):
    raw = _edit_config(saved_bytes, lambda specs: specs[1]["config"].update(changes))
    _both_refuse(tmp_path, raw, pattern, "'c' (Conv1D)")


def test_saved_file_with_overflowing_reshape(tmp_path, saved_bytes):
    def edit(specs):
        specs[2] = {"class_name": "Reshape", "config": {"name": "r", "target_shape": WRAPS_TO_4}}
    _both_refuse(tmp_path, _edit_config(saved_bytes, edit), "cannot reshape", "'r' (Reshape)")
