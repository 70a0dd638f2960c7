"""``shenjing.Variable`` (Keras's ``keras.Variable``): a weight made by ``Layer.add_weight``.

Before a model holding it is built, a Variable keeps its values in a NumPy array; once built,
it reads and writes the core's buffer (one set of values for every model it is in). In traced
code (a layer's ``call`` run on symbolic tensors) a Variable stands for its ``variable`` node.
"""
import numpy as np


class Variable:
    """A named, shaped float32 weight: ``value`` / ``numpy()`` read it, ``assign`` writes it."""

    def __init__(self, initializer, shape=None, dtype=None, trainable=True, name=None,
                 regularizer=None, _owner=None):
        from shenjing import initializers
        if dtype is not None and str(np.dtype(dtype)) != "float32":
            raise ValueError(f"Variable '{name}': only float32 variables are supported, "
                             f"received dtype={dtype!r}.")
        if callable(initializer) or isinstance(initializer, (str, dict)):
            if shape is None:
                raise ValueError(f"Variable '{name}': give a shape when the initializer is "
                                 f"{initializer!r}.")
            shape = tuple(int(s) for s in shape)
            value = np.asarray(initializers.get(initializer)(shape), dtype=np.float32)
        else:
            value = np.asarray(initializer, dtype=np.float32)
            if shape is not None and tuple(shape) != value.shape:
                raise ValueError(f"Variable '{name}': the initial value has shape "
                                 f"{value.shape}, not the given shape {tuple(shape)}.")
        if any(s <= 0 for s in value.shape) or value.ndim > 8:
            raise ValueError(f"Variable '{name}': shape {value.shape} must have at most 8 "
                             f"axes of positive sizes.")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"Variable '{name}': the initial value contains NaN or infinity.")
        self.name = name or "variable"
        self._value = np.array(value, dtype=np.float32)  # replaced by a core view on build
        self._trainable = bool(trainable)
        self.regularizer = regularizer
        self._owner = _owner
        self._node = None  # the VariableOp, made on first use in traced code

    # -- identity --------------------------------------------------------------------------
    @property
    def path(self):
        return f"{self._owner.name}/{self.name}" if self._owner is not None else self.name

    @property
    def shape(self):
        return self._value.shape

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def size(self):
        return self._value.size

    @property
    def dtype(self):
        return "float32"

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        if self._node is not None:
            self._node.attrs["trainable"] = self._trainable

    # -- values ----------------------------------------------------------------------------
    @property
    def value(self):
        return self._value

    def numpy(self):
        return np.array(self._value)

    def _host_value(self):
        return self._value

    def _bind(self, view):
        if view is not self._value:
            self._value = view

    def assign(self, value):
        from shenjing.layers.node import KerasTensor
        if isinstance(value, KerasTensor):
            raise ValueError(f"Variable '{self.path}': assigning a tensor computed in a traced "
                             f"call() is not supported: shenjing runs each batch as one C++ "
                             f"call and a Variable changes only by training. Keep state "
                             f"updates out of call(), or compute the value as an output.")
        value = np.asarray(value, dtype=np.float32)
        if value.shape != self.shape:
            raise ValueError(f"Variable '{self.path}' has shape {self.shape}; cannot assign a "
                             f"value of shape {value.shape}.")
        self._value[...] = value
        return self

    def assign_add(self, value):
        from shenjing.layers.node import KerasTensor
        return self.assign(value if isinstance(value, KerasTensor) else
                           self._value + np.asarray(value, dtype=np.float32))

    def assign_sub(self, value):
        from shenjing.layers.node import KerasTensor
        return self.assign(value if isinstance(value, KerasTensor) else
                           self._value - np.asarray(value, dtype=np.float32))

    def __array__(self, dtype=None, copy=None):
        if copy:  # np.array(v) snapshots: NumPy trusts us to copy
            return np.array(self._value, dtype=dtype, copy=True)
        return np.asarray(self._value, dtype=dtype)

    def __repr__(self):
        return (f"<Variable path={self.path}, shape={self.shape}, dtype=float32, "
                f"value={self._value!r:.200}>")

    # -- in traced code --------------------------------------------------------------------
    def _symbolic(self):
        from shenjing.ops import _trace
        if self._node is None:
            self._node = _trace.VariableOp(self)
            self._tensor = _tensor_of(self._node, self.shape)
        return self._tensor


def _tensor_of(op, shape):
    from shenjing.layers.node import KerasTensor, Node
    t = KerasTensor(tuple(shape), dtype="float32", name=op.name)
    Node(op, [], [], t)
    return t


def _binary(name, reflected=False):
    def method(self, other):
        from shenjing import ops
        fn = getattr(ops, name)
        return fn(other, self) if reflected else fn(self, other)
    return method


for _name, _op in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                   ("truediv", "divide"), ("matmul", "matmul"), ("pow", "power")]:
    setattr(Variable, f"__{_name}__", _binary(_op))
    setattr(Variable, f"__r{_name}__", _binary(_op, reflected=True))


def _negative(self):
    from shenjing import ops
    return ops.negative(self)


Variable.__neg__ = _negative
