"""shenjing: Keras-style deep learning on the CPU with a fast C++ core.

``import shenjing as keras`` runs most Keras Sequential example code unchanged.
"""
from shenjing import _core
from shenjing import (activations, callbacks, data, datasets, distribution, initializers,
                      layers, losses, metrics, models, ops, optimizers, regularizers, saving,
                      utils)
from shenjing.layers import Input
from shenjing.models import Model, Sequential
from shenjing.variables import Variable

__version__ = "0.1.0"


def set_num_threads(n):
    """Sets the number of threads the kernels use (like OMP_NUM_THREADS, which also works)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, received {n!r}.")
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads the kernels use."""
    return _core.get_num_threads()


def config():
    """What this build runs with: version, kernel ISA in use, threads, compiler."""
    return {"version": __version__, "isa": _core.isa(), "threads": _core.get_num_threads(),
            "build": _core.build_info()}


__all__ = ["Model", "Sequential", "Input", "Variable", "ops", "activations", "callbacks", "data", "datasets", "distribution",
           "initializers", "layers", "losses", "metrics", "models", "optimizers",
           "regularizers", "saving", "utils", "set_num_threads", "get_num_threads", "config"]
