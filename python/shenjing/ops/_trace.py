"""Tracing: an op called on symbolic tensors records a primitive-op node of the graph.

Each ``shenjing.ops`` call on a ``KerasTensor`` makes an ``Operation`` (a node the C++ core
builds from ``{"class_name": "Op", "config": {"op": ..., attrs}}``, see cpp/src/ops/op.hpp)
and returns its output tensor; the shapes are checked by the core now, once. Python numbers
and NumPy arrays met on the way become ``constant`` nodes, Variables ``variable`` nodes (one
per variable). A symbolic tensor whose shape starts with ``None`` has the batch axis; one
without it (a weight, a constant, a reduction over the batch) is "unbatched".
"""
import itertools
import json
import numbers
import re

import numpy as np

from shenjing import _core
from shenjing._thread_stack import ThreadStack
from shenjing.layers.base import Layer, _auto_name
from shenjing.layers.node import KerasTensor, Node

_scopes = ThreadStack()  # the custom layers whose call() is being traced, innermost last
_inner_ids = itertools.count()


def scope_label():
    """' in layer 'name' (Class)' for the innermost layer being traced, or ''."""
    if not _scopes:
        return ""
    from shenjing.losses import Loss
    from shenjing.metrics import Metric
    from shenjing.models import Model
    obj = _scopes[-1]
    kind = "loss" if isinstance(obj, Loss) else "metric" if isinstance(obj, Metric) else \
        "model" if isinstance(obj, Model) else "layer"
    return f" in {kind} '{getattr(obj, 'name', '?')}' ({type(obj).__name__})"


class Operation(Layer):
    """One primitive op of a traced graph. It holds no weights (but ``variable``)."""

    _is_op = True
    _module = "shenjing.ops"

    def __init__(self, op, attrs=None, name=None, output_dtype="float32"):
        if name is None:
            # Ops inside a layer's traced call are that layer's insides: like Keras, they do
            # not take up the names ops of the model itself get ("relu", "relu_1", ...).
            name = f"{_scopes[-1].name}/{op}_{next(_inner_ids)}" if _scopes else _auto_name(op)
        super().__init__(name=name)
        self.op = op
        self.attrs = dict(attrs or {})
        self.output_dtype = output_dtype

    def get_config(self):
        return {**self._core_config(), "output_dtype": self.output_dtype}

    def _core_config(self):
        return {"name": self.name, "op": self.op, **self.attrs}

    def _spec(self, seeded=True):
        return json.dumps({"class_name": "Op", "config": self._core_config()})

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        op, name = config.pop("op", None), config.pop("name", None)
        dtype = config.pop("output_dtype", "float32")
        if not isinstance(op, str) or op == "variable":
            raise ValueError(f"Operation '{name}': 'op' must name a primitive op.")
        return cls(op, config, name=name, output_dtype=dtype)

    def __call__(self, inputs, *args, **kwargs):
        """The op on symbolic ``inputs`` (a list), as when a config is loaded."""
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        return _call(self, inputs)

    def __repr__(self):
        return f"<Operation {self.op} name={self.name}>"

    @property
    def _keras_type(self):
        """The class name Keras gives this op ("relu" -> Relu, "get_item" -> GetItem), from
        the name it was made with."""
        base = re.sub(r"_\d+$", "", self.name) if self.name.split("_")[-1].isdigit() else \
            self.name
        return "".join(w.capitalize() for w in base.split("_"))

    @property
    def _is_constant(self):
        return self.op == "constant"


class VariableOp(Operation):
    """The node of one Variable: its core param holds the variable's values once a model is
    built (the Variable then reads and writes that buffer)."""

    def __init__(self, variable):
        from shenjing import regularizers
        reg = regularizers.get(variable.regularizer)
        attrs = {"shape": list(variable.shape), "weight": variable.name,
                 "trainable": bool(variable._trainable)}
        if reg is not None:
            attrs["regularizer"] = {"class_name": "L1L2",
                                    "config": {"l1": reg.l1, "l2": reg.l2}}
        super().__init__("variable", attrs, name=variable.path.replace("/", "_"))
        self.variable = variable

    @property
    def trainable(self):
        owner = self.variable._owner
        return owner is None or owner.trainable

    @trainable.setter
    def trainable(self, value):
        pass  # follows the owning layer

    def _initial_values(self, name, shape):
        return self.variable._host_value()

    def _attach(self, core, index, input_shape=None, init=True):
        super()._attach(core, index, input_shape, init)
        self.variable._bind(self._views[0][1])


def _batched(t):
    return len(t.shape) > 0 and t.shape[0] is None


def constant(value, dtype=None):
    """A ``constant`` node holding ``value`` (a number or an array)."""
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"Cannot use {type(value).__name__} {value!r:.100} as a tensor"
                        f"{scope_label()}: expected a number, an array or a tensor.")
    if arr.ndim > 8 or arr.size > (1 << 24):
        raise ValueError(f"A constant of shape {arr.shape} is too large to trace{scope_label()}"
                         f" (at most 8 axes and 2^24 values).")
    if dtype is None:
        dtype = _default_dtype(value, arr)
    vals = arr.astype(np.float64).ravel()
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"A constant{scope_label()} contains NaN or infinity.")
    return record("constant", [], {"shape": list(arr.shape), "values": vals.tolist()},
                  dtype=dtype)


def _default_dtype(value, arr):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int32"
    if isinstance(value, numbers.Real):
        return "float32"
    if arr.dtype == np.float64:
        return "float32"  # Keras's floatx for NumPy float64 constants in traced code
    return str(arr.dtype)


def as_tensor(x):
    """A symbolic tensor for x: itself, a Variable's node, or a constant."""
    if isinstance(x, KerasTensor):
        return x
    from shenjing.variables import Variable
    if isinstance(x, Variable):
        return x._symbolic()
    return constant(x)


def record(op, inputs, attrs=None, dtype="float32", name=None):
    """Adds one op node on symbolic ``inputs`` and returns its output tensor. The core checks
    the shapes now: a misuse is a ValueError naming the op, the shapes and the dtypes."""
    return _call(Operation(op, attrs, name=name, output_dtype=dtype), list(inputs))


def _call(layer, inputs):
    shapes = [list(t.shape[1:]) if _batched(t) else list(t.shape) for t in inputs]
    flags = [_batched(t) for t in inputs]
    from shenjing import _dynamic
    spec = layer._spec()
    try:
        out, batched = _dynamic.infer(lambda c: _core.op_output_shape(spec, c, flags), shapes)
        batched = batched[0]
    except ValueError as e:
        described = ", ".join(f"{t.shape} {t.dtype}" for t in inputs)
        raise ValueError(f"{e} (ops.{layer.op}{scope_label()}, on tensors of shape and dtype: "
                         f"{described or 'none'})") from None
    shape = ((None,) if batched else ()) + tuple(out)
    t = KerasTensor(shape, dtype=layer.output_dtype, name=layer.name)
    Node(layer, list(inputs), list(inputs), t)
    return t
