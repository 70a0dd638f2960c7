"""Bidirectional: a recurrent layer run forwards and a copy run backwards over the same input,
merged (Keras 3's wrapper, keras/src/layers/rnn/bidirectional.py). One C++ layer runs both
(``cpp/src/layers/bidirectional.cpp``); ``forward_layer`` and ``backward_layer`` are Python
layers whose weights are views of that layer's params."""
from shenjing import _config
from shenjing.layers.base import Layer
from shenjing.layers.recurrent import _Recurrent

_MODES = ("sum", "mul", "ave", "concat", None)


def _copy(layer, **changes):
    """A new layer of ``layer``'s class and config, with ``changes`` (Keras serializes and
    deserializes the wrapped layer)."""
    config = {**layer.get_config(), **changes}
    return type(layer).from_config(config)


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Runs ``layer`` (SimpleRNN, LSTM or GRU) over the sequence forwards and a copy of it
    backwards (``go_backwards=True``), and merges their outputs: ``merge_mode`` 'concat' (the
    default: 2 * units features), 'sum', 'mul' or 'ave'. With ``return_sequences`` the
    backward outputs are put back in input order first, as Keras does. ``backward_layer``
    replaces the copy. Weights: the forward layer's, then the backward layer's.

    Input (batch, timesteps, features); a mask (``Embedding(mask_zero=True)``, ``Masking``)
    reaches both layers.
    """

    supports_masking = True
    _takes_mask = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `Bidirectional` layer with a "
                             f"`keras.layers.Layer` instance. Received: {layer}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"`backward_layer` need to be a `keras.layers.Layer` instance. "
                             f"Received: {backward_layer}")
        if merge_mode not in _MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode}. Merge mode should be "
                             f"one of {{\"sum\", \"mul\", \"ave\", \"concat\", None}}")
        if merge_mode is None:
            raise ValueError("Bidirectional: merge_mode=None (the two outputs as a list) is not "
                             "supported yet; use 'concat', 'sum', 'mul' or 'ave'.")
        for what, inner in (("layer", layer), ("backward_layer", backward_layer)):
            if inner is not None and not isinstance(inner, _Recurrent):
                raise ValueError(f"Bidirectional: {what} must be a SimpleRNN, LSTM or GRU "
                                 f"layer, received {type(inner).__name__}.")
        if layer.return_state or layer.stateful:
            raise ValueError("Bidirectional: return_state=True and stateful=True are not "
                             "supported yet.")
        super().__init__(**kwargs)
        self.forward_layer = _copy(layer, name="forward_" + _strip(layer.name, "forward_"))
        if backward_layer is None:
            backward_layer = _copy(layer, go_backwards=True,
                                   name="backward_" + _strip(layer.name, "backward_"))
        self.backward_layer = backward_layer
        f, b = self.forward_layer, self.backward_layer
        if f.go_backwards == b.go_backwards:
            raise ValueError(f"Forward layer and backward layer should have different "
                             f"`go_backwards` value. Received: forward_layer.go_backwards "
                             f"{f.go_backwards}, backward_layer.go_backwards="
                             f"{b.go_backwards}")
        for a in ("stateful", "return_sequences", "return_state"):
            if getattr(f, a) != getattr(b, a):
                raise ValueError(f"Forward layer and backward layer are expected to have the "
                                 f"same value for attribute \"{a}\", got \"{getattr(f, a)}\" "
                                 f"for forward layer and \"{getattr(b, a)}\" for backward "
                                 f"layer")
        # Keras: masked steps of returned sequences are zeros, so the flipped backward
        # sequence lines up with the forward one.
        for inner in (f, b):
            inner.zero_output_for_mask = inner.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful
        self._initial_weights = None if weights is None else list(weights)

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32",
                "merge_mode": self.merge_mode,
                "layer": _config.serialize(self.forward_layer),
                "backward_layer": _config.serialize(self.backward_layer)}

    def _core_config(self):
        # The wrapped layers' core configs: their dropout seeds (the core runs both layers'
        # masks from the forward layer's seed, see cpp/src/layers/bidirectional.cpp).
        config = self.get_config()
        for key, inner in (("layer", self.forward_layer), ("backward_layer", self.backward_layer)):
            config[key] = {**config[key], "config": inner._core_config()}
        return config

    @classmethod
    def _nested_from_config(cls, config, what):
        """The config with its wrapped layers' configs made into layers (_config.from_config
        calls this before the constructor)."""
        from shenjing._functional_config import _layer_classes
        config = dict(config)
        classes = _layer_classes()
        config["layer"] = _config.deserialize(config.get("layer"), classes, f"{what} 'layer'")
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _config.deserialize(config["backward_layer"], classes,
                                                           f"{what} 'backward_layer'")
        return config

    def _initial_values(self, name, shape):
        for inner, prefix in ((self.forward_layer, "forward_"),
                              (self.backward_layer, "backward_")):
            if name.startswith(prefix):
                return inner._initial_values(name[len(prefix):], shape)
        raise ValueError(f"Bidirectional '{self.name}': unknown weight {name!r}.")

    def _attach(self, core, index, input_shape=None, init=True):
        super()._attach(core, index, input_shape, init)
        # The inner layers see their part of the core layer's params under their own names.
        for inner, prefix in ((self.forward_layer, "forward_"),
                              (self.backward_layer, "backward_")):
            inner._views = [(n[len(prefix):], v, g) for n, v, g in self._views
                            if n.startswith(prefix)]
            inner._trainable_flags = [True] * len(inner._views)
            for pname, value, _ in inner._views:
                setattr(inner, pname, value)
        if self._initial_weights is not None and init:
            self.set_weights(self._initial_weights)
        self._initial_weights = None
