"""C++ error messages keep their numbers with onnx loaded in the same process.

onnx is imported before shenjing on purpose: with libstdc++ linked statically into the
extension (SHENJING_STATIC_LIBSTDCXX, as some wheel builders do), messages formatted through
iostreams lost their numbers (GCC 12) or crashed (GCC 13) once onnx was loaded. CI runs this
file against such a build (.ci/static-libstdcxx); against a normal build it checks the same
messages."""
import pytest

onnx = pytest.importorskip("onnx")

import numpy as np  # noqa: E402

import shenjing  # noqa: E402
from shenjing import layers  # noqa: E402


def test_input_shape_message():
    with pytest.raises(ValueError, match=r"Input shape must have positive dimensions, "
                                         r"received \(None, 0\)\."):
        shenjing._core.Model([0])
    with pytest.raises(ValueError, match=r"\(None, 4096, 4096, 32\) has more than 2\^28"):
        shenjing._core.Model([4096, 4096, 32])


def test_layer_messages():
    with pytest.raises(ValueError, match=r"'r' \(Reshape\) cannot reshape input of shape "
                                         r"\(None, 6\) \(6 values per sample\) to target "
                                         r"shape \(4, -1\)\."):
        shenjing.Sequential([layers.Input((6,)), layers.Reshape((4, -1), name="r")])
    with pytest.raises(ValueError, match=r"kernel_size \(3, 3\) is larger than the input "
                                         r"\(None, 2, 2, 1\)"):
        shenjing.Sequential([layers.Input((2, 2, 1)), layers.Conv2D(1, 3)])


def test_config_messages():
    m = shenjing._core.Model([5])
    with pytest.raises(ValueError, match=r"'units' must be an integer in \[1, 16777216\], "
                                         r"received the number 0"):
        m.add_layer('{"class_name": "Dense", "config": {"name": "d", "units": 0}}')
    with pytest.raises(ValueError, match=r"momentum' must be a number in \[0\.0+, 1\.0+\]"):
        m.add_layer('{"class_name": "BatchNormalization", "config": {"momentum": 2}}')


def test_predict_shape_message():
    model = shenjing.Sequential([layers.Input((3,)), layers.Dense(2, name="d")])
    with pytest.raises(ValueError, match=r"\(None, 3\)") as e:
        model.predict(np.ones((2, 5), np.float32), verbose=0)
    assert "5" in str(e.value)
