"""What Keras's Layer offers custom layers (subclasses with ``call``), mixed into
``shenjing.layers.Layer``: build/call/add_weight/add_loss, the Variables and sub-layers a layer
holds (its weights), and the constructor arguments captured for ``get_config``. How their call
is traced is in _custom.py."""
import numpy as np

from shenjing import _config


class CustomLayerAPI:
    def build(self, input_shape):
        """Creates the layer's weights for ``input_shape`` (override in custom layers)."""
        self.built = True

    def call(self, inputs, *args, **kwargs):
        """The computation of a custom layer, written with ``shenjing.ops`` (override)."""
        raise NotImplementedError(f"Layer {type(self).__name__} does not have a `call()` "
                                  f"method implemented.")

    def compute_output_shape(self, input_shape):
        raise NotImplementedError(f"Layer {type(self).__name__} has no compute_output_shape();"
                                  f" call it on a shenjing.Input to get its output shape.")

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   autocast=True, regularizer=None, constraint=None, aggregation="none",
                   overwrite_with_gradient=False, name=None):
        """A new Variable of this layer (Keras's ``add_weight``): ``initializer`` defaults to
        glorot_uniform, ``shape`` to () (a scalar)."""
        from shenjing.variables import Variable
        if constraint is not None:
            raise ValueError(f"Layer '{self.name}': weight constraints are not supported.")
        shape = () if shape is None else tuple(int(s) for s in shape)
        if initializer is None:
            initializer = "glorot_uniform"
        v = Variable(initializer, shape=shape, dtype=dtype, trainable=trainable,
                     name=name or f"variable_{len(self._own_variables())}",
                     regularizer=regularizer, _owner=self)
        self.__dict__.setdefault("_variables", []).append(v)
        return v

    add_variable = add_weight

    def add_loss(self, loss):
        """Adds ``loss`` (a tensor computed in ``call``, summed to a scalar) to the training
        loss of every model this layer is traced into (activity regularization)."""
        from shenjing.layers import _custom
        _custom.add_loss(self, loss)

    @property
    def losses(self):
        """add_loss values of the last call on arrays, plus weight penalties."""
        from shenjing.layers import _custom
        return _custom.losses(self)

    def _own_variables(self):
        from shenjing.variables import Variable
        own = list(self.__dict__.get("_variables", []))
        for v in vars(self).values():
            if isinstance(v, Variable) and all(v is not o for o in own):
                own.append(v)
        return own

    def _tracked_layers(self):
        """Sub-layers held as attributes (or in lists/dicts of them), in attribute order."""
        from shenjing.layers.base import Layer
        from shenjing.models import Model
        out = []
        for name, v in vars(self).items():
            if name.startswith("_"):
                continue
            items = v if isinstance(v, (list, tuple)) else (
                list(v.values()) if isinstance(v, dict) else [v])
            for item in items:
                if isinstance(item, (Layer, Model)) and all(item is not o for o in out):
                    out.append(item)
        return out

    def _set_custom_weights(self, weights):
        own, subs = self._own_variables(), self._tracked_layers()
        expected = len(own) + sum(len(sub.weights) for sub in subs)
        if len(weights) != expected:
            raise ValueError(f"Layer '{self.name}' expects {expected} weight arrays, received "
                             f"{len(weights)}.")
        for v, w in zip(own, weights):
            w = np.asarray(w)
            if w.shape != v.shape or not np.all(np.isfinite(w)):
                raise ValueError(f"Layer '{self.name}' weight '{v.name}' has shape {v.shape}, "
                                 f"received {w.shape} (or values that are not finite).")
        for v, w in zip(own, weights):
            v.assign(w)
        i = len(own)
        for sub in subs:
            k = len(sub.weights)
            sub.set_weights(weights[i:i + k])
            i += k


def capturing_init(init):
    """A custom layer's __init__ that records its (plain) arguments for get_config."""
    import functools
    import inspect
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        if "_init_args" not in self.__dict__:  # the outermost __init__ of this object
            try:
                bound = sig.bind(self, *args, **kwargs)
                bound.apply_defaults()
                items = dict(bound.arguments)
                items.pop("self", None)
                extra = items.pop(next((p.name for p in sig.parameters.values()
                                        if p.kind == p.VAR_KEYWORD), None), None) or {}
                items.update(extra)
                plain = {k: _config.plain(v) for k, v in items.items()
                         if is_plain(v) and k not in ("name", "trainable", "dtype")}
            except TypeError:
                plain = {}
            self.__dict__["_init_args"] = plain
        init(self, *args, **kwargs)
    return wrapped


def is_plain(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)):
        return all(is_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and is_plain(x) for k, x in v.items())
    return hasattr(v, "get_config") and hasattr(type(v), "_module")
