"""The vector float32 exp, log, log1p and expm1 kernels (cpp/src/kernels/math.inc) through the
ops that use them (_core._run_op), on every ISA this CPU runs: within a few ulp of float64
NumPy over the float range (random bit patterns, dense sweeps, the overflow and subnormal
edges) and IEEE special values exactly. SHENJING_ISA picks the kernel table once per process,
so each ISA runs in a child process that writes its outputs for this one to check."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import shenjing
from shenjing import _core

ISAS = list(_core._isas())
# Max error in ulp of the correctly rounded float32 result. Over every float (checked once,
# outside the tests) the generic and AVX-512 tables reach exp 1.01, log 0.83, log1p 1.44 and
# expm1 1.76 ulp; these samples hit the same worst regions.
MAX_ULP = {"exp": 2.0, "log": 2.0, "log1p": 2.0, "expm1": 2.0}
REF = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1}
F32 = np.float32
TINY = float(np.finfo(F32).smallest_subnormal)
SPECIALS = np.array([0.0, -0.0, TINY, -TINY, 1e-40, -1e-40, 1.1754942e-38, 1.0, -1.0, 2.0,
                     np.finfo(F32).max, -np.finfo(F32).max, np.inf, -np.inf, np.nan, -np.nan,
                     88.72283, 88.72284, -87.33655, -103.27893, -103.97208, -104.0, 89.0,
                     -0.9999999, 1e-8, -1e-8, 0.5, 0.70710677, 0.7071068], F32)


def _sweep(centre, count):
    """count consecutive floats on each side of centre (every mantissa nearby)."""
    c = np.array([centre], F32).view(np.int32)[0]
    bits = np.arange(-count, count, dtype=np.int64) + c
    return bits.astype(np.int32).view(F32)


def _geometric(lo, hi, count):
    """Positive and negative values spread evenly in log scale between lo and hi."""
    g = np.geomspace(lo, hi, count).astype(F32)
    return np.concatenate([g, -g])


def inputs(fn):
    rng = np.random.default_rng(7)
    parts = [SPECIALS, rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32)
             .view(F32)]  # every sign, exponent and NaN payload
    if fn in ("exp", "expm1"):
        parts += [np.linspace(-104, 89, 1 << 20, dtype=F32), _geometric(1e-12, 104, 1 << 18)]
        parts += [_sweep(e, 1 << 12) for e in (88.72284, -87.33655, -103.27893, -17.32868, 0.0)]
    if fn == "log":
        parts += [_sweep(1.0, 1 << 18), _sweep(0.70710677, 1 << 14), _sweep(TINY * 1e3, 1 << 12),
                  np.geomspace(TINY, 3e38, 1 << 20).astype(F32)]
    if fn == "log1p":
        parts += [_geometric(1e-12, 1.0, 1 << 18), np.linspace(-1, 10, 1 << 20, dtype=F32),
                  _sweep(-1.0, 1 << 12), np.geomspace(1, 3e38, 1 << 18).astype(F32)]
    return np.concatenate(parts).astype(F32)


_CHILD = r"""
import json, sys
import numpy as np
from shenjing import _core
isa, path = sys.argv[1], sys.argv[2]
assert _core.isa() == isa, (_core.isa(), isa)
data = dict(np.load(path))
out = {}
for fn in ("exp", "log", "log1p", "expm1"):
    spec = json.dumps({"class_name": "Op", "config": {"name": "t", "op": fn}})
    out[fn] = _core._run_op(spec, [data[fn]], [False], 1, None, None)[0]
np.savez(path.replace(".npz", "_out.npz"), **out)
"""


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """{isa: {fn: (x, y)}}: each ISA's op outputs on inputs(fn)."""
    d = tmp_path_factory.mktemp("vmath")
    xs = {fn: inputs(fn) for fn in REF}
    res = {}
    for isa in ISAS:
        path = str(d / f"{isa}.npz")
        np.savez(path, **xs)
        env = dict(os.environ, SHENJING_ISA=isa)  # the child imports this shenjing
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.dirname(os.path.dirname(shenjing.__file__)), env.get("PYTHONPATH", "")])
        p = subprocess.run([sys.executable, "-c", _CHILD, isa, path], env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        ys = np.load(path.replace(".npz", "_out.npz"))
        res[isa] = {fn: (xs[fn], ys[fn]) for fn in REF}
    return res


def ulp_error(y, ref):
    """|y - ref| in ulp of float32 at ref (subnormal spacing below 2^-126). Results past
    FLT_MAX count as 2^128 (inf is the correct rounding there); NaN must meet NaN and an
    infinite reference must be met exactly (inf where no error is allowed)."""
    y = y.astype(np.float64)
    big = 2.0**128
    yc, rc = np.clip(y, -big, big), np.clip(ref, -big, big)
    _, e = np.frexp(rc)
    ulp = np.ldexp(1.0, np.maximum(e - 1, -126) - 23)
    with np.errstate(invalid="ignore"):
        err = np.abs(yc - rc) / ulp
    nan = np.isnan(ref)
    err[nan] = np.where(np.isnan(y[nan]), 0.0, np.inf)
    inf = np.isinf(ref)
    err[inf] = np.where(y[inf] == ref[inf], 0.0, np.inf)
    return err


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fn", sorted(REF))
def test_max_ulp_over_the_float_range(outputs, isa, fn):
    x, y = outputs[isa][fn]
    with np.errstate(all="ignore"):
        ref = REF[fn](x.astype(np.float64))
    err = ulp_error(y, ref)
    i = int(np.argmax(err))
    assert err[i] <= MAX_ULP[fn], (
        f"{fn} on {isa}: {err[i]:.3f} ulp at x={x[i]!r}: got {y[i]!r}, exact {ref[i]!r}")


@pytest.mark.parametrize("isa", ISAS)
def test_special_values_exactly(outputs, isa):
    n = len(SPECIALS)
    ys = {fn: outputs[isa][fn][1][:n] for fn in REF}
    x = SPECIALS
    with np.errstate(all="ignore"):
        for fn, f in REF.items():
            ref = f(x.astype(np.float64)).astype(F32)
            # Where the rounded result is inf, 0, NaN or 1, or is x itself (log1p, expm1 of
            # tiny x), the kernels must give it exactly.
            exact = np.isinf(ref) | (ref == 0) | np.isnan(ref) | (ref == 1)
            if fn != "log":
                exact |= np.abs(x) <= 1e-8
            np.testing.assert_array_equal(ys[fn][exact], ref[exact], err_msg=f"{fn} on {isa}")
            # the sign of zero too: log1p(-0) and expm1(-0) are -0, exp(-104) is +0
            z = exact & (ref == 0)
            np.testing.assert_array_equal(np.signbit(ys[fn][z]), np.signbit(ref[z]),
                                          err_msg=f"{fn} on {isa}")


@pytest.mark.parametrize("isa", ISAS)
def test_isas_agree_closely(outputs, isa):
    """Each ISA is within 2 ulp of the generic table (FMA contraction moves the last bit)."""
    for fn in REF:
        x, y = outputs[isa][fn]
        y0 = outputs[ISAS[0]][fn][1]
        fin = np.isfinite(y0) & np.isfinite(y)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(y0))
        np.testing.assert_array_equal(y[~fin & ~np.isnan(y)], y0[~fin & ~np.isnan(y)])
        assert np.all(ulp_error(y[fin], y0[fin].astype(np.float64)) <= 2.0), (fn, isa)


def _op(op, x, dy=None, **attrs):
    spec = json.dumps({"class_name": "Op", "config": {"name": "t", "op": op, **attrs}})
    return _core._run_op(spec, [x], [True], x.shape[0], dy, None)


@pytest.mark.parametrize("shape,axis", [((64, 3000), -1), ((8, 300, 40), 1), ((4, 5), -1)])
def test_softmax_family_uses_the_vector_exp_accurately(shape, axis):
    """softmax, log_softmax and logsumexp (forward and gradient) against float64, large
    enough to run in parallel, with -inf and large entries; along the last axis (contiguous
    rows) and a middle one (blocks of columns)."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 20).astype(F32)
    x.reshape(-1)[::97] = -np.inf
    dy = rng.standard_normal(shape).astype(F32)
    x64 = x.astype(np.float64)
    m = np.max(x64, axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        lse = m + np.log(np.sum(np.exp(x64 - m), axis=axis, keepdims=True))
    sm, lsm = np.exp(x64 - lse), x64 - lse
    y, (dx,), _ = _op("softmax", x, dy, axis=axis)
    np.testing.assert_allclose(y, sm, rtol=1e-5, atol=1e-7)
    g = sm * (dy - np.sum(dy * sm, axis=axis, keepdims=True))
    np.testing.assert_allclose(dx, g, rtol=1e-4, atol=1e-6)
    y, (dx,), _ = _op("log_softmax", x, dy, axis=axis)
    np.testing.assert_allclose(y, lsm, rtol=1e-5, atol=1e-4)
    g = dy - sm * np.sum(dy, axis=axis, keepdims=True)
    np.testing.assert_allclose(dx, g, rtol=1e-4, atol=1e-5)
    dyr = np.squeeze(np.sum(dy, axis=axis, keepdims=True), axis)
    y, (dx,), _ = _op("logsumexp", x, dyr, axis=axis)
    np.testing.assert_allclose(y, np.squeeze(lse, axis), rtol=1e-6)
    np.testing.assert_allclose(dx, np.expand_dims(dyr, axis) * sm, rtol=1e-4, atol=1e-6)
