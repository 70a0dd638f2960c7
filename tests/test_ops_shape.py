"""Shape and index ops (reshape, transpose, slice, broadcast_to, repeat, concatenate, take,
one_hot) run alone through ``_core._run_op``: outputs against NumPy with and without the batch
axis, input gradients against PyTorch's autograd (take's scatter-add with repeated and clipped
indices, broadcast_to's sums), determinism over thread counts, and ValueErrors for bad attributes
and batch-axis misuse."""
import itertools
import json

import numpy as np
import pytest

from shenjing import _core

torch = pytest.importorskip("torch")

N = 3


def spec(op, **attrs):
    return json.dumps({"class_name": "Op", "config": {"name": "t", "op": op, **attrs}})


def run(op, xs, batched, dy=None, n=N, **attrs):
    xs = [np.array(x, np.float32, order="C") for x in xs]
    return _core._run_op(spec(op, **attrs), xs, list(batched), n,
                         None if dy is None else np.array(dy, np.float32, order="C"), None)


def check(op, xs, batched, want, torch_fn, n=N, grads=None, **attrs):
    """Forward equals want (NumPy); input gradients equal torch_fn's under autograd."""
    rng = np.random.default_rng(0)
    want = np.asarray(want)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    y, dxs, _ = run(op, xs, batched, dy, n=n, **attrs)
    assert y.shape == want.shape, (y.shape, want.shape)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    grads = range(len(xs)) if grads is None else grads
    ts = [torch.tensor(np.asarray(x, np.float64), requires_grad=i in grads)
          for i, x in enumerate(xs)]
    out = torch_fn(*ts)
    (out * torch.tensor(dy.astype(np.float64))).sum().backward()
    for i in range(len(xs)):
        g = ts[i].grad.numpy() if i in grads else np.zeros(np.shape(xs[i]))
        np.testing.assert_allclose(dxs[i], g, rtol=1e-5, atol=1e-5, err_msg=f"input {i}")
    return y


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("shape,target", [((2, 3, 4), [6, 4]), ((2, 3, 4), [-1]),
                                          ((2, 3, 4), [4, -1, 1, 2]), ((6,), [2, 1, 3]),
                                          ((1,), []), ((4, 2), [2, 2, -1])])
def test_reshape(batched, shape, target):
    x = rand(*(((N,) + shape) if batched else shape))
    full = ([N] + target) if batched else target
    want = x.reshape(full)
    check("reshape", [x], [batched], want, lambda t: t.reshape(full), shape=target)


def test_reshape_is_passthrough_shape():
    x = rand(N, 2, 6)
    y, _, _ = run("reshape", [x], [True], shape=[3, 4])
    assert y.shape == (N, 3, 4)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("rank", [1, 2, 3, 4])
def test_transpose(batched, rank):
    shape = (2, 3, 4, 5)[:rank]
    x = rand(*shape)
    if batched:
        x = rand(N, *shape[:-1]) if rank > 1 else rand(N)
    r = x.ndim
    perms = [p for p in itertools.permutations(range(r)) if not batched or p[0] == 0]
    for p in perms:
        check("transpose", [x], [batched], np.transpose(x, p), lambda t: t.permute(*p),
              axes=list(p))
        neg = [a - r for a in p]
        check("transpose", [x], [batched], np.transpose(x, p), lambda t: t.permute(*p),
              axes=neg)
    if not batched or r == 1:
        check("transpose", [x], [batched], x.T, lambda t: t.permute(*reversed(range(r))))


def torch_slice(begin, end, step, batched):
    def f(t):
        idx = [slice(None)] if batched else []
        idx += [slice(b, e, s) for b, e, s in zip(begin, end, step)]
        return t[tuple(idx)]
    return f


@pytest.mark.parametrize("batched", [False, True])
def test_slice(batched):
    rng = np.random.default_rng(1)
    for shape in [(7,), (5, 6), (4, 5, 6)]:
        x = rand(*(((N,) + shape) if batched else shape))
        for _ in range(12):
            begin = [int(rng.integers(0, d)) for d in shape]
            end = [int(rng.integers(b + 1, d + 1)) for b, d in zip(begin, shape)]
            step = [int(rng.integers(1, 4)) for _ in shape]
            sl = ((slice(None),) if batched else ()) + tuple(
                slice(b, e, s) for b, e, s in zip(begin, end, step))
            check("slice", [x], [batched], x[sl], torch_slice(begin, end, step, batched),
                  begin=begin, end=end, step=step)
    x = rand(N, 4, 5)  # step defaults to 1s
    check("slice", [x], [True], x[:, 1:3, 0:5], torch_slice([1, 0], [3, 5], [1, 1], True),
          begin=[1, 0], end=[3, 5])


@pytest.mark.parametrize("shape,batched,target", [
    ((3,), False, [4, 3]), ((1, 3), False, [2, 4, 3]), ((4, 1), False, [4, 5]),
    ((1,), False, [2, 3]), ((2, 3), False, [2, 3]),
    ((3,), True, [-1, 3]), ((1, 3), True, [-1, 4, 3]), ((4, 1, 1), True, [-1, 4, 2, 5]),
])
def test_broadcast_to(shape, batched, target):
    x = rand(*(((N,) + shape) if batched else shape))
    full = [N if d == -1 else d for d in target]
    check("broadcast_to", [x], [batched], np.broadcast_to(x, full),
          lambda t: t.broadcast_to(full), shape=target)


@pytest.mark.parametrize("shape,batched,axis,repeats", [
    ((4,), False, 0, 3), ((2, 3), False, 1, 2), ((2, 3), False, -2, 4), ((3, 2), True, 1, 2),
    ((3, 2), True, -1, 3), ((2, 3, 4), True, 2, 1), ((2,), True, 1, 5),
])
def test_repeat(shape, batched, axis, repeats):
    x = rand(*(((N,) + shape) if batched else shape))
    check("repeat", [x], [batched], np.repeat(x, repeats, axis=axis),
          lambda t: torch.repeat_interleave(t, repeats, dim=axis), repeats=repeats, axis=axis)


@pytest.mark.parametrize("batched", [False, True])
def test_concatenate(batched):
    for shapes, axis in [([(2, 3), (2, 4)], -1), ([(2, 3), (1, 3), (4, 3)], -2),
                         ([(2, 3, 4)], 1), ([(2, 3, 4), (2, 1, 4)], -2),
                         ([(2, 3, 4), (2, 3, 1), (2, 3, 2)], 3), ([(5,), (2,)], -1)]:
        if not batched:
            shapes = [(N,) + s for s in shapes]  # the same data, unbatched: any axis goes
        xs = [rand(*(((N,) + s) if batched else s), seed=i) for i, s in enumerate(shapes)]
        check("concatenate", xs, [batched] * len(xs), np.concatenate(xs, axis=axis),
              lambda *ts: torch.cat(ts, dim=axis), axis=axis)
    if not batched:
        xs = [rand(2, 3), rand(4, 3, seed=1)]
        check("concatenate", xs, [False, False], np.concatenate(xs, 0),
              lambda *ts: torch.cat(ts, 0), axis=0)


def clip_index(ids, dim):
    k = ids.astype(np.int64)
    k = np.where(k < 0, k + dim, k)
    return np.clip(k, 0, dim - 1)


@pytest.mark.parametrize("xshape,bx,ishape,bi,axis", [
    ((10, 4), False, (5,), True, 0),          # embedding: (V, D), ids (n, T) -> (n, T, D)
    ((10, 4), False, (), True, 0),            # ids (n,) -> (n, D)
    ((10,), False, (2, 3), True, 0),
    ((10, 2, 3), False, (4,), True, -3),
    ((6, 5), True, (4,), False, 1),           # x batched, indices unbatched, axis >= 1
    ((6, 5), True, (2, 2), False, 2),
    ((6, 5), True, (3,), False, -1),
    ((6, 5), True, (), False, 1),
    ((7, 5), False, (2, 3), False, 0),        # both unbatched
    ((7, 5), False, (4,), False, 1),
    ((7,), False, (), False, 0),
])
def test_take(xshape, bx, ishape, bi, axis):
    rng = np.random.default_rng(3)
    x = rand(*(((N,) + xshape) if bx else xshape))
    dim = x.shape[axis]
    ids_shape = ((N,) + ishape) if bi else ishape
    # repeats, negatives (counted from the end once) and out-of-range ones (clipped)
    ids = rng.integers(-dim - 3, dim + 3, ids_shape).astype(np.float32)
    k = clip_index(ids, dim)
    want = np.take(x, k, axis=axis)
    tk = torch.tensor(k)
    check("take", [x, ids], [bx, bi], want,
          lambda t, _: torch.index_select(t, axis % t.dim(), tk.reshape(-1)).reshape(want.shape),
          grads=[0], axis=axis)


def test_take_large_deterministic():
    rng = np.random.default_rng(4)
    w = rand(50, 64)
    ids = rng.integers(0, 50, (128, 40)).astype(np.float32)  # many repeats
    dy = rand(128, 40, 64, seed=2)
    threads = _core.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            outs.append(run("take", [w, ids], [False, True], dy, n=128, axis=0))
    finally:
        _core.set_num_threads(threads)
    for y, g, _ in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(g[0], outs[0][1][0])
    want = np.zeros((50, 64), np.float64)
    np.add.at(want, ids.astype(np.int64).ravel(), dy.reshape(-1, 64))
    np.testing.assert_allclose(outs[0][1][0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,batched,axis", [((4,), False, -1), ((4,), False, 0),
                                                ((2, 3), False, 1), ((5,), True, -1),
                                                ((2, 3), True, 1), ((2, 3), True, 2),
                                                ((), True, -1)])
def test_one_hot(shape, batched, axis):
    rng = np.random.default_rng(5)
    full = ((N,) + shape) if batched else shape
    x = rng.integers(-2, 7, full).astype(np.float32)
    x.flat[0] = 2.5  # not an integer: a row of zeros
    C = 5
    eye = (x[..., None] == np.arange(C)).astype(np.float32)
    want = np.moveaxis(eye, -1, axis)
    y, (dx,), _ = run("one_hot", [x], [batched], np.ones(want.shape), num_classes=C, axis=axis)
    np.testing.assert_array_equal(y, want)
    assert np.all(dx == 0)


BAD = [
    ("reshape", {"shape": [5]}, [(3, 4)], [True], "cannot reshape"),
    ("reshape", {"shape": [-1, -1]}, [(4,)], [False], "cannot reshape"),
    ("reshape", {"shape": [0, 4]}, [(4,)], [False], "cannot reshape"),
    ("reshape", {"shape": 4}, [(4,)], [False], "shape"),
    ("transpose", {"axes": [1, 0, 2]}, [(3, 4)], [True], "batch axis"),
    ("transpose", {}, [(3, 4)], [True], "batch axis"),
    ("transpose", {"axes": [0, 0]}, [(3, 4)], [False], "repeat"),
    ("transpose", {"axes": [0]}, [(3, 4)], [False], "each of the 2 axes"),
    ("transpose", {"axes": [0, 2]}, [(3, 4)], [False], "out of bounds"),
    ("slice", {"begin": [0], "end": [2]}, [(3, 4)], [True], "one entry per axis"),
    ("slice", {"begin": [2], "end": [2]}, [(3,)], [False], "empty"),
    ("slice", {"begin": [0], "end": [4]}, [(3,)], [False], "end <= 3"),
    ("slice", {"begin": [-1], "end": [2]}, [(3,)], [False], "begin"),
    ("slice", {"begin": [0], "end": [2], "step": [0]}, [(3,)], [False], "step"),
    ("broadcast_to", {"shape": [2, 3]}, [(3,)], [True], "-1 for the batch axis"),
    ("broadcast_to", {"shape": [-1, 4]}, [(3,)], [True], "not 1"),
    ("broadcast_to", {"shape": [-1, 3]}, [(3,)], [False], "-1 only"),
    ("broadcast_to", {"shape": [3]}, [(2, 3)], [False], "fewer axes"),
    ("broadcast_to", {"shape": [1] * 8 + [3]}, [(3,)], [False], "at most 8 axes"),
    ("repeat", {"repeats": 2, "axis": 0}, [(3,)], [True], "batch axis"),
    ("repeat", {"repeats": 0, "axis": 1}, [(3,)], [True], "repeats"),
    ("repeat", {"repeats": 2}, [(3,)], [True], "axis"),
    ("concatenate", {"axis": 0}, [(3,), (3,)], [True, True], "batch axis"),
    ("concatenate", {"axis": -1}, [(3,), (3,)], [True, False], "mix"),
    ("concatenate", {"axis": -1}, [(3, 2), (4, 2)], [True, True], "every axis but"),
    ("concatenate", {"axis": -1}, [(3, 2), (3,)], [True, True], "every axis but"),
    ("take", {"axis": 0}, [(5, 2), (3,)], [True, False], "batch axis of x"),
    ("take", {"axis": 1}, [(5, 2), (3,)], [False, True], "batched indices need axis 0"),
    ("take", {"axis": 1}, [(5, 2), (3,)], [True, True], "both"),
    ("take", {"axis": 2}, [(5, 2), (3,)], [False, False], "out of bounds"),
    ("one_hot", {"num_classes": 3, "axis": 0}, [(4,)], [True], "before the batch axis"),
    ("one_hot", {"num_classes": 3, "axis": -3}, [(4,)], [True], "before the batch axis"),
    ("one_hot", {}, [(4,)], [True], "num_classes"),
    ("one_hot", {"num_classes": 3, "axis": 3}, [(4,)], [True], "out of bounds"),
]


@pytest.mark.parametrize("op,attrs,shapes,batched,match", BAD)
def test_bad(op, attrs, shapes, batched, match):
    xs = [np.ones(((N,) + s) if b else s, np.float32) for s, b in zip(shapes, batched)]
    with pytest.raises(ValueError, match=match):
        run(op, xs, batched, **attrs)


@pytest.mark.parametrize("op,attrs,k", [("reshape", {"shape": [-1]}, 2),
                                        ("transpose", {}, 2), ("slice", {"begin": [0],
                                                                         "end": [1]}, 2),
                                        ("broadcast_to", {"shape": [-1, 2]}, 2),
                                        ("repeat", {"repeats": 2, "axis": 1}, 2),
                                        ("one_hot", {"num_classes": 2}, 2),
                                        ("take", {"axis": 1}, 1), ("take", {"axis": 1}, 3)])
def test_arity(op, attrs, k):
    xs = [np.ones((N, 2), np.float32)] * k
    with pytest.raises(ValueError, match="takes"):
        run(op, xs, [True] * k, **attrs)
