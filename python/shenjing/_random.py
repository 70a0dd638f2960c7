"""The package-wide random generator behind weight init, dropout seeds and shuffling."""
import numpy as np

_rng = np.random.default_rng()


def generator():
    return _rng


def seed(value):
    global _rng
    _rng = np.random.default_rng(value)


def draw_seed():
    """A fresh 63-bit seed from the package generator (for C++-side random streams)."""
    return int(_rng.integers(0, 2**63 - 1))
