"""Reduction ops (sum, mean, max, min, prod, logsumexp, argmax, argmin, softmax, log_softmax)
run alone through ``_core._run_op``: outputs against NumPy over every rank and axis (negative
axes, axis 0 of a batched input giving an unbatched output, keepdims), input gradients against
PyTorch's autograd (ties split evenly like torch.amax, prod with zeros), finite differences,
determinism over thread counts, and ValueErrors for bad attributes and batch-axis misuse."""
import itertools
import json

import numpy as np
import pytest

from shenjing import _core

torch = pytest.importorskip("torch")

N = 3
# Full shapes; batched cases use them with N rows first.
SHAPES = [(5,), (4, 3), (3, 4, 5), (2, 3, 2, 4)]
REDUCE = ["sum", "mean", "max", "min", "prod", "logsumexp"]


def spec(op, **attrs):
    return json.dumps({"class_name": "Op", "config": {"name": "t", "op": op, **attrs}})


def run(op, xs, batched, dy=None, n=N, **attrs):
    xs = [np.array(x, np.float32, order="C") for x in xs]  # (ascontiguousarray makes 0-d 1-d)
    return _core._run_op(spec(op, **attrs), xs, list(batched), n,
                         None if dy is None else np.array(dy, np.float32, order="C"), None)


def axis_sets(rank):
    """None, every single axis (positive and negative), every pair, as attrs."""
    out = [None]
    for a in range(rank):
        out += [a, a - rank]
    out += [list(p) for p in itertools.combinations(range(rank), 2)]
    if rank >= 3:
        out.append([0, -1, 1])
    return out


def np_axes(axis, rank):
    if axis is None:
        return tuple(range(rank))
    if isinstance(axis, int):
        axis = [axis]
    return tuple(sorted(a % rank for a in axis))


def np_reduce(op, x, axes, keepdims):
    if op == "logsumexp":
        m = np.max(x, axis=axes, keepdims=True)
        r = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
        return r if keepdims else np.squeeze(r, axis=axes)
    f = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}[op]
    return f(x.astype(np.float64), axis=axes, keepdims=keepdims)


def torch_reduce(op, t, axes, keepdims):
    if op == "prod":  # torch.prod takes one dim: chain them from the last
        for a in sorted(axes, reverse=True):
            t = torch.prod(t, dim=a, keepdim=keepdims)
        return t
    f = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin,
         "logsumexp": torch.logsumexp}[op]
    return f(t, dim=axes, keepdim=keepdims)


def inputs_for(op, shape, rng):
    if op == "prod":  # magnitudes near 1: no overflow over 48 values
        return (rng.uniform(0.7, 1.3, shape) * rng.choice([-1, 1], shape)).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def torch_grad(fn, xs, dy):
    ts = [torch.tensor(x.astype(np.float64), requires_grad=True) for x in xs]
    y = fn(*ts)
    (y * torch.tensor(dy.astype(np.float64))).sum().backward()
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("op", REDUCE)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("batched", [False, True])
def test_reduce_forward_and_grad(op, shape, batched):
    rng = np.random.default_rng(hash((op, shape, batched)) % 2**32)
    full = ((N,) + shape) if batched else shape
    rank = len(full)
    x = inputs_for(op, full, rng)
    for axis in axis_sets(rank):
        for keepdims in (False, True):
            axes = np_axes(axis, rank)
            want = np_reduce(op, x, axes, keepdims)
            dy = rng.standard_normal(want.shape).astype(np.float32)
            y, dxs, _ = run(op, [x], [batched], dy, axis=axis, keepdims=keepdims)
            assert y.shape == want.shape, (axis, keepdims)
            np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5, err_msg=str((axis, keepdims)))
            _, (g,) = torch_grad(lambda t: torch_reduce(op, t, axes, keepdims), [x], dy)
            np.testing.assert_allclose(dxs[0], g, rtol=1e-4, atol=1e-5,
                                       err_msg=str((axis, keepdims)))


def test_batch_axis_reduction_is_unbatched():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    y, _, _ = run("sum", [x], [True], n=2, axis=0)
    assert y.shape == (3, 4)
    y, _, _ = run("mean", [x], [True], n=2, axis=[0, 2], keepdims=True)
    np.testing.assert_allclose(y, x.mean((0, 2), keepdims=True))
    y, _, _ = run("max", [x], [True], n=2, axis=None)
    assert y.shape == () and y == 23
    y, _, _ = run("sum", [x], [True], n=2, axis=[])  # nothing reduced: stays batched
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("op", ["max", "min"])
def test_ties_split_evenly(op):
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, (N, 4, 5)).astype(np.float32)
    for axis in [None, 0, 1, 2, [0, 2]]:
        axes = np_axes(axis, 3)
        dy = rng.standard_normal(np_reduce(op, x, axes, False).shape).astype(np.float32)
        _, (dx,), _ = run(op, [x], [True], dy, axis=axis)
        _, (g,) = torch_grad(lambda t: torch_reduce(op, t, axes, False), [x], dy)
        np.testing.assert_allclose(dx, g, rtol=1e-5, atol=1e-6)


def test_prod_with_zeros():
    x = np.array([[1.5, 0.0, 2.0, -1.0],    # one zero: only it gets a gradient
                  [0.0, 3.0, 0.0, 2.0],     # two zeros: no gradient at all
                  [1.0, 2.0, -0.5, 4.0]], np.float32)
    dy = np.array([0.5, -1.0, 2.0], np.float32)
    y, (dx,), _ = run("prod", [x], [False], dy, axis=1)
    np.testing.assert_allclose(y, np.prod(x, axis=1))
    _, (g,) = torch_grad(lambda t: torch.prod(t, dim=1), [x], dy)
    np.testing.assert_allclose(dx, g, rtol=1e-6)
    assert dx[0, 1] == pytest.approx(0.5 * 1.5 * 2.0 * -1.0) and np.all(dx[1] == 0)


def test_logsumexp_is_stable():
    x = np.array([[1000.0, 1000.0, -1000.0], [-np.inf, -np.inf, -np.inf],
                  [-80.0, -81.0, -np.inf]], np.float32)
    y, (dx,), _ = run("logsumexp", [x], [True], np.ones(3, np.float32), n=3, axis=1)
    np.testing.assert_allclose(y[[0, 2]], [1000 + np.log(2), -80 + np.log1p(np.exp(-1))],
                               rtol=1e-6)
    assert y[1] == -np.inf and np.all(dx[1] == 0)
    # exp(x - y) as torch: y near 1000 carries float32's 6e-5 spacing into the gradient
    np.testing.assert_allclose(dx[0], [0.5, 0.5, 0.0], atol=1e-4)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("batched", [False, True])
def test_arg_reductions(op, shape, batched):
    rng = np.random.default_rng(2)
    full = ((N,) + shape) if batched else shape
    x = rng.integers(-3, 4, full).astype(np.float32)  # many ties: the first one wins
    f = np.argmax if op == "argmax" else np.argmin
    for axis in range(-len(full), len(full)):
        for keepdims in (False, True):
            want = f(x, axis=axis, keepdims=keepdims).astype(np.float32)
            dy = np.ones(want.shape, np.float32)
            y, (dx,), _ = run(op, [x], [batched], dy, axis=axis, keepdims=keepdims)
            np.testing.assert_array_equal(y, want)
            assert np.all(dx == 0)


def test_argmax_nan_is_the_extreme():
    x = np.array([[1.0, np.nan, 3.0, np.nan]], np.float32)
    for op in ("argmax", "argmin"):
        y, _, _ = run(op, [x], [False], axis=1)
        assert y[0] == 1


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("batched", [False, True])
def test_softmax(op, shape, batched):
    rng = np.random.default_rng(3)
    full = ((N,) + shape) if batched else shape
    x = (rng.standard_normal(full) * 3).astype(np.float32)
    tf = torch.softmax if op == "softmax" else torch.log_softmax
    axes = list(range(1 if batched else 0, len(full)))
    axes += [a - len(full) for a in axes] + [None]
    for axis in axes:
        dim = -1 if axis is None else axis
        dy = rng.standard_normal(full).astype(np.float32)
        attrs = {} if axis is None else {"axis": axis}
        y, (dx,), _ = run(op, [x], [batched], dy, **attrs)
        want, (g,) = torch_grad(lambda t: tf(t, dim=dim), [x], dy)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dx, g, rtol=1e-4, atol=1e-5)


def test_softmax_is_stable():
    x = np.array([[1e4, 1e4 - 1, -1e4]], np.float32)
    y, _, _ = run("softmax", [x], [False])
    e = np.exp([0.0, -1.0])
    np.testing.assert_allclose(y[0], [e[0] / e.sum(), e[1] / e.sum(), 0.0], rtol=1e-6)
    y, _, _ = run("log_softmax", [x], [False])
    assert np.all(np.isfinite(y[0, :2]))


def finite_diff(op, x, batched, dy, eps=1e-2, **attrs):
    """Central differences of sum(y * dy) in float64 around x, with the float32 kernel."""
    g = np.zeros(x.size)
    flat = x.astype(np.float64).ravel()
    for i in range(x.size):
        vals = []
        for s in (1, -1):
            p = flat.copy()
            h = eps * max(1.0, abs(p[i]))
            p[i] += s * h
            y, _, _ = run(op, [p.reshape(x.shape)], [batched], **attrs)
            vals.append((y.astype(np.float64) * dy).sum())
        g[i] = (vals[0] - vals[1]) / (2 * h)
    return g.reshape(x.shape)


@pytest.mark.parametrize("op,attrs", [("logsumexp", {"axis": [0, 2]}), ("prod", {"axis": 1}),
                                      ("mean", {"axis": None}), ("softmax", {"axis": 1}),
                                      ("log_softmax", {"axis": -1})])
def test_finite_differences(op, attrs):
    rng = np.random.default_rng(4)
    x = rng.uniform(0.5, 1.5, (2, 3, 3)).astype(np.float32)
    y, _, _ = run(op, [x], [True], n=2, **attrs)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, (dx,), _ = run(op, [x], [True], dy, n=2, **attrs)
    np.testing.assert_allclose(dx, finite_diff(op, x, True, dy, n=2, **attrs), rtol=2e-2,
                               atol=2e-3)


@pytest.mark.parametrize("op,attrs", [("sum", {"axis": 0}), ("max", {"axis": [0, 2]}),
                                      ("logsumexp", {"axis": 0}), ("prod", {"axis": [0, 1]}),
                                      ("mean", {"axis": [1]}), ("min", {"axis": None}),
                                      ("softmax", {"axis": 1}), ("softmax", {"axis": -1}),
                                      ("log_softmax", {"axis": 2}), ("argmax", {"axis": 0})])
def test_large_deterministic_over_threads(op, attrs):
    """Sizes past the parallel threshold: right, and bit-identical for 1, 2 and 3 threads."""
    rng = np.random.default_rng(5)
    n = 256
    x = rng.uniform(0.99, 1.01, (n, 64, 9)).astype(np.float32)
    if op in ("max", "min"):
        x = np.round(x * 100) / 100  # ties
    threads = _core.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            y, _, _ = run(op, [x], [True], n=n, **attrs)
            dy = rng.standard_normal(y.shape).astype(np.float32) if not outs else outs[0][2]
            outs.append(run(op, [x], [True], dy, n=n, **attrs)[:2] + (dy,))
    finally:
        _core.set_num_threads(threads)
    for y, dx, _ in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(dx[0], outs[0][1][0])
    y, (dx,), dy = outs[0]
    if op == "argmax":
        np.testing.assert_array_equal(y, np.argmax(x, axis=0))
        return
    if op in ("softmax", "log_softmax"):
        tf = torch.softmax if op == "softmax" else torch.log_softmax
        want, (g,) = torch_grad(lambda t: tf(t, dim=attrs["axis"]), [x], dy)
    else:
        axes = np_axes(attrs["axis"], 3)
        want, (g,) = torch_grad(lambda t: torch_reduce(op, t, axes, False), [x], dy)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("op,attrs,shape,batched,match", [
    ("sum", {"axis": 3}, (3, 4), True, "out of bounds"),
    ("mean", {"axis": -4}, (3, 4), True, "out of bounds"),
    ("max", {"axis": [1, -1]}, (3, 4), False, "repeated"),
    ("sum", {"axis": "x"}, (3,), False, "axis"),
    ("sum", {"axis": 1.5}, (3,), False, "axis"),
    ("prod", {"keepdims": 1}, (3,), False, "keepdims"),
    ("argmax", {}, (3,), False, "axis"),
    ("argmin", {"axis": 2}, (3, 4), False, "out of bounds"),
    ("softmax", {"axis": 0}, (3, 4), True, "batch axis"),
    ("log_softmax", {"axis": -3}, (3, 4), True, "batch axis"),
    ("softmax", {"axis": [1]}, (3, 4), True, "axis"),
])
def test_bad_attrs(op, attrs, shape, batched, match):
    x = np.ones(((N,) + shape) if batched else shape, np.float32)
    with pytest.raises(ValueError, match=match):
        run(op, [x], [batched], **attrs)


@pytest.mark.parametrize("op", REDUCE + ["argmax", "softmax"])
def test_arity(op):
    x = np.ones((N, 3), np.float32)
    with pytest.raises(ValueError, match="takes 1 input"):
        run(op, [x, x], [True, True], axis=1)
