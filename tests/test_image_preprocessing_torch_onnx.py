"""Image preprocessing layers against PyTorch and in ONNX.

PyTorch: Resizing's bilinear is F.interpolate(align_corners=False, antialias=False) and its
nearest is 'nearest-exact' (Keras's floor((o + 0.5) * in / out)), outputs and input gradients,
up and down along either axis; CenterCrop is slicing (or crop + bilinear when the image is
smaller than the target); the affine kernel of RandomRotation / RandomZoom /
RandomTranslation (fixed transforms: degenerate factor ranges) is grid_sample with
align_corners=True where their fill modes agree ('constant' 0 = 'zeros', 'nearest' =
'border'), outputs and input gradients.
ONNX: the exported graph (Slice / Pad / Resize; the random layers as Identity) gives what
predict gives.
"""
import json
import math

import numpy as np
import pytest

import shenjing
from shenjing import _core, layers as L

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _run(layer, x, dy):
    spec = json.dumps({"class_name": type(layer).__name__, "config": layer._core_config()})
    x = np.ascontiguousarray(x, np.float32)
    y, dxs, _ = _core._run_layer(spec, [x.shape[1:]], [x], np.ascontiguousarray(dy, np.float32),
                                 True, None)
    return y, dxs[0]


def _torch_check(layer, x, fn, atol=2e-5):
    """Our y and dL/dx (L = <dy, y>) against fn on NCHW float64 tensors."""
    rng = np.random.default_rng(0)
    xt = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_(True)
    want = fn(xt).permute(0, 2, 3, 1)
    dy = rng.normal(size=tuple(want.shape)).astype(np.float32)
    (want * torch.tensor(dy, dtype=torch.float64)).sum().backward()
    y, dx = _run(layer, x, dy)
    np.testing.assert_allclose(y, want.detach().numpy(), atol=atol)
    np.testing.assert_allclose(dx, xt.grad.permute(0, 2, 3, 1).numpy(), atol=atol * 10)


SIZES = [((4, 5), (6, 7)), ((7, 9), (3, 4)), ((5, 6), (5, 13)), ((8, 3), (2, 3)),
         ((6, 6), (6, 6)), ((1, 4), (3, 2)), ((9, 7), (4, 11))]


@pytest.mark.parametrize("src,dst", SIZES)
def test_resizing_bilinear_matches_torch_interpolate(src, dst):
    x = np.random.default_rng(1).normal(size=(3, *src, 2)).astype(np.float32)
    _torch_check(L.Resizing(*dst), x, lambda t: F.interpolate(
        t, size=dst, mode="bilinear", align_corners=False, antialias=False))


@pytest.mark.parametrize("src,dst", SIZES)
def test_resizing_nearest_matches_torch_nearest_exact(src, dst):
    x = np.random.default_rng(2).normal(size=(2, *src, 3)).astype(np.float32)
    _torch_check(L.Resizing(*dst, interpolation="nearest"), x,
                 lambda t: F.interpolate(t, size=dst, mode="nearest-exact"))


@pytest.mark.parametrize("src,dst", [((7, 9), (3, 4)), ((6, 6), (6, 6)), ((5, 8), (5, 1)),
                                     ((4, 5), (6, 3)), ((4, 5), (2, 9))])
def test_center_crop_matches_torch(src, dst):
    H, W = src
    h, w = dst
    if H >= h and W >= w:
        top, left = (H - h) // 2, (W - w) // 2
        fn = lambda t: t[:, :, top:top + h, left:left + w]  # noqa: E731
    else:  # Keras's smart_resize: the largest centred window of the target's aspect, resized
        ch = max(min(H, int(W * h / w)), 1)
        cw = max(min(W, int(H * w / h)), 1)
        top, left = int((H - ch) / 2), int((W - cw) / 2)
        fn = lambda t: F.interpolate(t[:, :, top:top + ch, left:left + cw], size=dst,  # noqa
                                     mode="bilinear", align_corners=False)
    x = np.random.default_rng(3).normal(size=(2, H, W, 2)).astype(np.float32)
    _torch_check(L.CenterCrop(h, w), x, fn)


def _grid(matrix, H, W, n):
    """grid_sample's grid (align_corners=True) for Keras's output -> input map."""
    a0, a1, a2, b0, b1, b2 = matrix
    yy, xx = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64),
                         indexing="ij")
    xi = a0 * xx + a1 * yy + a2
    yi = b0 * xx + b1 * yy + b2
    g = np.stack([2 * xi / (W - 1) - 1, 2 * yi / (H - 1) - 1], axis=-1)
    return torch.tensor(np.repeat(g[None], n, 0))


def _rotation_matrix(turns, H, W):
    """Keras's _compute_affine_matrix for a rotation about the centre (float32 as Keras)."""
    rad = np.float32(np.float32(turns * 360.0) * np.float32(math.pi / 180.0))
    c, s = np.cos(rad), np.sin(rad)
    cx, cy = np.float32(0.5 * (W - 1)), np.float32(0.5 * (H - 1))
    return [c, -s, cx - cx * c + cy * s, s, c, cy - cx * s - cy * c]


@pytest.mark.parametrize("kind", ["rotation", "zoom", "translation"])
@pytest.mark.parametrize("fill,pad", [("constant", "zeros"), ("nearest", "border")])
@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_affine_kernel_matches_torch_grid_sample(kind, fill, pad, interp):
    H, W, n = 7, 9, 2
    x = np.random.default_rng(4).normal(size=(n, H, W, 3)).astype(np.float32)
    kw = dict(fill_mode=fill, interpolation=interp)
    if kind == "rotation":
        layer, m = L.RandomRotation((0.061, 0.061), **kw), _rotation_matrix(0.061, H, W)
    elif kind == "zoom":
        zy, zx = np.float32(1.37), np.float32(1 - 0.29)
        layer = L.RandomZoom((0.37, 0.37), (-0.29, -0.29), **kw)
        m = [zx, 0, (W - 1) / 2 * (1 - zx), 0, zy, (H - 1) / 2 * (1 - zy)]
    else:
        layer = L.RandomTranslation((0.23, 0.23), (-0.31, -0.31), **kw)
        m = [1, 0, np.float32(0.31) * W, 0, 1, -np.float32(0.23) * H]
    grid = _grid(m, H, W, n)
    mode = "bilinear" if interp == "bilinear" else "nearest"
    _torch_check(layer, x, lambda t: F.grid_sample(t, grid, mode=mode, padding_mode=pad,
                                                   align_corners=True), atol=1e-4)


# ---- ONNX ---------------------------------------------------------------------------------------

onnx_cases = [
    ((9, 10, 2), [L.Resizing(5, 6)]),
    ((9, 10, 2), [L.Resizing(12, 4, interpolation="nearest")]),
    ((9, 10, 2), [L.Resizing(4, 4, crop_to_aspect_ratio=True)]),
    ((9, 10, 2), [L.Resizing(6, 3, pad_to_aspect_ratio=True, fill_value=0.5)]),
    ((9, 10, 2), [L.Resizing(3, 8, pad_to_aspect_ratio=True, fill_value=-1.0,
                             interpolation="nearest")]),
    ((9, 10, 2), [L.CenterCrop(4, 7)]),
    ((9, 10, 2), [L.CenterCrop(9, 10)]),
    ((9, 10, 2), [L.CenterCrop(12, 5)]),
    ((8, 8, 3), [L.RandomFlip(), L.RandomRotation(0.2), L.RandomZoom(0.1),
                 L.RandomTranslation(0.1, 0.1), L.RandomContrast(0.3), L.Conv2D(2, 3),
                 L.Resizing(3, 3), L.Flatten(), L.Dense(2)]),
]


@pytest.mark.parametrize("case", range(len(onnx_cases)))
def test_onnx_export_matches_predict(tmp_path, case):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    shape, stack = onnx_cases[case]
    model = shenjing.Sequential([L.Input(shape), *stack])
    x = np.random.default_rng(5).uniform(-3, 3, (4, *shape)).astype(np.float32)
    path = str(tmp_path / "m.onnx")
    model.export_onnx(path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, rtol=1e-5)


def test_onnx_export_of_an_unknown_image_size_is_refused(tmp_path):
    pytest.importorskip("onnx")
    inp = L.Input((None, None, 3))
    model = shenjing.Model(inp, L.Resizing(4, 4)(inp))
    with pytest.raises(ValueError, match="height and width"):
        model.export_onnx(str(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()
