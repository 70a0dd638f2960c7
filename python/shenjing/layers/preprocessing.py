"""Keras 3's image preprocessing layers, channels last: CenterCrop and Resizing (deterministic,
in training and inference) and the augmentation layers RandomFlip, RandomRotation, RandomZoom,
RandomTranslation and RandomContrast (active in ``fit`` only; ``predict`` and ``evaluate``
pass images through unchanged, as Keras's ``training=False``).

The C++ core computes all of them (``cpp/src/layers/image_*.cpp``): one random transform per
sample drawn from the layer's seeded stream (the same seed gives the same augmentation for any
thread count; the stream is saved with the model). Called on arrays, as in Keras, a random
layer augments unless ``training=False``, and 3-D arrays are single images.
"""
import numbers

import numpy as np

from shenjing.layers import _seeds
from shenjing.layers._window import check_data_format
from shenjing.layers.base import Layer

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")


def _positive_int(value, what, cls):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{cls}: {what} must be an integer, received {value!r}.")
    if value <= 0:
        raise ValueError(f"{cls}: {what} must be a positive integer, received {value}.")
    return int(value)


def _number(value, what, cls):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not np.isfinite(float(value)):
        raise ValueError(f"{cls}: {what} must be a finite number, received {value!r}.")
    return float(value)


_seed = _seeds.check_seed


def _check_modes(fill_mode, interpolation):
    # Keras raises NotImplementedError for these two (random_rotation.py and the others).
    if fill_mode not in _FILL_MODES:
        raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one "
                                  f"{_FILL_MODES}.")
    if interpolation not in _INTERPOLATIONS:
        raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one "
                                  f"{_INTERPOLATIONS}.")


class _ImageLayer(Layer):
    """Shared by the image layers: 3-D arrays are single images in eager calls."""

    _random = False

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, type(self).__name__)
        self.data_format = "channels_last"

    def _eager_call(self, x, training):
        if not hasattr(x, "shape") and not isinstance(x, (list, tuple)):
            return super()._eager_call(x, training)
        x = np.asarray(x, dtype=np.float32)
        if x.ndim not in (3, 4):
            raise ValueError(f"Expected image tensor to have rank 3 (single image) or rank 4 "
                             f"(batch of images). Received: data.shape={x.shape}")
        single = x.ndim == 3
        batch = x[None] if single else x
        if self._random:
            # Keras's call(training=True) default: an array call augments unless told not to.
            y = batch.copy() if training is False or len(batch) == 0 else self._augment(batch)
        else:
            y = super()._eager_call(batch, None)
        return y[0] if single else y


def pipeline_on_arrays(model, x, training):
    """``model(x)`` on arrays for a Sequential of image preprocessing layers only (Keras's
    data_augmentation = Sequential([RandomFlip(...), ...])): each layer's own call, so the
    random layers augment unless training=False, as in Keras, where their call defaults to
    training=True. None for any other model (it predicts)."""
    from shenjing.sequential import Sequential
    layers = model.layers if isinstance(model, Sequential) else []
    if not layers or not all(isinstance(layer, _ImageLayer) for layer in layers):
        return None
    for layer in layers:
        x = layer(x, training=training)
    return x


class _RandomImageLayer(_ImageLayer):
    """A layer with a seeded random stream in the core (as Dropout's)."""

    _random = True
    _train_only = True  # changes with training=; layers/base.py refuses training=False calls

    def _core_config(self):
        return _seeds.core_config(self)  # the C++ stream's seed (drawn once when None)

    def _augment(self, batch):
        """The layer in training mode on one batch of arrays; each call continues the layer's
        own sequence of seeds, so a seeded layer gives the same calls after the same calls."""
        import json

        from shenjing import _core
        if getattr(self, "_eager_rng", None) is None:
            self._eager_rng = np.random.default_rng(self._core_config()["seed"])
        spec = json.dumps({"class_name": type(self).__name__,
                           "config": {**self.get_config(),
                                      "seed": int(self._eager_rng.integers(0, 2**53))}})
        return _core._run_layer(spec, [tuple(batch.shape[1:])], [np.ascontiguousarray(batch)],
                                None, True, None)[0]


class CenterCrop(_ImageLayer):
    """Crops the central ``(height, width)`` window of each image; an image smaller than that
    along an axis is first cropped to the target's aspect ratio and resized (bilinear), as
    Keras's ``smart_resize``."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = _positive_int(height, "height", "CenterCrop")
        self.width = _positive_int(width, "width", "CenterCrop")


class Resizing(_ImageLayer):
    """Resizes images to ``(height, width)``: ``interpolation`` 'bilinear' (half-pixel centres,
    as Keras's ``ops.image.resize`` and PyTorch's ``interpolate(align_corners=False)``) or
    'nearest'; ``crop_to_aspect_ratio`` crops the largest centred window of the target's aspect
    ratio first, ``pad_to_aspect_ratio`` pads the short side with ``fill_value`` instead.
    'bicubic' and 'lanczos' interpolation and ``antialias=True`` are not supported."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = _positive_int(height, "height", "Resizing")
        self.width = _positive_int(width, "width", "Resizing")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"Resizing: interpolation must be 'bilinear' or 'nearest' (Keras's "
                             f"'bicubic', 'lanczos3' and 'lanczos5' are not supported), "
                             f"received {interpolation!r}.")
        if pad_to_aspect_ratio and crop_to_aspect_ratio:
            raise ValueError("Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be "
                             "`True`.")
        if fill_mode != "constant":
            raise ValueError(f"Invalid value for argument `fill_mode`. Only `'constant'` is "
                             f"supported. Received: fill_mode={fill_mode}")
        if antialias:
            raise ValueError("Resizing: antialias=True is not supported.")
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = _number(fill_value, "fill_value", "Resizing")
        self.antialias = False


class RandomFlip(_RandomImageLayer):
    """Flips each image with probability 1/2 in training: ``mode`` 'horizontal' (left-right),
    'vertical' (top-bottom) or 'horizontal_and_vertical' (both axes together, as Keras)."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if mode not in ("horizontal", "vertical", "horizontal_and_vertical"):
            raise ValueError(f"RandomFlip: mode must be 'horizontal', 'vertical' or "
                             f"'horizontal_and_vertical', received {mode!r}.")
        self.mode = mode
        self.seed = _seed(seed, "RandomFlip")


def _base_factor(factor, bounds, cls):
    """Keras's BaseImagePreprocessingLayer._set_factor: (lower, upper)."""
    msg = (f"The `factor` argument should be a number (or a list of two numbers) in the range "
           f"[{bounds[0]}, {bounds[1]}]. Received: factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(isinstance(f, numbers.Real) and not isinstance(f, bool)
                                       for f in factor):
            raise ValueError(msg)
        if factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(msg)
        return tuple(sorted(factor))
    if isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        if factor < bounds[0] or factor > bounds[1]:
            raise ValueError(msg)
        factor = abs(factor)
        return (max(-factor, bounds[0]), factor)
    raise ValueError(msg)


def _each_factor(factor, name, open_low):
    """RandomZoom's / RandomTranslation's _set_factor: every number in (-1, 1] / [-1, 1]."""
    rng = "(-1.0, 1.0]" if open_low else "[-1.0, 1.0]"
    msg = f"The `{name}` argument should be a number (or a list of two numbers) in the range {rng}. "

    def check(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or v > 1.0 or v < -1.0 or \
                (open_low and v == -1.0):
            raise ValueError(msg + f"Received: input_number={v}")

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(msg + f"Received: {name}={factor}")
        check(factor[0])
        check(factor[1])
        return factor
    if isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        check(factor)
        return factor
    raise ValueError(msg + f"Received: {name}={factor}")


class _RandomAffine(_RandomImageLayer):
    def _set_modes(self, fill_mode, interpolation, seed, fill_value):
        _check_modes(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.seed = _seed(seed, type(self).__name__)
        self.fill_value = _number(fill_value, "fill_value", type(self).__name__)


class RandomRotation(_RandomAffine):
    """Rotates each image by a random angle about its centre in training: ``factor`` is a
    fraction of a full turn, a number f for [-f, f] or a pair (lower, upper); positive angles
    turn counter-clockwise. Cells from outside the image follow ``fill_mode`` ('reflect',
    'wrap', 'constant' with ``fill_value``, 'nearest'); ``interpolation`` 'bilinear' or
    'nearest'."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, (-1, 1), "RandomRotation")
        self._set_modes(fill_mode, interpolation, seed, fill_value)


class RandomZoom(_RandomAffine):
    """Zooms each image about its centre in training by 1 + a random factor per axis: a
    positive factor zooms out, a negative one in. ``height_factor`` a number f for [-f, f] or a
    pair, in (-1, 1]; ``width_factor`` likewise, or None to keep the aspect ratio."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height_factor = _each_factor(height_factor, "height_factor", True)
        self.width_factor = None if width_factor is None else \
            _each_factor(width_factor, "width_factor", True)
        self._set_modes(fill_mode, interpolation, seed, fill_value)


class RandomTranslation(_RandomAffine):
    """Shifts each image in training by a random fraction of its height and width:
    ``height_factor`` / ``width_factor`` a number f for [-f, f] or a pair, in [-1, 1]."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height_factor = _each_factor(height_factor, "height_factor", False)
        self.width_factor = _each_factor(width_factor, "width_factor", False)
        self._set_modes(fill_mode, interpolation, seed, fill_value)


class RandomContrast(_RandomImageLayer):
    """Scales each image's deviation from its per-channel mean by a random factor in
    [1 - lower, 1 + upper] in training, then clips to ``value_range``. ``factor``: a number f
    (Keras reads it as (0, f)) or a pair (lower, upper), within [0, 1]."""

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.factor = _base_factor(factor, (0, 1), "RandomContrast")
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(f"RandomContrast: value_range must be a pair (min, max), received "
                             f"{value_range!r}.")
        lo, hi = (_number(v, "value_range", "RandomContrast") for v in value_range)
        if lo > hi:
            raise ValueError(f"RandomContrast: value_range must be (min, max) with min <= max, "
                             f"received {value_range!r}.")
        self.value_range = tuple(value_range)
        self.seed = _seed(seed, "RandomContrast")
