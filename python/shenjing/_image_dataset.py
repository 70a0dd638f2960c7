"""``utils.image_dataset_from_directory`` (keras/src/utils/image_dataset_utils.py): images read
with Pillow (an optional dependency) and resized as ``keras.ops.image.resize`` does, one batch
at a time."""
import numpy as np

from shenjing import _dataset_utils as du

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_KERAS_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5",
                         "gaussian", "mitchellcubic")
_SUPPORTED_INTERPOLATIONS = ("bilinear", "nearest", "bicubic")


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("image_dataset_from_directory reads images with Pillow, which is "
                          "not installed: `pip install pillow` (or `pip install "
                          "shenjing[image]`).") from e
    return Image


def _cubic(t, a=-0.75):
    """Keys' cubic convolution kernel with torch's a = -0.75."""
    t = np.abs(t)
    return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def _axis_matrix(size_in, size_out, interpolation):
    """The (size_out, size_in) matrix resizing one axis: half-pixel centres without
    antialiasing, as torch's interpolate(align_corners=False) computes (Keras's torch
    backend; TF2's resize gives the same bilinear and nearest)."""
    scale = size_in / size_out
    dst = np.arange(size_out, dtype=np.float64)
    m = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    if interpolation == "nearest":  # torch's 'nearest-exact', TF2's half-pixel nearest
        src = np.minimum(np.floor((dst + 0.5) * scale).astype(np.int64), size_in - 1)
        m[rows, src] = 1.0
        return m
    src = (dst + 0.5) * scale - 0.5
    if interpolation == "bilinear":
        src = np.maximum(src, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
        w = src - i0
        np.add.at(m, (rows, i0), 1 - w)
        np.add.at(m, (rows, np.minimum(i0 + 1, size_in - 1)), w)
        return m
    i0 = np.floor(src).astype(np.int64)  # bicubic: 4 taps, indices clamped at the borders
    t = src - i0
    for k in (-1, 0, 1, 2):
        np.add.at(m, (rows, np.clip(i0 + k, 0, size_in - 1)), _cubic(t - k))
    return m


def resize(img, size, interpolation="bilinear", crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False):
    """A float32 (H, W, C) image resized to ``size`` as ``keras.ops.image.resize`` does
    (antialias off), after Keras's centred crop or zero padding to the target aspect ratio."""
    img = np.asarray(img, dtype=np.float32)
    height, width = img.shape[:2]
    th, tw = size
    if crop_to_aspect_ratio:
        ch = max(min(height, int(float(width * th) / tw)), 1)
        cw = max(min(width, int(float(height * tw) / th)), 1)
        h0, w0 = int(float(height - ch) / 2), int(float(width - cw) / 2)
        img = img[h0:h0 + ch, w0:w0 + cw]
    elif pad_to_aspect_ratio:
        # Keras pads the same number of rows (columns) on both sides.
        ph = int(float(max(height, int(float(width * th) / tw)) - height) / 2)
        pw = int(float(max(width, int(float(height * tw) / th)) - width) / 2)
        img = np.pad(img, ((ph, ph), (pw, pw), (0, 0)))
    h, w = img.shape[:2]
    if (h, w) == (th, tw):
        return np.ascontiguousarray(img)
    rows = _axis_matrix(h, th, interpolation)
    cols = _axis_matrix(w, tw, interpolation)
    out = np.einsum("ih,hwc->iwc", rows, img.astype(np.float64))
    return np.einsum("jw,iwc->ijc", cols, out).astype(np.float32)


def load_image(path, num_channels, image_size, interpolation, crop, pad):
    """One image file as float32 (H, W, C), converted to the colour mode as Keras does."""
    Image = _pil()
    with Image.open(path) as img:
        if num_channels == 1:
            if img.mode not in ("L", "I;16", "I"):
                img = img.convert("L")
        elif num_channels == 4:
            if img.mode != "RGBA":
                img = img.convert("RGBA")
        elif img.mode != "RGB":
            img = img.convert("RGB")
        arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return resize(arr, image_size, interpolation, crop, pad)


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, format="tf",
                                 verbose=True):
    """Keras's ``image_dataset_from_directory``: images in class subfolders (``labels=
    'inferred'``) as a ``utils.PyDataset`` of batches ``(images, labels)`` (only images when
    ``label_mode=None``), images float32 ``(batch, *image_size, channels)`` (channels first
    with ``data_format='channels_first'``); ``class_names`` and ``file_paths`` attributes.
    ``subset='both'`` returns ``[train, validation]``. ``format`` ('tf' or 'grain') is
    accepted as in Keras; both give the PyDataset. Interpolations: 'bilinear', 'nearest' and
    'bicubic', as ``keras.ops.image.resize`` computes them on the torch backend (TF's bicubic
    kernel differs slightly: a = -0.5 instead of -0.75); Keras's other ones raise
    NotImplementedError. Requires Pillow."""
    du.check_labels_args(labels, label_mode, class_names)
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}
    if color_mode not in channels:
        raise ValueError(f'`color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. '
                         f"Received: color_mode={color_mode}")
    num_channels = channels[color_mode]
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if not isinstance(image_size, (list, tuple)) or len(image_size) != 2 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in image_size):
        raise ValueError(f"Invalid `image_size` value. Expected a tuple of 2 integers. "
                         f"Received: image_size={image_size}")
    image_size = (int(image_size[0]), int(image_size[1]))
    if not isinstance(interpolation, str) or \
            interpolation.lower() not in _KERAS_INTERPOLATIONS:
        raise ValueError(f"Argument `interpolation` should be one of "
                         f"{_KERAS_INTERPOLATIONS}. Received: interpolation={interpolation}")
    interpolation = interpolation.lower()
    if interpolation not in _SUPPORTED_INTERPOLATIONS:
        raise NotImplementedError(f"interpolation={interpolation!r} is not implemented in "
                                  f"shenjing; use one of {_SUPPORTED_INTERPOLATIONS}.")
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: '
                         f"format={format}")
    if data_format is None:
        data_format = "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"The `data_format` argument must be one of {{'channels_first', "
                         f"'channels_last'}}. Received: data_format={data_format}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be "
                         "set to `True`.")
    batch_size = du.check_positive_int(batch_size, "batch_size", allow_none=True)
    seed = du.check_seed(seed)
    du.check_validation_split_arg(validation_split, subset, shuffle, seed)
    _pil()  # fail before indexing when Pillow is missing
    if seed is None:
        seed = int(np.random.randint(1e6))
    paths, labels, class_names = du.index_directory(
        directory, labels, formats=ALLOWLIST_FORMATS, class_names=class_names,
        shuffle=shuffle, seed=seed, follow_links=follow_links, verbose=verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f'When passing `label_mode="binary"`, there must be exactly 2 '
                         f"class_names. Received: class_names={class_names}")
    num_classes = len(class_names) if class_names else 0
    if label_mode is not None and labels is not None and len(labels) and \
            int(np.max(labels)) >= num_classes and label_mode != "int":
        raise ValueError(f"Labels go up to {int(np.max(labels))}, more than the "
                         f"{num_classes} classes.")
    out = []
    for part_paths, part_labels, training in du.subsets(paths, labels, validation_split,
                                                        subset, verbose):
        if not part_paths:
            which = {"both": "training " if training else "validation "}.get(subset, "")
            raise ValueError(f"No {which}images found in directory {directory}. Allowed "
                             f"formats: {ALLOWLIST_FORMATS}")
        ds = _image_dataset(part_paths, part_labels, label_mode, num_classes, num_channels,
                            image_size, interpolation, crop_to_aspect_ratio,
                            pad_to_aspect_ratio, data_format, batch_size,
                            shuffle and training, seed)
        ds.class_names = class_names
        ds.file_paths = list(part_paths)
        out.append(ds)
    return out if subset == "both" else out[0]


def _image_dataset(paths, labels, label_mode, num_classes, num_channels, image_size,
                   interpolation, crop, pad, data_format, batch_size, shuffle, seed):
    paths = list(paths)
    encoded = None if label_mode is None else du.encode_labels(labels, label_mode,
                                                               num_classes)

    def load(indices):
        images = np.stack([load_image(paths[i], num_channels, image_size, interpolation,
                                      crop, pad) for i in indices])
        if data_format == "channels_first":
            images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        if encoded is None:
            return images
        return images, encoded[indices]

    return du.SampleDataset(len(paths), load, batch_size, shuffle, seed)
