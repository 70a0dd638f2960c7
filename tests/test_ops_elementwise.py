"""Elementwise primitive ops (cpp/src/ops/elementwise.cpp, binary.cpp) run alone through
_core._run_op: forward against NumPy, gradients against PyTorch autograd (and central finite
differences for a few), broadcasting with and without the batch axis, ties and special values,
determinism across thread counts, and the ValueErrors of bad arity, attributes and shapes."""
import json
import math
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from shenjing import _core  # noqa: E402

RTOL, ATOL = 2e-5, 2e-6


def spec(op, **attrs):
    return json.dumps({"class_name": "Op", "config": {"name": "t", "op": op, **attrs}})


def run(op, xs, batched, dy=None, **attrs):
    xs = [np.array(x, dtype=np.float32, order="C") for x in xs]  # keeps 0-d arrays 0-d
    n = next((x.shape[0] for x, b in zip(xs, batched) if b), 1)
    if dy is not None:
        dy = np.array(dy, dtype=np.float32, order="C")
    return _core._run_op(spec(op, **attrs), xs, list(batched), n, dy, None)


def torch_grads(fn, xs, dy):
    ts = [torch.tensor(x, dtype=torch.float32, requires_grad=True) for x in xs]
    y = fn(*ts)
    if y.requires_grad:  # else nothing reaches the inputs (detach, comparisons): zeros
        y.backward(torch.tensor(dy, dtype=torch.float32))
    return y.detach().numpy(), [
        t.grad.numpy() if t.grad is not None else np.zeros_like(x) for t, x in zip(ts, xs)]


def _erf(x):
    return np.vectorize(math.erf)(x.astype(np.float64))


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

# op -> (attrs, numpy forward, torch forward, input domain: "any", "pos", "gt-1", "away0")
UNARY = {
    "negative": ({}, np.negative, torch.neg, "any"),
    "abs": ({}, np.abs, torch.abs, "any"),
    "sign": ({}, np.sign, torch.sign, "any"),
    "square": ({}, np.square, torch.square, "any"),
    "sqrt": ({}, np.sqrt, torch.sqrt, "pos"),
    "rsqrt": ({}, lambda x: 1 / np.sqrt(x), torch.rsqrt, "pos"),
    "exp": ({}, np.exp, torch.exp, "any"),
    "log": ({}, np.log, torch.log, "pos"),
    "log1p": ({}, np.log1p, torch.log1p, "gt-1"),
    "expm1": ({}, np.expm1, torch.expm1, "any"),
    "reciprocal": ({}, np.reciprocal, torch.reciprocal, "away0"),
    "sin": ({}, np.sin, torch.sin, "any"),
    "cos": ({}, np.cos, torch.cos, "any"),
    "tanh": ({}, np.tanh, torch.tanh, "any"),
    "sigmoid": ({}, _sig, torch.sigmoid, "any"),
    "relu": ({}, lambda x: np.maximum(x, 0), torch.relu, "any"),
    "relu6": ({}, lambda x: np.clip(x, 0, 6), F.relu6, "wide"),
    "softplus": ({}, lambda x: np.logaddexp(0, x), F.softplus, "any"),
    "softsign": ({}, lambda x: x / (1 + np.abs(x)), F.softsign, "any"),
    "silu": ({}, lambda x: x * _sig(x), F.silu, "any"),
    "gelu": ({}, lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
             lambda t: F.gelu(t, approximate="tanh"), "any"),
    "gelu_exact": ({"approximate": False}, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
                   F.gelu, "any"),
    "elu": ({}, lambda x: np.where(x > 0, x, np.expm1(x)), F.elu, "any"),
    "elu_alpha": ({"alpha": 0.5}, lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)),
                  lambda t: F.elu(t, alpha=0.5), "any"),
    "selu": ({}, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x)), F.selu, "any"),
    "leaky_relu": ({}, lambda x: np.where(x > 0, x, 0.2 * x),
                   lambda t: F.leaky_relu(t, 0.2), "any"),
    "leaky_relu_slope": ({"negative_slope": 0.01}, lambda x: np.where(x > 0, x, 0.01 * x),
                         lambda t: F.leaky_relu(t, 0.01), "any"),
    "hard_sigmoid": ({}, lambda x: np.clip(x + 3, 0, 6) / 6, lambda t: F.relu6(t + 3) / 6,
                     "wide"),
    "floor": ({}, np.floor, torch.floor, "wide"),
    "ceil": ({}, np.ceil, torch.ceil, "wide"),
    "round": ({}, np.round, torch.round, "wide"),
    "logical_not": ({}, lambda x: (x == 0).astype(np.float32),
                    lambda t: (t == 0).float(), "ints"),
    "stop_gradient": ({}, lambda x: x, lambda t: t.detach(), "any"),
    "identity": ({}, lambda x: x, lambda t: t * 1, "any"),
    "clip": ({"min": -0.5, "max": 1.0}, lambda x: np.clip(x, -0.5, 1.0),
             lambda t: torch.clamp(t, -0.5, 1.0), "any"),
    "isnan": ({}, np.isnan, torch.isnan, "special"),
    "isinf": ({}, np.isinf, torch.isinf, "special"),
    "isfinite": ({}, np.isfinite, torch.isfinite, "special"),
}


def sample(domain, shape, rng):
    x = np.asarray(rng.standard_normal(shape))
    if domain == "pos":
        x = np.abs(x) + 0.1
    elif domain == "gt-1":
        x = np.abs(x) - 0.5
    elif domain == "away0":
        x = np.sign(x) * (np.abs(x) + 0.2)
    elif domain == "wide":
        x = x * 5  # across relu6's and hard_sigmoid's corners, and rounding ties below
    elif domain == "ints":
        x = np.asarray(rng.integers(-1, 2, shape))
    elif domain == "special":
        x = x.ravel()
        x[::3] = np.nan
        x[1::5] = np.inf
        x[2::7] = -np.inf
        x = x.reshape(shape)
    return x.astype(np.float32)


@pytest.mark.parametrize("key", sorted(UNARY))
@pytest.mark.parametrize("shape,batched", [((4, 3, 5), True), ((2, 3), False), ((), False)])
def test_unary(key, shape, batched):
    attrs, np_fn, t_fn, domain = UNARY[key]
    op = {"gelu_exact": "gelu", "elu_alpha": "elu", "leaky_relu_slope": "leaky_relu"}.get(key, key)
    rng = np.random.default_rng(zlib.crc32(f"{key}{shape}".encode()))
    x = sample(domain, shape, rng)
    if domain == "wide" and x.size > 4:
        x.reshape(-1)[:4] = [0.5, 1.5, -2.5, 2.5]  # ties: round half to even
    dy = rng.standard_normal(shape).astype(np.float32)
    y, dxs, _ = run(op, [x], [batched], dy, **attrs)
    assert y.shape == x.shape and dxs[0].shape == x.shape
    with np.errstate(all="ignore"):
        ref = np_fn(x.astype(np.float64))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, equal_nan=True)
    if domain == "special":
        np.testing.assert_array_equal(dxs[0], 0)
        return
    yt, (gt,) = torch_grads(lambda t: t_fn(t).float(), [x], dy)
    np.testing.assert_allclose(y, yt, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dxs[0], gt, rtol=RTOL, atol=ATOL)


def test_unary_corners_follow_torch():
    """relu'(0) = 0, abs'(0) = 0, relu6 and hard_sigmoid at their corners, clip's bounds count
    as inside, sqrt'(0) = inf."""
    x = np.array([0.0, -3.0, 3.0, 6.0, -0.5, 1.0, 2.0, -1.0], np.float32)
    dy = np.ones_like(x)
    cases = {
        "relu": ({}, torch.relu), "abs": ({}, torch.abs), "relu6": ({}, F.relu6),
        "hard_sigmoid": ({}, lambda t: F.relu6(t + 3) / 6),
        "clip": ({"min": -0.5, "max": 1.0}, lambda t: torch.clamp(t, -0.5, 1.0)),
        "leaky_relu": ({}, lambda t: F.leaky_relu(t, 0.2)),
        "elu": ({}, F.elu), "selu": ({}, F.selu),
    }
    for op, (attrs, fn) in cases.items():
        y, (dx,), _ = run(op, [x], [False], dy, **attrs)
        yt, (gt,) = torch_grads(fn, [x], dy)
        np.testing.assert_allclose(y, yt, rtol=RTOL, atol=ATOL, err_msg=op)
        np.testing.assert_allclose(dx, gt, rtol=RTOL, atol=ATOL, err_msg=op)
    _, (dx,), _ = run("sqrt", [np.array([0.0, 4.0], np.float32)], [False], np.ones(2))
    assert dx[0] == np.inf and dx[1] == 0.25
    y, _, _ = run("relu", [np.array([np.nan, -1], np.float32)], [False])
    assert np.isnan(y[0]) and y[1] == 0


def test_clip_min_above_max_gives_max():
    x = np.linspace(-2, 2, 9).astype(np.float32)
    y, (dx,), _ = run("clip", [x], [False], np.ones_like(x), min=1.0, max=0.0)
    np.testing.assert_array_equal(y, np.clip(x, 1.0, 0.0))
    np.testing.assert_array_equal(dx, 0)


def test_identity_is_a_passthrough_and_stop_gradient_is_not():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    dy = np.full((2, 3), 2.0, np.float32)
    y, (dx,), _ = run("identity", [x], [True], dy)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, dy)
    y, (dx,), _ = run("stop_gradient", [x], [True], dy)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, 0)


def _power_t(a, b):
    return torch.pow(a, b)


# op -> (numpy forward, torch forward or None (zero gradients), domain of a, domain of b)
BINARY = {
    "add": (np.add, torch.add, "any", "any"),
    "subtract": (np.subtract, torch.sub, "any", "any"),
    "multiply": (np.multiply, torch.mul, "any", "any"),
    "divide": (np.divide, torch.div, "any", "away0"),
    "power": (np.power, _power_t, "pos", "any"),
    "maximum": (np.maximum, torch.maximum, "any", "any"),
    "minimum": (np.minimum, torch.minimum, "any", "any"),
    "mod": (np.mod, torch.remainder, "wide", "away0"),
    "floor_divide": (np.floor_divide, None, "wide", "away0"),
    "equal": (np.equal, None, "ints", "ints"),
    "not_equal": (np.not_equal, None, "ints", "ints"),
    "greater": (np.greater, None, "ints", "ints"),
    "greater_equal": (np.greater_equal, None, "ints", "ints"),
    "less": (np.less, None, "ints", "ints"),
    "less_equal": (np.less_equal, None, "ints", "ints"),
    "logical_and": (np.logical_and, None, "ints", "ints"),
    "logical_or": (np.logical_or, None, "ints", "ints"),
    "logical_xor": (np.logical_xor, None, "ints", "ints"),
}

# (full shape, batched) pairs: same shape, batch + row, size-1 axes both sides, scalars,
# unbatched + unbatched (the output then has no batch axis).
COMBOS = [
    (((4, 3, 5), True), ((4, 3, 5), True)),
    (((4, 3, 5), True), ((5,), False)),
    (((5,), False), ((4, 3, 5), True)),
    (((4, 3, 5), True), ((3, 1), False)),
    (((4, 1, 5), True), ((1, 3, 1), False)),
    (((4, 3, 1), True), ((4, 1, 5), True)),
    (((4, 3, 5), True), ((), False)),
    (((), False), ((4, 3, 5), True)),
    (((3, 5), False), ((5,), False)),
    (((2, 1, 3), False), ((4, 3), False)),
    (((1,), False), ((1, 1), False)),
    (((7, 3), True), ((3,), False)),
]


def _reference(op, a, b):
    np_fn, t_fn = BINARY[op][:2]
    with np.errstate(all="ignore"):
        return np_fn(a, b).astype(np.float32)


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("combo", range(len(COMBOS)))
def test_binary(op, combo):
    (sa, ba), (sb, bb) = COMBOS[combo]
    np_fn, t_fn, da, db = BINARY[op]
    rng = np.random.default_rng(combo * 100 + sorted(BINARY).index(op))
    a, b = sample(da, sa, rng), sample(db, sb, rng)
    out_shape = np.broadcast_shapes(sa, sb)
    dy = rng.standard_normal(out_shape).astype(np.float32)
    y, (ga, gb), _ = run(op, [a, b], [ba, bb], dy)
    assert y.shape == out_shape and ga.shape == a.shape and gb.shape == b.shape
    np.testing.assert_allclose(y, _reference(op, a, b), rtol=1e-5, atol=1e-6)
    if t_fn is None:
        np.testing.assert_array_equal(ga, 0)
        np.testing.assert_array_equal(gb, 0)
        return
    yt, (ta, tb) = torch_grads(t_fn, [a, b], dy)
    np.testing.assert_allclose(y, yt, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ga, ta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gb, tb, rtol=1e-4, atol=1e-5)


def test_maximum_minimum_split_ties_like_torch():
    a = np.array([[1, 2, 3], [2, 2, 0]], np.float32)
    b = np.array([2, 2, 1], np.float32)
    dy = np.array([[1, 2, 4], [8, 16, 32]], np.float32)
    for op, fn in (("maximum", torch.maximum), ("minimum", torch.minimum)):
        y, (ga, gb), _ = run(op, [a, b], [True, False], dy)
        yt, (ta, tb) = torch_grads(fn, [a, b], dy)
        np.testing.assert_array_equal(y, yt)
        np.testing.assert_array_equal(ga, ta)
        np.testing.assert_array_equal(gb, tb)
    # NaN wins the forward, as NumPy; torch then gives both inputs the whole gradient.
    a, b = np.array([np.nan, 1.0], np.float32), np.array([1.0, np.nan], np.float32)
    for op, fn in (("maximum", torch.maximum), ("minimum", torch.minimum)):
        y, (ga, gb), _ = run(op, [a, b], [False, False], np.ones(2))
        assert np.isnan(y).all()
        _, (ta, tb) = torch_grads(fn, [a, b], np.ones(2, np.float32))
        np.testing.assert_array_equal(ga, ta)
        np.testing.assert_array_equal(gb, tb)


def test_power_special_values_follow_torch():
    a = np.array([0.0, 0.0, 0.0, 2.0, -2.0, -2.0, 1.5], np.float32)
    b = np.array([0.0, 2.0, 0.5, 0.0, 2.0, 0.5, -1.0], np.float32)
    dy = np.ones_like(a)
    y, (ga, gb), _ = run("power", [a, b], [False, False], dy)
    yt, (ta, tb) = torch_grads(torch.pow, [a, b], dy)
    np.testing.assert_allclose(y, yt, rtol=RTOL, equal_nan=True)
    np.testing.assert_allclose(ga, ta, rtol=RTOL, equal_nan=True)
    np.testing.assert_allclose(gb, tb, rtol=RTOL, equal_nan=True)


def test_mod_and_floor_divide_signs_and_zero_like_numpy():
    a = np.array([7, -7, 7, -7, 5.5, -5.5, 0, 0, 3, -3, np.inf, 1], np.float32)
    b = np.array([3, 3, -3, -3, 2, 2, 3, -3, 0, 0, 2, np.inf], np.float32)
    with np.errstate(all="ignore"):
        for op, fn in (("mod", np.mod), ("floor_divide", np.floor_divide)):
            y, _, _ = run(op, [a, b], [False, False])
            np.testing.assert_array_equal(y, fn(a, b), err_msg=op)
            np.testing.assert_array_equal(np.signbit(y), np.signbit(fn(a, b)), err_msg=op)


WHERE_COMBOS = [
    (((4, 3), True), ((4, 3), True), ((4, 3), True)),
    (((4, 3), True), ((3,), False), ((), False)),
    (((4, 1), True), ((1, 3), False), ((4, 3), True)),
    (((3,), False), ((4, 2, 3), True), ((2, 1), False)),
    (((2, 3), False), ((3,), False), ((2, 1), False)),
]


@pytest.mark.parametrize("combo", range(len(WHERE_COMBOS)))
def test_where(combo):
    (sc, bc), (s1, b1), (s2, b2) = WHERE_COMBOS[combo]
    rng = np.random.default_rng(combo)
    c = rng.integers(0, 2, sc).astype(np.float32)
    c.reshape(-1)[:1] = 0.5  # nonzero counts as true
    x1, x2 = sample("any", s1, rng), sample("any", s2, rng)
    out = np.broadcast_shapes(sc, s1, s2)
    dy = rng.standard_normal(out).astype(np.float32)
    y, (gc, g1, g2), _ = run("where", [c, x1, x2], [bc, b1, b2], dy)
    np.testing.assert_array_equal(y, np.where(c != 0, x1, x2))
    ct = torch.tensor(c != 0)
    _, (_, t1, t2) = torch_grads(lambda c_, a, b: torch.where(ct, a, b), [c, x1, x2], dy)
    np.testing.assert_array_equal(gc, 0)
    np.testing.assert_allclose(g1, t1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g2, t2, rtol=1e-5, atol=1e-6)


# Large enough for the parallel paths: the batch-axis sum of an unbatched operand in blocks
# (small operand), split over its columns (wide operand), a scalar operand, and batched operands
# summed along their runs or down their rows.
LARGE = [
    ("add", ((512, 256), True), ((256,), False)),
    ("multiply", ((256, 2048), True), ((2048,), False)),
    ("subtract", ((64, 32, 32, 3), True), ((3,), False)),
    ("divide", ((300, 400), True), ((), False)),
    ("maximum", ((64, 64, 32), True), ((64, 1, 32), True)),
    ("multiply", ((1, 64, 32), False), ((70, 64, 32), True)),
    ("multiply", ((4, 1000, 20), True), ((4, 1000, 1), True)),
    ("add", ((4, 500, 40), True), ((4, 1, 40), True)),
]


@pytest.mark.parametrize("case", range(len(LARGE)))
def test_large_broadcasts_match_torch_and_any_thread_count(case):
    op, (sa, ba), (sb, bb) = LARGE[case]
    rng = np.random.default_rng(case)
    a = sample("any", sa, rng)
    b = sample("away0" if op == "divide" else "any", sb, rng)
    dy = rng.standard_normal(np.broadcast_shapes(sa, sb)).astype(np.float32)
    old = _core.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            results.append(run(op, [a, b], [ba, bb], dy))
    finally:
        _core.set_num_threads(old)
    for y, dxs, _ in results[1:]:  # bit for bit whatever the thread count
        np.testing.assert_array_equal(y, results[0][0])
        for g, g0 in zip(dxs, results[0][1]):
            np.testing.assert_array_equal(g, g0)
    y, (ga, gb), _ = results[0]
    fn = {"add": torch.add, "multiply": torch.mul, "subtract": torch.sub, "divide": torch.div,
          "maximum": torch.maximum}[op]
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, b)]
    yt = fn(*ts)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    for g, t in ((ga, ts[0]), (gb, ts[1])):
        ref = t.grad.numpy()
        np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max() + 1e-6)


def _fd_check(op, xs, batched, attrs=None, eps=1e-2, inputs=None):
    """Central differences of L = sum(y * w) in float64 against the kernel's gradients."""
    attrs = attrs or {}
    rng = np.random.default_rng(7)
    xs = [x.astype(np.float32) for x in xs]
    y, _, _ = run(op, xs, batched, **attrs)
    w = rng.standard_normal(y.shape)
    _, dxs, _ = run(op, xs, batched, w.astype(np.float32), **attrs)
    for i, x in enumerate(xs):
        if inputs is not None and i not in inputs:
            continue
        fd = np.empty(x.size)
        for j in range(x.size):
            h = eps * max(1.0, abs(float(x.reshape(-1)[j])))
            hi, lo = [x.copy() for _ in range(2)]
            hi.reshape(-1)[j] += h
            lo.reshape(-1)[j] -= h
            step = float(hi.reshape(-1)[j]) - float(lo.reshape(-1)[j])
            yh = run(op, xs[:i] + [hi] + xs[i + 1:], batched, **attrs)[0].astype(np.float64)
            yl = run(op, xs[:i] + [lo] + xs[i + 1:], batched, **attrs)[0].astype(np.float64)
            fd[j] = ((yh - yl) * w).sum() / step
        np.testing.assert_allclose(dxs[i].reshape(-1), fd, rtol=2e-2, atol=2e-3,
                                   err_msg=f"{op} input {i}")


def test_finite_differences():
    rng = np.random.default_rng(3)
    pos = np.abs(rng.standard_normal((3, 4))) + 0.5
    _fd_check("multiply", [rng.standard_normal((3, 4)), rng.standard_normal((4,))],
              [True, False])
    _fd_check("divide", [rng.standard_normal((3, 1, 4)), pos.reshape(3, 4)], [True, False])
    _fd_check("power", [pos, rng.standard_normal((1, 4))], [True, False])
    _fd_check("mod", [np.array([[2.3, -1.7, 4.4]]), np.array([1.5, -2.1, 0.9])], [True, False])
    _fd_check("gelu", [rng.standard_normal((2, 3))], [True])
    _fd_check("softplus", [rng.standard_normal((2, 3))], [True])
    _fd_check("where", [np.array([[1, 0, 1]]), rng.standard_normal((2, 3)),
                        rng.standard_normal((3,))], [False, True, False], inputs=(1, 2))


def test_output_batchedness():
    a = np.ones((4, 3), np.float32)
    y, _, _ = run("add", [a, np.ones((1, 3), np.float32)], [True, False])
    assert y.shape == (4, 3)
    y, _, _ = run("add", [a, np.ones((1, 3), np.float32)], [False, False])
    assert y.shape == (4, 3)


@pytest.mark.parametrize("op,shapes,batched,match", [
    ("add", [(4, 3), (2, 4, 3)], [True, False], "move its batch axis"),
    ("add", [(4, 3), (4, 2, 3)], [True, True], "move its batch axis"),
    ("multiply", [(4, 3), (5, 3)], [True, False], "meets the batch axis with size 5"),
    ("add", [(4, 3), (4,)], [True, False], "incompatible shapes"),
    ("add", [(3, 2), (3,)], [False, False], "incompatible shapes"),
    ("where", [(4, 3), (4, 3)], [True, True], "takes 3 inputs"),
    ("add", [(4, 3), (3,), (3,)], [True, False, False], "takes 2 inputs"),
    ("relu", [(4, 3), (3,)], [True, False], "takes 1 input"),
])
def test_shape_errors(op, shapes, batched, match):
    xs = [np.ones(s, np.float32) for s in shapes]
    with pytest.raises(ValueError, match=match):
        run(op, xs, batched)


@pytest.mark.parametrize("op,attrs,match", [
    ("clip", {"min": 0.0}, "'max' must be a number"),
    ("clip", {"max": 1.0}, "'min' must be a number"),
    ("clip", {"min": "a", "max": 1.0}, "'min' must be a number"),
    ("gelu", {"approximate": "yes"}, "'approximate' must be true or false"),
    ("elu", {"alpha": [1]}, "'alpha' must be a number"),
    ("leaky_relu", {"negative_slope": 1e39}, "'negative_slope' must be a number"),
    ("no_such_op", {}, "unknown op"),
])
def test_attr_errors(op, attrs, match):
    with pytest.raises(ValueError, match=match):
        run(op, [np.ones((2, 3), np.float32)], [True], **attrs)
