"""SGEMM kernels (every ISA table this CPU can run) against a float64 numpy reference.

C = alpha * op(A) @ op(B) + beta * C (+ bias on every row); shapes chosen to hit edge tiles
(1, 7, 33, 257, non-square), every transpose combination, beta 0 / 1 / other (beta 0 with a
NaN-filled C: C must never be read), bias on and off, and K = 0.
"""
import numpy as np
import pytest

from shenjing import _core

ISAS = list(_core._isas())

# (M, N, K): tiny, odd, edge-tile and multi-block shapes plus the MLP shapes.
SHAPES = [
    (1, 1, 1), (7, 7, 7), (1, 33, 7), (33, 1, 257), (7, 257, 33), (33, 33, 33),
    (257, 33, 7), (13, 100, 300), (257, 257, 257), (32, 128, 784), (784, 128, 32),
    (32, 784, 128), (130, 70, 1000),
    # the direct path (no packing) and its thread splits: small M, narrow N, short K
    (1, 128, 784), (3, 128, 784), (16, 128, 784), (1, 10, 128), (300, 10, 128), (64, 128, 10),
    (200, 784, 9),
]


def _operands(rng, M, N, K, ta, tb):
    a = rng.uniform(-1, 1, (K, M) if ta else (M, K)).astype(np.float32)
    b = rng.uniform(-1, 1, (N, K) if tb else (K, N)).astype(np.float32)
    return a, b


def _products(a, b, ta, tb):
    """float64 op(A) @ op(B) and |op(A)| @ |op(B)|. einsum, not BLAS: OpenBLAS's spinning
    threads would fight the kernel's OpenMP threads for the cores and make the test crawl."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    opa, opb = (a64.T if ta else a64), (b64.T if tb else b64)
    return np.einsum("ik,kj->ij", opa, opb), np.einsum("ik,kj->ij", np.abs(opa), np.abs(opb))


def _check(isa, a, b, ta, tb, alpha, beta, c, bias, prods):
    prod, absprod = prods
    ref = alpha * prod
    # Float32 error bound: a small multiple of eps on the sum of |terms| of every output.
    scale = abs(alpha) * absprod
    if beta != 0.0:
        ref = ref + beta * c.astype(np.float64)
        scale = scale + abs(beta) * np.abs(c)
    if bias is not None:
        ref = ref + bias.astype(np.float64)
        scale = scale + np.abs(bias)
    got = _core._sgemm(a, b, ta, tb, alpha, beta, c, bias, isa)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.all(np.isfinite(got))
    err = np.abs(got - ref)
    tol = 1e-5 * scale + 1e-6
    assert np.all(err <= tol), f"max err {err.max():.3g} (tol {tol[np.argmax(err - tol)]:.3g})"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_sgemm_matches_reference(isa, ta, tb, M, N, K):
    rng = np.random.default_rng(M * 10007 + N * 101 + K + 2 * ta + tb)
    a, b = _operands(rng, M, N, K, ta, tb)
    prods = _products(a, b, ta, tb)
    # beta == 0 must never read C: hand it NaNs.
    c_nan = np.full((M, N), np.nan, dtype=np.float32)
    _check(isa, a, b, ta, tb, 1.0, 0.0, c_nan, None, prods)
    c = rng.uniform(-1, 1, (M, N)).astype(np.float32)
    bias = rng.uniform(-1, 1, N).astype(np.float32)
    _check(isa, a, b, ta, tb, -0.5, 0.75, c, bias, prods)
    _check(isa, a, b, ta, tb, 2.0, 1.0, c, None, prods)
    _check(isa, a, b, ta, tb, 1.0, 0.0, c_nan, bias, prods)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_sgemm_direct_tiles(isa, ta, tb):
    # Every row count of a direct tile (1..8, and 8 + rest) against every column edge (partial,
    # whole and several vectors for 4-, 8- and 16-float vectors), with short and long K.
    rng = np.random.default_rng(11 + 2 * ta + tb)
    for M in (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16):
        for N in (1, 5, 8, 10, 16, 17, 33, 48, 63, 100, 129):
            for K in (1, 5, 16, 37):
                a, b = _operands(rng, M, N, K, ta, tb)
                prods = _products(a, b, ta, tb)
                c = rng.uniform(-1, 1, (M, N)).astype(np.float32)
                bias = rng.uniform(-1, 1, N).astype(np.float32)
                _check(isa, a, b, ta, tb, 1.0, 0.0, np.full((M, N), np.nan, np.float32), bias,
                       prods)
                _check(isa, a, b, ta, tb, -0.5, 0.75, c, None, prods)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("beta", [0.0, 0.5])
@pytest.mark.parametrize("with_bias", [False, True])
def test_sgemm_k0_gives_beta_c_plus_bias(isa, beta, with_bias):
    M, N = 5, 9
    rng = np.random.default_rng(7)
    a = np.zeros((M, 0), dtype=np.float32)
    b = np.zeros((0, N), dtype=np.float32)
    if beta == 0:
        c = np.full((M, N), np.nan, np.float32)
    else:
        c = rng.uniform(-1, 1, (M, N)).astype(np.float32)
    bias = rng.uniform(-1, 1, N).astype(np.float32) if with_bias else None
    got = _core._sgemm(a, b, False, False, 1.0, beta, c, bias, isa)
    want = np.zeros((M, N)) if beta == 0 else beta * c.astype(np.float64)
    if bias is not None:
        want = want + bias
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("isa", ISAS)
def test_sgemm_large_product(isa):
    # Multi-block (several KC slices and MC blocks, threads) against the float64 reference.
    rng = np.random.default_rng(3)
    a, b = _operands(rng, 300, 520, 900, False, False)
    _check(isa, a, b, False, False, 1.0, 0.0, None, None, _products(a, b, False, False))
