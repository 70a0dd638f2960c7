"""A finite-difference check of every primitive op's backward (the kernels behind
shenjing.ops), with broadcasting against the batch axis and reductions over each axis:
dL/dx from backward against (L(x + h) - L(x - h)) / 2h for L = sum(y * r)."""
import json

import numpy as np
import pytest

from shenjing import _core

N = 3  # batch size
RNG = np.random.default_rng(7)


def spec(op, **attrs):
    return json.dumps({"class_name": "Op", "config": {"name": op, "op": op, **attrs}})


def away(shape, lo=0.3, hi=1.5, signed=True):
    """Values with |v| in [lo, hi], away from kinks at 0 and from each other: distinct
    magnitudes (hi - lo) / size apart, so max/min do not switch within a step."""
    size = int(np.prod(shape))
    v = (lo + (hi - lo) * RNG.permutation(size) / max(size - 1, 1)).reshape(shape)
    if signed:
        v *= RNG.choice([-1.0, 1.0], size=shape)
    return v.astype(np.float32)


def positive(shape):
    return away(shape, 0.5, 2.0, signed=False)


B = (N, 4)  # a batched tensor of 4 per sample
UNARY = {
    "negative": away, "abs": away, "square": away, "sqrt": positive, "rsqrt": positive,
    "exp": away, "log": positive, "log1p": positive, "expm1": away, "reciprocal": positive,
    "sin": away, "cos": away, "tanh": away, "sigmoid": away, "relu": away, "softplus": away,
    "softsign": away, "silu": away, "selu": away, "elu": away, "leaky_relu": away,
    "gelu": away, "hard_sigmoid": lambda s: away(s, 0.3, 2.5), "relu6": away,
}
ZERO_GRAD_UNARY = ["sign", "floor", "ceil", "round", "logical_not", "isnan", "isinf",
                   "isfinite", "stop_gradient"]
BINARY = {"add": (away, away), "subtract": (away, away), "multiply": (away, away),
          "divide": (away, positive), "power": (positive, away), "maximum": (away, away),
          "minimum": (away, away)}
ZERO_GRAD_BINARY = ["equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
                    "logical_and", "logical_or", "logical_xor", "floor_divide"]


def run(s, xs, batched, dy=None):
    return _core._run_op(s, [np.ascontiguousarray(x, np.float32) for x in xs], batched, N,
                         None if dy is None else np.asarray(dy, np.float32), None)


def check(s, xs, batched, h=1e-2, rtol=2e-2, atol=2e-3, samples=6, wrt=None):
    """Compares backward with central differences at `samples` coordinates of each input
    (of the inputs `wrt` lists, when given)."""
    y = run(s, xs, batched)[0]
    r = RNG.normal(size=y.shape).astype(np.float32)
    _, dxs, _ = run(s, xs, batched, r)
    for i, x in enumerate(xs):
        if wrt is not None and i not in wrt:
            continue
        flat = x.reshape(-1)
        for j in RNG.choice(flat.size, size=min(samples, flat.size), replace=False):
            loss = []
            for sign in (1, -1):
                xp = [a.copy() for a in xs]
                xp[i].reshape(-1)[j] += sign * h
                loss.append(float(np.sum(run(s, xp, batched)[0].astype(np.float64) * r)))
            fd = (loss[0] - loss[1]) / (2 * h)
            an = float(dxs[i].reshape(-1)[j])
            assert abs(fd - an) <= atol + rtol * abs(fd), (s, i, j, fd, an)


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(op):
    check(spec(op), [UNARY[op](B)], [True])


@pytest.mark.parametrize("op", ZERO_GRAD_UNARY)
def test_unary_without_gradient(op):
    _, dxs, _ = run(spec(op), [away(B)], [True], np.ones(B))
    assert not dxs[0].any()


def test_clip_and_gelu_exact():
    check(spec("clip", min=-0.9, max=0.9), [away(B, 0.3, 0.8)], [True])
    check(spec("gelu", approximate=False), [away(B)], [True])


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("layout", ["same", "bias", "both_unbatched", "column"])
def test_binary_broadcasting(op, layout):
    fa, fb = BINARY[op]
    shapes, batched = {"same": ((N, 4), (N, 4), [True, True]),
                       "bias": ((N, 4), (4,), [True, False]),
                       "both_unbatched": ((2, 4), (1, 4), [False, False]),
                       "column": ((N, 2, 4), (2, 1), [True, False])}[layout][:2], \
        {"same": [True, True], "bias": [True, False], "both_unbatched": [False, False],
         "column": [True, False]}[layout]
    check(spec(op), [fa(shapes[0]), fb(shapes[1])], batched)


@pytest.mark.parametrize("op", ZERO_GRAD_BINARY)
def test_binary_without_gradient(op):
    _, dxs, _ = run(spec(op), [away(B), away((4,))], [True, False], np.ones(B))
    assert not dxs[0].any() and not dxs[1].any()


def test_where_and_mod():
    cond = (RNG.random(B) > 0.5).astype(np.float32)
    check(spec("where"), [cond, away(B), away((4,))], [True, True, False])
    check(spec("mod"), [away(B, 0.2, 0.9, signed=False), np.full((4,), 2.0, np.float32)],
          [True, False])


X3 = (N, 2, 3)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "prod", "logsumexp"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, [0, 2], [1, 2]])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_over_each_axis(op, axis, keepdims):
    check(spec(op, axis=axis, keepdims=keepdims), [away(X3)], [True])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmaxes(op, axis):
    check(spec(op, axis=axis), [away(X3)], [True])


def test_argmax_has_no_gradient():
    _, dxs, _ = run(spec("argmax", axis=-1), [away(X3)], [True], np.ones((N, 2)))
    assert not dxs[0].any()


@pytest.mark.parametrize("shapes,batched", [
    (((N, 4), (4, 5)), [True, False]),          # x @ w
    (((N, 2, 4), (4, 5)), [True, False]),       # a sequence @ w
    (((N, 2, 4), (N, 4, 3)), [True, True]),     # batched @ batched
    (((3, 4), (N, 2, 4, 5)), [False, True]),    # w broadcast over a batch of matrices
    (((N, 4), (4,)), [True, False]),            # matrix @ vector
])
def test_matmul(shapes, batched):
    check(spec("matmul"), [away(s) for s in shapes], batched)


@pytest.mark.parametrize("s,shape,batched", [
    (spec("reshape", shape=[3, 2]), X3, True),
    (spec("transpose", axes=[0, 2, 1]), X3, True),
    (spec("transpose", axes=None), (2, 3), False),
    (spec("slice", begin=[0, 1], end=[2, 3], step=[1, 1]), X3, True),
    (spec("repeat", repeats=2, axis=1), X3, True),
    (spec("broadcast_to", shape=[-1, 4, 2, 3]), (N, 1, 2, 3), True),
])
def test_shape_ops(s, shape, batched):
    check(s, [away(shape)], [batched])


def test_concatenate_take_and_one_hot():
    check(spec("concatenate", axis=-1), [away(X3), away((N, 2, 2))], [True, True])
    table = away((5, 3))
    ids = RNG.integers(0, 5, size=(N, 4)).astype(np.float32)
    _, dxs, _ = run(spec("take", axis=0), [table, ids], [False, True], np.ones((N, 4, 3)))
    assert not dxs[1].any()
    check(spec("take", axis=0), [table, ids], [False, True], wrt=[0])
    _, dxs, _ = run(spec("one_hot", num_classes=4), [ids], [True], np.ones((N, 4, 4)))
    assert not dxs[0].any()


def test_variable_gradient_is_dy():
    w = away((2, 3))
    s = spec("variable", shape=[2, 3], weight="kernel")
    dy = RNG.normal(size=(2, 3)).astype(np.float32)
    y, _, grads = _core._run_op(s, [], [], N, dy, [w])
    np.testing.assert_array_equal(y, w)
    np.testing.assert_array_equal(grads[0], dy)


@pytest.mark.parametrize("attrs,x,k", [
    ({"padding": "same"}, (N, 4, 5, 2), (3, 3, 2, 3)),
    ({"padding": "valid", "strides": 2}, (N, 5, 5, 2), (3, 3, 2, 2)),
    ({"padding": "valid", "dilation_rate": 2}, (N, 7, 3), (2, 3, 2)),  # 1-D
])
def test_conv_with_kernel_input(attrs, x, k):
    check(spec("conv", **attrs), [away(x), away(k)], [True, False])
