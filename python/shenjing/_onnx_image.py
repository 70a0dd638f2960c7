"""ONNX converters of the image preprocessing layers (layers/preprocessing.py).

CenterCrop and Resizing: the window the core reads (cpp/src/layers/image_resize.cpp, Keras's
arithmetic) as a Slice (crop) or a Pad with fill_value, then, when the window's size differs
from the target, one Resize on channels-first data: 'linear' with half-pixel centres for
bilinear, 'nearest' with half-pixel centres rounded half up (floor((o + 0.5) * in / out),
Keras's rule) for nearest. The random layers export as what they do at inference: Identity.
"""
import numpy as np

from shenjing.layers.preprocessing import (CenterCrop, RandomContrast, RandomFlip,
                                           RandomRotation, RandomTranslation, RandomZoom,
                                           Resizing)


def window(layer, H, W):
    """(interpolation, (row offset, rows), (col offset, cols)) of the window the layer resizes
    to (height, width); a negative offset pads that many fill cells before and after."""
    th, tw = layer.height, layer.width
    center = isinstance(layer, CenterCrop)
    interp = "bilinear" if center else layer.interpolation
    if center and H >= th and W >= tw:
        return interp, ((H - th) // 2, th), ((W - tw) // 2, tw)
    if center or layer.crop_to_aspect_ratio:
        sh = max(min(H, int(float(W * th) / tw)), 1)
        sw = max(min(W, int(float(H * tw) / th)), 1)
        return interp, (int(float(H - sh) / 2), sh), (int(float(W - sw) / 2), sw)
    if layer.pad_to_aspect_ratio:
        hs = int(float(max(H, int(float(W * th) / tw)) - H) / 2)
        ws = int(float(max(W, int(float(H * tw) / th)) - W) / 2)
        if hs > 0:
            return interp, (-hs, H + 2 * hs), (0, W)
        if ws > 0:
            return interp, (0, H), (-ws, W + 2 * ws)
    return interp, (0, H), (0, W)


def _resize(g, layer, x):
    H, W = layer.input_shape[1:3]
    if H is None or W is None:  # the window and the taps depend on them
        raise ValueError(f"export_onnx: layer '{layer.name}' ({type(layer).__name__}) needs the "
                         f"height and width of its input, received {layer.input_shape}.")
    interp, (oh, sh), (ow, sw) = window(layer, H, W)
    name = layer.name
    if oh > 0 or ow > 0 or sh < H or sw < W:  # a crop
        x = g.op("Slice", [x, g.const([oh, ow], name + "/starts", np.int64),
                           g.const([oh + sh, ow + sw], name + "/ends", np.int64),
                           g.const([1, 2], name + "/axes", np.int64)], name + "/crop")
    elif oh < 0 or ow < 0:  # padding with fill_value
        pads = [0, -oh, -ow, 0, 0, -oh, -ow, 0]
        x = g.op("Pad", [x, g.const(pads, name + "/pads", np.int64),
                         g.const(np.float32(layer.fill_value), name + "/fill")], name + "/pad",
                 mode="constant")
    if (sh, sw) == (layer.height, layer.width):
        return g.op("Identity", [x], name)
    xt = g.op("Transpose", [x], name + "/to_channels_first", perm=[0, 3, 1, 2])
    # Sizes (N, C, height, width) with N from the data: the batch axis is dynamic.
    nc = g.op("Slice", [g.op("Shape", [xt], name + "/shape"),
                        g.const([0], name + "/zero", np.int64),
                        g.const([2], name + "/two", np.int64)], name + "/nc")
    sizes = g.op("Concat", [nc, g.const([layer.height, layer.width], name + "/hw", np.int64)],
                 name + "/sizes", axis=0)
    if interp == "bilinear":
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    else:
        # (o + 0.5) * in / out - 0.5 rounded half up: floor((o + 0.5) * in / out), Keras's
        # nearest (tf_half_pixel_for_nn + floor says the same but is deprecated).
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                 "nearest_mode": "round_prefer_ceil"}
    y = g.op("Resize", [xt, "", "", sizes], name + "/resize", **attrs)
    return g.op("Transpose", [y], name, perm=[0, 2, 3, 1])


def _identity(g, layer, x):
    return x


CONVERTERS = {CenterCrop: _resize, Resizing: _resize, RandomFlip: _identity,
              RandomRotation: _identity, RandomZoom: _identity, RandomTranslation: _identity,
              RandomContrast: _identity}
