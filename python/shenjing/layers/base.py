"""Layer base class: a Python description of a C++ layer plus zero-copy views of its weights."""
import json
import re
from collections import defaultdict

import numpy as np

from shenjing import _config

_name_counts = defaultdict(int)


def _auto_name(cls_name):
    base = re.sub(r"(?<!^)(?=[A-Z])", "_", cls_name).lower()
    base = base.replace("2_d", "2d").replace("1_d", "1d")
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def _shape_tuple(shape, what):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        items = tuple(shape)
    except TypeError:
        items = None
    if items is None or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                for s in items):
        raise TypeError(f"{what} must be a tuple of integers, received {shape!r}.")
    shape = tuple(int(s) for s in items)
    if any(s <= 0 for s in shape):
        raise ValueError(f"{what} must contain positive integers, received {shape}.")
    return shape


class Layer:
    """Base of all layers. ``input_shape=`` / ``input_dim=`` on a first layer set the model input.

    After the model is built, ``layer.weights`` (and ``layer.kernel``/``layer.bias`` where they
    exist) are NumPy views of the C++ buffers: writing into them changes the model.

    ``get_config()`` returns the constructor arguments as Keras writes them, and the C++ core
    builds its layer from that same config (see ``cpp/src/io/layer_config.cpp``).
    """

    _module = "keras.layers"

    def __init__(self, name=None, input_shape=None, input_dim=None, trainable=True, dtype=None,
                 **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{', '.join(sorted(kwargs))}.")
        self.name = name or _auto_name(type(self).__name__)
        self.trainable = trainable
        if input_dim is not None:
            input_shape = (input_dim,)
        self._input_shape_arg = None if input_shape is None else _shape_tuple(input_shape,
                                                                             "input_shape")
        self._views = []  # [(name, value view, grad view)] once built
        self._trainable_flags = []  # per view: False for state such as moving statistics
        self.input_shape = None
        self.output_shape = None

    # -- building, called by the model --------------------------------------------------
    def _add_to(self, core):
        """Appends the C++ layer to ``core`` (a shenjing._core.Model)."""
        core.add_layer(json.dumps({"class_name": type(self).__name__,
                                   "config": self._core_config()}))

    def _core_config(self):
        """The config the C++ layer is built from (the Keras config unless overridden)."""
        return self.get_config()

    def _initial_values(self, name, shape):
        """Initial value for parameter ``name`` of ``shape`` (layers with weights override)."""
        raise NotImplementedError

    def _attach(self, core, index, input_shape, init=True):
        self._views = core.params(index)
        self._trainable_flags = list(core.params_trainable(index))
        self.input_shape = (None,) + tuple(input_shape)
        self.output_shape = (None,) + tuple(core.layer_output_shape(index))
        if init:
            for pname, value, _ in self._views:
                value[...] = self._initial_values(pname, value.shape)
        for pname, value, _ in self._views:
            setattr(self, pname, value)

    @property
    def built(self):
        return self.output_shape is not None

    # -- weights --------------------------------------------------------------------------
    @property
    def weights(self):
        return [v for _, v, _ in self._views]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [v for (_, v, _), t in zip(self._views, self._trainable_flags) if t]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [v for (_, v, _), t in zip(self._views, self._trainable_flags) if not t]

    def get_weights(self):
        return [v.copy() for v in self.weights]

    def set_weights(self, weights):
        if len(weights) != len(self._views):
            raise ValueError(f"Layer '{self.name}' expects {len(self._views)} weight arrays, "
                             f"received {len(weights)}.")
        for (pname, value, _), w in zip(self._views, weights):
            w = np.asarray(w)
            if w.shape != value.shape:
                raise ValueError(f"Layer '{self.name}' weight '{pname}' has shape {value.shape}, "
                                 f"received {w.shape}.")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"Layer '{self.name}' weight '{pname}' contains NaN or inf.")
            value[...] = w

    def count_params(self):
        return int(sum(v.size for v in self.weights))

    def get_config(self):
        """The constructor arguments, as a JSON-ready dict (``cls.from_config`` inverts it)."""
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32",
                **_config.init_config(self, skip=("name", "trainable", "dtype"))}

    @classmethod
    def from_config(cls, config):
        return _config.from_config(cls, config, f"{cls.__name__} config")

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"
