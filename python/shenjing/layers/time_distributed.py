"""TimeDistributed: one layer applied to every time slice of its input (Keras 3's wrapper,
keras/src/layers/rnn/time_distributed.py).

The core runs the wrapped layer once on the n * T slices of a batch (n samples of T steps),
BatchNormalization in training once per step as Keras does (cpp/src/layers/time_distributed.cpp).
The weights are the wrapped layer's: ``TimeDistributed.weights`` and ``wrapper.layer.weights``
are the same views of the same core buffers.
"""
from shenjing.layers.base import Layer

MAX_NESTING = 4  # TimeDistributed(TimeDistributed(...)) at most this deep (as the C++ reader)


def _check_inner(layer, depth=1):
    """ValueError unless ``layer`` is a layer the core can run on each time slice."""
    from shenjing.layers.input import InputLayer
    from shenjing.models import Model
    if isinstance(layer, Model):
        raise ValueError(f"TimeDistributed cannot wrap model '{layer.name}': wrapping a model "
                         f"is not supported; wrap its layers one by one.")
    if not isinstance(layer, Layer):
        raise ValueError(f"Please initialize `TimeDistributed` layer with a "
                         f"`keras.layers.Layer` instance. Received: {layer!r:.200}")
    what = f"TimeDistributed cannot wrap layer '{layer.name}' ({type(layer).__name__}): "
    if isinstance(layer, InputLayer):
        raise ValueError(what + "an InputLayer is not a computation.")
    if getattr(layer, "_is_op", False):
        raise ValueError(what + "only layers are supported, not operations.")
    if layer._is_custom():
        raise ValueError(what + "a layer with its own call() (a custom layer or a Lambda) is "
                         "traced for a batch of samples and cannot run on the time slices.")
    if getattr(layer, "_multi_input", False):
        raise ValueError(what + "it takes several inputs, and TimeDistributed passes one.")
    if isinstance(layer, TimeDistributed):
        if depth >= MAX_NESTING:
            raise ValueError(f"TimeDistributed layers are nested more than {MAX_NESTING} deep.")
        _check_inner(layer.layer, depth + 1)


class TimeDistributed(Layer):
    """Applies ``layer`` to every temporal slice of an input of shape ``(batch, time, ...)``:
    the layer sees samples of shape ``(...)`` and the output is ``(batch, time, *layer's
    output)``. The same weights serve every step.

    Args:
        layer: a ``shenjing.layers`` layer with one input (not a merge layer, a model or a
            custom layer), not yet used on another shape.
    """

    def __init__(self, layer, **kwargs):
        _check_inner(layer)
        super().__init__(**kwargs)
        self.layer = layer  # after the base sets trainable: a new wrapper leaves it as it is

    # -- trainable, as Keras: setting it sets the wrapped layer's too; the weights train only
    # when both are trainable.
    @property
    def trainable(self):
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        if "layer" in self.__dict__:
            self.layer.trainable = bool(value)

    @property
    def _core_trainable(self):
        return self.trainable and getattr(self.layer, "_core_trainable", self.layer.trainable)

    @property
    def trainable_weights(self):
        return self.layer.trainable_weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        return self.layer.non_trainable_weights if self.trainable else self.weights

    # Keras passes the (batch, time) mask on; a wrapped layer that would read it per slice
    # (a recurrent layer over sub-sequences) is refused instead.
    supports_masking = True

    def compute_mask(self, inputs, mask=None):
        if mask is not None and self.layer._takes_mask:
            raise ValueError(f"TimeDistributed '{self.name}': its input carries a mask, which "
                             f"Keras would pass to {type(self.layer).__name__} "
                             f"'{self.layer.name}' per time step; shenjing does not do that "
                             f"yet.")
        return mask

    def _sublayers(self):
        return [self, *self.layer._sublayers()]

    # -- shapes and the core --------------------------------------------------------------
    def _output_shape_for(self, shapes):
        out = super()._output_shape_for(shapes)
        # The wrapped layer is built for one slice: keep its shapes as a call of it would, so
        # that using it elsewhere on another shape is refused (its weights fit this one).
        inner, child = self.layer, tuple(shapes[0][1:])
        if inner._inbound_nodes:  # also called on its own
            if inner._call_shapes != [child]:
                raise ValueError(
                    f"Layer '{inner.name}' ({type(inner).__name__}) was first called on input "
                    f"shape {(None, *inner._call_shapes[0])} and cannot run in TimeDistributed "
                    f"'{self.name}' on slices of shape {(None, *child)}.")
        else:
            inner._call_shapes, inner._call_output = [child], tuple(out[1:])
        inner.input_shape, inner.output_shape = (None, *child), (None, *out[1:])
        return out

    def _core_config(self):
        inner = self.layer
        return {**self.get_config(),
                "layer": {"class_name": inner._core_class_name(), "config": inner._core_config()}}

    def _initial_values(self, name, shape):
        return self.layer._initial_values(name, shape)

    def _attach(self, core, index, input_shape=None, init=True):
        """The wrapped layer's weights are this layer's (the core's params of the wrapper are
        its inner layer's): both get the same views. A wrapped layer built in another model
        keeps its weights, shared with this one, as Keras keeps one set."""
        inner = self.layer
        if inner._bound is not None and inner._bound[0] is core and inner._bound[1] != index:
            raise ValueError(
                f"Layer '{inner.name}' is used both inside TimeDistributed '{self.name}' and "
                f"on its own in the same model; shenjing cannot share its weights between the "
                f"two. Use two layers, or wrap every use in TimeDistributed.")
        if self._bound is None and inner._bound is not None:
            self._bound, self._views = inner._bound, inner._views
        super()._attach(core, index, input_shape, init)
        self._bind_inner()

    def _bind_inner(self):
        """Gives the wrapped layer (and the one it wraps, when nested) this layer's views and
        the shapes of one slice."""
        inner = self.layer
        inner._views, inner._bound = self._views, self._bound
        inner._trainable_flags = list(self._trainable_flags)
        if self.input_shape is not None:
            inner.input_shape = (None, *self.input_shape[2:])
        inner.output_shape = (None, *self.output_shape[2:])
        for pname, value, _ in self._views:
            setattr(inner, pname, value)
        if isinstance(inner, TimeDistributed):
            inner._bind_inner()

    @classmethod
    def _nested_from_config(cls, config, what):
        """The config with its 'layer' (a Keras layer dict) made a layer: Keras's
        Wrapper.from_config, for shenjing._config.from_config."""
        from shenjing import _config
        from shenjing._functional_config import _layer_classes
        spec, depth = config.get("layer"), 1
        while isinstance(spec, dict) and spec.get("class_name") == "TimeDistributed":
            if depth >= MAX_NESTING:
                raise ValueError(f"{what}: TimeDistributed layers are nested more than "
                                 f"{MAX_NESTING} deep.")
            inner_config = spec.get("config")
            spec, depth = inner_config.get("layer") if isinstance(inner_config, dict) \
                else None, depth + 1
        if not isinstance(config.get("layer"), dict):
            raise ValueError(f"{what}: TimeDistributed needs 'layer', a layer config, received "
                             f"{config.get('layer')!r:.200}.")
        layer = _config.deserialize(config["layer"], _layer_classes(), f"{what} (its layer)")
        return {**config, "layer": layer}
