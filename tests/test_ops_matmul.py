"""The matmul op run alone through ``_core._run_op``: NumPy's matmul semantics (1-D operands,
broadcast leading axes) with and without the batch axis on either input, gradients against
PyTorch's autograd, finite differences, determinism over thread counts, and ValueErrors where
the batch axis would be contracted or leave the output's axis 0."""
import json

import numpy as np
import pytest

from shenjing import _core

torch = pytest.importorskip("torch")

N = 3
SPEC = json.dumps({"class_name": "Op", "config": {"name": "mm", "op": "matmul"}})


def run(a, b, ba, bb, dy=None, n=N):
    xs = [np.array(x, np.float32, order="C") for x in (a, b)]
    return _core._run_op(SPEC, xs, [ba, bb], n,
                         None if dy is None else np.array(dy, np.float32, order="C"), None)


def full(shape, batched, n=N):
    return ((n,) + shape) if batched else shape


# (per-sample or full shape of a, batched, of b, batched)
CASES = [
    ((3,), False, (3,), False), ((3,), False, (3, 4), False), ((2, 3), False, (3,), False),
    ((2, 3), False, (3, 4), False), ((5, 2, 3), False, (3, 4), False),
    ((5, 2, 3), False, (5, 3, 4), False), ((1, 2, 3), False, (5, 3, 4), False),
    ((2, 1, 2, 3), False, (5, 3, 4), False), ((3,), False, (5, 3, 4), False),
    ((5, 2, 3), False, (3,), False), ((2, 3), False, (4, 3, 1), False),
    # a batched
    ((3,), True, (3, 4), False), ((3,), True, (3,), False), ((2, 3), True, (3, 4), False),
    ((2, 3), True, (3,), False), ((2, 3), True, (1, 3, 4), False),
    ((4, 2, 3), True, (4, 3, 5), False), ((4, 2, 3), True, (1, 3, 5), False),
    ((4, 2, 3), True, (3, 5), False), ((4, 2, 3), True, (1, 4, 3, 5), False),
    # b batched
    ((3,), False, (3, 4), True), ((2, 3), False, (3, 4), True), ((1, 2, 3), False, (3, 4), True),
    ((2, 3), False, (4, 3, 5), True), ((4, 2, 3), False, (4, 3, 5), True),
    ((3,), False, (4, 3, 5), True),
    # both
    ((2, 3), True, (3, 4), True), ((1, 2, 3), True, (4, 3, 5), True),
    ((4, 2, 3), True, (4, 3, 5), True), ((4, 2, 3), True, (1, 3, 5), True),
]


@pytest.mark.parametrize("sa,ba,sb,bb", CASES)
def test_matmul_forward_and_grad(sa, ba, sb, bb):
    rng = np.random.default_rng(abs(hash((sa, ba, sb, bb))) % 2**32)
    a = rng.standard_normal(full(sa, ba)).astype(np.float32)
    b = rng.standard_normal(full(sb, bb)).astype(np.float32)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    dy = rng.standard_normal(want.shape).astype(np.float32)
    y, (da, db), _ = run(a, b, ba, bb, dy)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    ta, tb = (torch.tensor(v.astype(np.float64), requires_grad=True) for v in (a, b))
    (torch.matmul(ta, tb) * torch.tensor(dy.astype(np.float64))).sum().backward()
    np.testing.assert_allclose(da, ta.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sa,ba,sb,bb", [((4, 2, 3), True, (3, 5), False),
                                         ((2, 3), False, (4, 3, 2), True),
                                         ((1, 2, 3), True, (4, 3, 2), True)])
def test_finite_differences(sa, ba, sb, bb):
    rng = np.random.default_rng(7)
    a = rng.standard_normal(full(sa, ba, 2)).astype(np.float32)
    b = rng.standard_normal(full(sb, bb, 2)).astype(np.float32)
    y, _, _ = run(a, b, ba, bb, n=2)
    dy = rng.standard_normal(y.shape)
    _, grads, _ = run(a, b, ba, bb, dy, n=2)
    for k, x in enumerate((a, b)):
        flat = x.astype(np.float64).ravel()
        g = np.zeros(flat.size)
        for i in range(flat.size):
            vals = []
            for s in (1, -1):
                p = flat.copy()
                p[i] += s * 1e-2
                args = [a, b]
                args[k] = p.reshape(x.shape)
                vals.append((run(*args, ba, bb, n=2)[0] * dy).sum())
            g[i] = (vals[0] - vals[1]) / 2e-2
        np.testing.assert_allclose(grads[k], g.reshape(x.shape), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("sa,ba,sb,bb", [((64, 20, 30), True, (30, 40), False),
                                         ((20, 30), False, (64, 30, 40), True),
                                         ((64, 20, 30), True, (64, 30, 40), True),
                                         ((64, 20, 30), True, (1, 30, 40), True)])
def test_large_deterministic_over_threads(sa, ba, sb, bb):
    rng = np.random.default_rng(8)
    a = rng.standard_normal(full(sa, ba, 16)).astype(np.float32)
    b = rng.standard_normal(full(sb, bb, 16)).astype(np.float32)
    dy = rng.standard_normal(np.matmul(a, b).shape).astype(np.float32)
    threads = _core.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            outs.append(run(a, b, ba, bb, dy, n=16))
    finally:
        _core.set_num_threads(threads)
    for y, g, _ in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        for k in range(2):
            np.testing.assert_array_equal(g[k], outs[0][1][k])
    np.testing.assert_allclose(outs[0][0], np.matmul(a, b), rtol=1e-4, atol=1e-4)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    (torch.matmul(ta, tb) * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(outs[0][1][0], ta.grad.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(outs[0][1][1], tb.grad.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("sa,ba,sb,bb,match", [
    ((), False, (3,), False, "rank >= 1"),
    ((), True, (3,), False, "contracted"),           # (n,) @ (n?): n would be contracted
    ((3,), False, (3,), True, "contracted"),         # (3,) @ (n, 3)? axis 0 of b is K
    ((2, 3), False, (3,), True, "contracted"),
    ((2, 3), False, (4,), False, "contracted axes differ"),
    ((3,), True, (5, 3, 4), False, "first axis"),    # (n, 3) @ (5, 3, 4) -> (5, n, 4)
    ((2, 3), True, (5, 3, 4), False, "batch axis against 5"),
    ((2, 3), True, (2, 4, 3, 5), False, "first axis"),
    ((4, 2, 3), False, (3, 4), True, "batch axis against 4"),
    ((2, 4, 2, 3), False, (4, 3, 5), True, "batch axis against 2"),
    ((2, 3), True, (3,), True, "contracted"),
    ((3,), True, (3, 4), True, "first axis"),         # (n, 3) @ (n, 3, 4) -> (n, n, 4)
])
def test_bad_shapes(sa, ba, sb, bb, match):
    a = np.ones(full(sa, ba), np.float32)
    b = np.ones(full(sb, bb), np.float32)
    with pytest.raises(ValueError, match=match):
        run(a, b, ba, bb)


def test_arity():
    x = np.ones((N, 3), np.float32)
    with pytest.raises(ValueError, match="takes 2 inputs"):
        _core._run_op(SPEC, [x], [True], N, None, None)
    with pytest.raises(ValueError, match="takes 2 inputs"):
        _core._run_op(SPEC, [x, x, x], [True] * 3, N, None, None)
