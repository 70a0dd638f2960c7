"""Merge layers in the core, run alone through the test hook ``_core._run_layer``: outputs and
input gradients against NumPy references written from Keras's rules and against PyTorch's
autograd, finite differences of the layer's own forward, Maximum/Minimum ties (TF's rule: the
first input holding the winning value takes the gradient), and every bad shape or count."""
import functools
import json

import numpy as np
import pytest

from shenjing import _core

torch = pytest.importorskip("torch")

ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]
# Per-sample shapes: ranks 1 to 4, Keras's broadcasting (size-1 axes, lower ranks aligned on the
# last axes), 1, 2 and 3 inputs.
SHAPES = [[(5,), (5,)], [(3, 4), (3, 4), (3, 4)], [(2, 3, 4), (4,)], [(2, 3, 4), (3, 1)],
          [(2, 1, 4, 5), (3, 1, 5), (1,)], [(1, 4), (3, 1)], [(2, 3, 4, 5), (2, 3, 4, 5)],
          [(4,), (2, 3, 4)], [(6,)], [(3, 1), (1,), (1, 4)]]
N = 3


def run(cls, shapes, xs, dy=None, training=True, **config):
    spec = json.dumps({"class_name": cls, "config": {"name": cls.lower(), **config}})
    return _core._run_layer(spec, [list(s) for s in shapes],
                            [np.ascontiguousarray(x, np.float32) for x in xs],
                            None if dy is None else np.ascontiguousarray(dy, np.float32),
                            training, None)


def inputs(shapes, seed=0, n=N):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, *s)).astype(np.float32) for s in shapes]


def aligned(xs):
    """The inputs with axes of size 1 after the batch axis up to the highest rank: what Keras's
    merges do (expand_dims(x, 1)) before broadcasting."""
    top = max(x.ndim for x in xs)
    return [x.reshape(x.shape[:1] + (1,) * (top - x.ndim) + x.shape[1:]) for x in xs]


def reduce_to(g, shape):
    """g summed over the axes an input of per-sample `shape` was broadcast along."""
    g = g.sum(axis=tuple(range(1, g.ndim - len(shape))))
    keep = tuple(i + 1 for i, d in enumerate(shape) if d == 1 and g.shape[i + 1] != 1)
    return g.sum(axis=keep, keepdims=True).reshape((g.shape[0],) + tuple(shape))


def numpy_elementwise(cls, xs, dy):
    """y and dxs in float64 from Keras's definitions (ties: the first winning input)."""
    xs = [x.astype(np.float64) for x in aligned(xs)]
    ops = {"Add": np.add, "Subtract": np.subtract, "Multiply": np.multiply,
           "Average": np.add, "Maximum": np.maximum, "Minimum": np.minimum}
    y = functools.reduce(ops[cls], xs)
    if cls == "Average":
        y = y / len(xs)
    full = [np.broadcast_to(x, y.shape) for x in xs]
    if cls in ("Maximum", "Minimum"):
        win = np.argmax(np.stack(full) == y, axis=0)  # first input equal to the result
        grads = [dy * (win == i) for i in range(len(xs))]
    elif cls == "Multiply":
        grads = [dy * functools.reduce(np.multiply, [f for j, f in enumerate(full) if j != i],
                                       np.ones_like(y)) for i in range(len(xs))]
    else:
        sign = [1.0, -1.0] if cls == "Subtract" else [1.0] * len(xs)
        scale = len(xs) if cls == "Average" else 1.0
        grads = [dy * s / scale for s in sign]
    return y, grads


def torch_elementwise(cls, xs, dy):
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    al = aligned(ts)
    ops = {"Add": torch.add, "Subtract": torch.sub, "Multiply": torch.mul,
           "Average": torch.add, "Maximum": torch.maximum, "Minimum": torch.minimum}
    y = functools.reduce(ops[cls], al)
    if cls == "Average":
        y = y / len(ts)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


def _cases():
    for cls in ELEMENTWISE:
        for shapes in SHAPES:
            if cls != "Subtract" or len(shapes) == 2:
                yield cls, shapes


@pytest.mark.parametrize("cls,shapes", list(_cases()))
def test_elementwise_matches_numpy_and_torch(cls, shapes):
    xs = inputs(shapes)
    y_ref, _ = numpy_elementwise(cls, xs, 0.0)
    dy = np.random.default_rng(1).normal(size=y_ref.shape).astype(np.float32)
    y, dxs, grads = run(cls, shapes, xs, dy)
    assert y.shape == y_ref.shape and grads == []
    _, g_ref = numpy_elementwise(cls, xs, dy.astype(np.float64))
    yt, g_torch = torch_elementwise(cls, xs, dy)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, yt, rtol=1e-5, atol=1e-6)
    assert len(dxs) == len(xs)
    for dx, x, g, gt in zip(dxs, xs, g_ref, g_torch):
        assert dx.shape == x.shape
        np.testing.assert_allclose(dx, reduce_to(g, x.shape[1:]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, gt, rtol=1e-5, atol=1e-5)


def finite_differences(f, xs, dy, h):
    """d(sum(f(xs) * dy)) / d xs[i], central differences, the loss summed in float64."""
    out = []
    for i, x in enumerate(xs):
        g = np.zeros(x.shape)
        for idx in np.ndindex(x.shape):
            vals = []
            for s in (h, -h):
                xp = [v.copy() for v in xs]
                xp[i][idx] += s
                vals.append(np.sum(f(xp).astype(np.float64) * dy))
            g[idx] = (vals[0] - vals[1]) / (2 * h)
        out.append(g)
    return out


@pytest.mark.parametrize("cls", ["Multiply", "Average", "Subtract", "Add"])
def test_elementwise_finite_differences(cls):
    shapes = [(2, 3), (3,)] if cls == "Subtract" else [(2, 3), (3,), (2, 1)]
    xs = inputs(shapes, seed=3, n=2)
    dy = np.random.default_rng(4).normal(size=(2, 2, 3))
    _, dxs, _ = run(cls, shapes, xs, dy)
    fd = finite_differences(lambda v: run(cls, shapes, v)[0], xs, dy, 1e-2)
    for dx, g in zip(dxs, fd):
        np.testing.assert_allclose(dx, g, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("cls", ["Maximum", "Minimum"])
def test_ties_go_to_the_first_winning_input(cls):
    # Three inputs equal everywhere but at one place; a broadcast input ties with the others.
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    xs = [x.copy(), x.copy(), x.copy()]
    better = 100.0 if cls == "Maximum" else -100.0
    xs[1][0, 2, 3] = better  # input 1 wins there alone
    dy = np.arange(1, 13, dtype=np.float32).reshape(1, 3, 4)
    y, dxs, _ = run(cls, [(3, 4)] * 3, xs, dy)
    expect0 = dy.copy()
    expect0[0, 2, 3] = 0
    np.testing.assert_array_equal(dxs[0], expect0)
    np.testing.assert_array_equal(dxs[1], np.where(np.arange(12).reshape(1, 3, 4) == 11, 12, 0))
    np.testing.assert_array_equal(dxs[2], 0)
    # A (4,) input tying with a (3, 4) one in its first row: the first input still wins there,
    # and the broadcast input gets the sum of the rows it wins.
    a = np.array([[[1, 5, 2, 0], [0, 0, 9, 9], [3, 3, 3, 3]]], np.float32)
    b = np.array([[1, 2, 3, 4]], np.float32)
    if cls == "Minimum":
        a, b = -a, -b
    y, dxs, _ = run(cls, [(3, 4), (4,)], [a, b], np.ones((1, 3, 4), np.float32))
    y_ref, g_ref = numpy_elementwise(cls, [a, b], np.ones((1, 3, 4)))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dxs[0], g_ref[0])
    np.testing.assert_array_equal(dxs[1], reduce_to(g_ref[1], (4,)))
    np.testing.assert_array_equal(dxs[1], [[1, 1, 1, 2]])  # ties in (0, 0) and (2, 2) go to a


@pytest.mark.parametrize("rank", [1, 2, 3, 4])
def test_concatenate_every_axis(rank):
    rng = np.random.default_rng(rank)
    base = [2, 3, 4, 2][:rank]
    for a in range(rank):
        shapes = []
        for extra in (1, 3, 2):
            s = list(base)
            s[a] = extra
            shapes.append(tuple(s))
        xs = [rng.normal(size=(N, *s)).astype(np.float32) for s in shapes]
        ref = np.concatenate(xs, axis=a + 1)
        dy = rng.normal(size=ref.shape).astype(np.float32)
        for axis in (a + 1, a - rank):  # Keras counts the batch axis; negative from the end
            y, dxs, _ = run("Concatenate", shapes, xs, dy, axis=axis)
            np.testing.assert_array_equal(y, ref)
            ts = [torch.tensor(x, requires_grad=True) for x in xs]
            torch.cat(ts, dim=a + 1).backward(torch.tensor(dy))
            splits = np.split(dy, np.cumsum([s[a] for s in shapes])[:-1], axis=a + 1)
            for dx, sp, t in zip(dxs, splits, ts):
                np.testing.assert_array_equal(dx, sp)
                np.testing.assert_array_equal(dx, t.grad.numpy())


def numpy_dot(xs, axes, normalize):
    x, y = (v.astype(np.float64) for v in xs)
    a, b = axes
    if normalize:
        x = x / np.sqrt(np.maximum((x * x).sum(axis=a + 1, keepdims=True), 1e-14))
        y = y / np.sqrt(np.maximum((y * y).sum(axis=b + 1, keepdims=True), 1e-14))
    out = np.stack([np.tensordot(x[i], y[i], axes=(a, b)) for i in range(len(x))])
    return out.reshape(len(x), -1) if out.ndim == 1 else out


def torch_dot(xs, axes, normalize, dy):
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in xs]
    x, y = ts
    a, b = axes
    if normalize:
        x = torch.nn.functional.normalize(x, dim=a + 1, eps=1e-7)
        y = torch.nn.functional.normalize(y, dim=b + 1, eps=1e-7)
    # As Keras's batch_dot: dot axis of x last, of y first, flattened, one bmm.
    xm = x.movedim(a + 1, -1).reshape(len(xs[0]), -1, x.shape[a + 1])
    ym = y.movedim(b + 1, 1).reshape(len(xs[0]), y.shape[b + 1], -1)
    out = torch.bmm(xm, ym).reshape(dy.shape)
    out.backward(torch.tensor(dy, dtype=torch.float64))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


# (per-sample shapes, Keras axes (batch counted), per-sample axes)
DOT_CASES = [([(5,), (5,)], 1, (0, 0)), ([(5,), (5,)], -1, (0, 0)),
             ([(3, 5), (5,)], [2, 1], (1, 0)), ([(5,), (3, 5)], [1, -1], (0, 1)),
             ([(3, 5), (4, 5)], 2, (1, 1)), ([(5, 3), (5, 4)], 1, (0, 0)),
             ([(3, 5), (5, 4)], [2, 1], (1, 0)), ([(5, 3), (4, 5)], [1, 2], (0, 1)),
             ([(2, 5, 3), (5, 4)], [2, 1], (1, 0)), ([(4, 5), (2, 3, 5)], [-1, -1], (1, 2))]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("shapes,axes,per_sample", DOT_CASES)
def test_dot_matches_numpy_and_torch(shapes, axes, per_sample, normalize):
    xs = inputs(shapes, seed=5)
    ref = numpy_dot(xs, per_sample, normalize)
    dy = np.random.default_rng(6).normal(size=ref.shape).astype(np.float32)
    y, dxs, _ = run("Dot", shapes, xs, dy, axes=axes, normalize=normalize)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    yt, gt = torch_dot(xs, per_sample, normalize, dy)
    np.testing.assert_allclose(y, yt, rtol=1e-5, atol=1e-5)
    for dx, g in zip(dxs, gt):
        np.testing.assert_allclose(dx, g, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
def test_dot_finite_differences(normalize):
    shapes, axes = [(2, 4), (4, 3)], [2, 1]
    xs = inputs(shapes, seed=7, n=2)
    dy = np.random.default_rng(8).normal(size=(2, 2, 3))
    _, dxs, _ = run("Dot", shapes, xs, dy, axes=axes, normalize=normalize)
    f = lambda v: run("Dot", shapes, v, axes=axes, normalize=normalize)[0]  # noqa: E731
    for dx, g in zip(dxs, finite_differences(f, xs, dy, 1e-3 if normalize else 1e-2)):
        np.testing.assert_allclose(dx, g, rtol=1e-2, atol=2e-3)


def test_dot_normalize_zero_vector_stays_finite():
    # Keras clamps |x|^2 at eps^2: a zero vector gives 0, and the gradient is dy * other / eps,
    # as PyTorch's normalize(eps=1e-7) gives.
    xs = [np.zeros((1, 3), np.float32), np.array([[1, 2, 2]], np.float32)]
    y, dxs, _ = run("Dot", [(3,), (3,)], xs, np.ones((1, 1), np.float32), axes=1, normalize=True)
    assert y.tolist() == [[0.0]]
    _, gt = torch_dot(xs, (0, 0), True, np.ones((1, 1)))
    np.testing.assert_allclose(dxs[0], gt[0], rtol=1e-5)
    np.testing.assert_array_equal(dxs[1], 0)


@pytest.mark.parametrize("cls,shapes,config,pattern", [
    ("Add", [(3,), (4,)], {}, r"'add' \(Add\): Inputs have incompatible shapes\. Received "
                              r"shapes \(None, 3\) and \(None, 4\).*\[\(None, 3\), \(None, 4\)\]"),
    ("Maximum", [(2, 3), (5, 2, 4)], {}, r"Maximum.*incompatible shapes"),
    ("Subtract", [(3,), (3,), (3,)], {}, r"`Subtract` layer should be called on exactly 2 inputs"),
    ("Subtract", [(3,)], {}, r"exactly 2 inputs.*\[\(None, 3\)\]"),
    ("Concatenate", [(2, 3), (3, 3)], {"axis": -1}, r"matching shapes except for the "
                                                    r"concatenation axis.*\(None, 2, 3\)"),
    ("Concatenate", [(2, 3), (3,)], {"axis": 1}, r"matching shapes"),
    ("Concatenate", [(2, 3), (2, 3)], {"axis": 3}, r"axis=3 is out of range"),
    ("Concatenate", [(2, 3), (2, 3)], {"axis": -4}, r"axis=-4 is out of range"),
    ("Dot", [(5,), (4,)], {"axes": 1}, r"Incompatible input shapes: axis values 5 \(at axis 1\) "
                                       r"!= 4 \(at axis 1\)\. Full input shapes: \(None, 5\), "
                                       r"\(None, 4\)"),
    ("Dot", [(5,), (5,), (5,)], {"axes": 1}, r"`Dot` layer should be called on a list of 2"),
    ("Dot", [(5,), (5,)], {"axes": 2}, r"axis 2 is out of range for input 0"),
    ("Dot", [(5,), (5,)], {"axes": -2}, r"batch_dot over axis 0"),
    ("Dot", [(), (5,)], {"axes": -1}, r"rank < 2"),
])
def test_bad_shapes_name_the_layer_and_the_shapes(cls, shapes, config, pattern):
    xs = [np.zeros((1, *s), np.float32) for s in shapes]
    with pytest.raises(ValueError, match=pattern):
        run(cls, shapes, xs, **config)


def test_a_merge_called_on_one_tensor_is_refused():
    for cls, config in [("Add", {}), ("Concatenate", {}), ("Dot", {"axes": 1})]:
        m = _core.Model([4])
        with pytest.raises(ValueError, match="list of"):
            m.add_layer(json.dumps({"class_name": cls, "config": config}))


def test_hook_checks_every_count_and_shape():
    spec = json.dumps({"class_name": "Add", "config": {}})
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="2 input shapes but 1 inputs"):
        _core._run_layer(spec, [[3], [3]], [a], None, True, None)
    with pytest.raises(ValueError, match=r"input 1 must have shape \(2, 3\)"):
        _core._run_layer(spec, [[3], [3]], [a, np.zeros((2, 4), np.float32)], None, True, None)
    with pytest.raises(ValueError, match=r"input 1 must have shape"):
        _core._run_layer(spec, [[3], [3]], [a, np.zeros((3, 3), np.float32)], None, True, None)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3\)"):
        _core._run_layer(spec, [[3], [3]], [a, a], np.zeros((2, 4), np.float32), True, None)
    with pytest.raises(TypeError, match="float32"):
        _core._run_layer(spec, [[3], [3]], [a, a.astype(np.float64)], None, True, None)
    with pytest.raises(ValueError, match="has 0 params, received 1"):
        _core._run_layer(spec, [[3], [3]], [a, a], None, True, [a])
    with pytest.raises(ValueError, match="input shapes"):
        _core._run_layer(spec, [], [], None, True, None)
    with pytest.raises(ValueError, match="bad input shape"):
        _core._run_layer(spec, [[3], [0]], [a, a], None, True, None)
    with pytest.raises(ValueError, match="batch axis"):
        _core._run_layer(spec, [[3], [3]], [np.zeros((), np.float32)] * 2, None, True, None)
    # Broadcast and concatenated outputs past the size caps, refused before any allocation.
    with pytest.raises(ValueError, match="too large"):
        _core._run_layer(spec, [[1 << 14, 1], [1, 1 << 15]], [a, a], None, True, None)
    big = json.dumps({"class_name": "Concatenate", "config": {"axis": -1}})
    with pytest.raises(ValueError, match=r"more than 2\^31 - 1"):
        _core._run_layer(big, [[1 << 28]] * 9, [a] * 9, None, True, None)


def test_hook_runs_one_input_layers_with_params():
    # The hook serves every layer: Dense with given weights against NumPy.
    rng = np.random.default_rng(9)
    x, k, b = (rng.normal(size=s).astype(np.float32) for s in [(4, 3), (3, 2), (2,)])
    spec = json.dumps({"class_name": "Dense", "config": {"units": 2}})
    dy = np.ones((4, 2), np.float32)
    y, dxs, grads = _core._run_layer(spec, [[3]], [x], dy, True, [k, b])
    np.testing.assert_allclose(y, x @ k + b, rtol=1e-5)
    np.testing.assert_allclose(dxs[0], dy @ k.T, rtol=1e-5)
    np.testing.assert_allclose(grads[0], x.T @ dy, rtol=1e-5)
    np.testing.assert_allclose(grads[1], dy.sum(0), rtol=1e-5)


def test_large_batches_run_in_parallel_like_small_ones():
    # Past the parallel threshold the blocks of samples must give what one block gives.
    shapes = [(64, 32), (32,), (64, 1)]
    xs = inputs(shapes, seed=10, n=40)
    dy = np.random.default_rng(11).normal(size=(40, 64, 32)).astype(np.float32)
    for cls in ["Multiply", "Maximum", "Average"]:
        y, dxs, _ = run(cls, shapes, xs, dy)
        parts = [run(cls, shapes, [x[i:i + 1] for x in xs], dy[i:i + 1]) for i in (0, 39)]
        for i, (yp, dp, _) in zip((0, 39), parts):
            np.testing.assert_array_equal(y[i:i + 1], yp)
            np.testing.assert_array_equal(dxs[0][i:i + 1], dp[0])
