"""Sequential: a linear stack of layers, run by the core as the chain case of its graph."""
import json

from shenjing import _config, _core, _dynamic
from shenjing.layers.base import Layer, _shape_tuple
from shenjing.layers.input import InputLayer
from shenjing.layers.node import KerasTensor
from shenjing.models import Model


class Sequential(Model):
    """A linear stack of layers.

    ``Sequential([layers.Input((784,)), layers.Dense(10)])``, ``model.add(layer)``, or a
    subclass that calls ``self.add`` in ``__init__``. The input shape comes from an ``Input``,
    from ``input_shape=``/``input_dim=`` on the first layer, or from the first data seen.
    """

    def __init__(self, layers=None, trainable=True, name=None):
        self._init_model(name, "Sequential", trainable)
        self._layers = []
        self._input_shape = None
        layers = list(layers or [])
        # A failed construction leaves the given layers as they were (reusable elsewhere).
        self._rollback_on_error(lambda: [self.add(layer) for layer in layers], layers)

    # -- structure -------------------------------------------------------------------------
    def add(self, layer):
        """Appends a layer (or sets the input shape when given ``Input(...)``). A layer the
        model cannot take raises and leaves the model as it was."""
        self._rollback_on_error(lambda: self._add(layer), [layer])

    def _add(self, layer):
        if isinstance(layer, KerasTensor):  # Input(shape): Keras 3 starts stacks with it
            if layer._node is None or not isinstance(layer._node.layer, InputLayer):
                raise TypeError("Sequential.add expects a layer or an Input; received a tensor "
                                "computed by a layer. Use the functional Model(inputs, "
                                "outputs) for graphs.")
            layer = layer._node.layer
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("Input must be the first layer of a Sequential model.")
            self._input_shape = layer.shape[1:]
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a shenjing layer, received {layer!r}.")
        if not self._layers and self._input_shape is None and layer._input_shape_arg:
            self._input_shape = layer._input_shape_arg
        self._layers.append(layer)
        if self._input_shape is not None:
            self._build()

    def pop(self):
        """Removes the last layer."""
        if not self._layers:
            raise ValueError("There are no layers to pop.")

        def pop():
            layer = self._layers.pop()
            if self._input_shape is not None:
                self._build()
            return layer
        return self._rollback_on_error(pop)

    @property
    def layers(self):
        return list(self._layers)

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return (None,) + tuple(self._core.output_shape)

    def build(self, input_shape=None):
        """Builds the model for a batched ``input_shape`` such as ``(None, 784)``."""
        if input_shape is not None:
            if isinstance(input_shape, (str, bytes)) or not isinstance(
                    input_shape, (tuple, list)) or len(input_shape) < 2:
                raise TypeError(f"build() expects a batched input shape such as (None, 784), "
                                f"received {input_shape!r}.")
            input_shape = _shape_tuple(tuple(input_shape)[1:],
                                       "build(): the input shape after the batch dimension")
        elif self._input_shape is None:
            raise ValueError("build() needs an input shape, e.g. model.build((None, 784)).")

        def build():
            if input_shape is not None:
                self._input_shape = input_shape
            self._build()
        self._rollback_on_error(build)

    def _build(self, init=True, core=None):
        """(Re)creates the C++ model; weights of layers built before are kept, new ones are
        initialized (left at zero when not ``init``: a load sets them next). ``core``: a core
        model already holding these layers (from ``_core.Model.load``) to attach to. On
        failure the model and its layers are left as they were."""
        self._rollback_on_error(lambda: self._build_core(init, core))

    def _build_core(self, init, core):
        if core is None and (self._needs_graph_build() or
                             _dynamic.is_dynamic([self._input_shape]) or
                             any(layer._is_custom() or getattr(layer, "_makes_mask", False)
                                 for layer in self._layers)):
            # Custom layers and losses are traced, masks are ops (layers/_masking.py), axes
            # of unknown size are given per call (_dynamic.py): build through the general
            # graph path.
            self._input_shape = tuple(self._input_shape)
            self._trace_chain()
            return self._build_graph(init)
        kept = [layer.get_weights() if layer.built and core is None else None
                for layer in self._layers]
        if core is not None and core.num_layers != len(self._layers):
            raise ValueError(f"the core model has {core.num_layers} layers, the config "
                             f"{len(self._layers)}.")
        adopt = core is not None
        core = core or _core.Model(list(self._input_shape))
        shape = tuple(self._input_shape)
        for i, layer in enumerate(self._layers):
            if not adopt:
                layer._add_to(core)
            fresh = kept[i] is None or [w.shape for w in kept[i]] != \
                [v.shape for _, v, _ in core.params(i)]
            layer._attach(core, i, shape, init=fresh and init and not adopt)
            if not fresh:
                layer.set_weights(kept[i])
            shape = layer.output_shape[1:]
        self._core = core
        self._core_layers = list(self._layers)
        self._trace_chain()
        self._input_shape = tuple(self._input_shape)
        self._output_tail = tuple(core.output_shape)
        if self.optimizer is not None:
            self._compile_core()

    # -- configs and files -----------------------------------------------------------------
    def get_config(self):
        """Keras's Sequential config: name, trainable and the layer configs, the input first."""
        layers = []
        if self._input_shape is not None:
            layers.append({"module": "keras.layers", "class_name": "InputLayer",
                           "config": {"batch_shape": [None, *self._input_shape],
                                      "dtype": "float32", "sparse": False,
                                      "name": "input_layer"},
                           "registered_name": None})
        layers += [_config.serialize(layer) for layer in self._layers]
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32",
                "layers": layers}

    @classmethod
    def from_config(cls, config, custom_objects=None, _core=None):
        """A new model from ``get_config()`` output (weights freshly initialized)."""
        from shenjing import layers as layers_mod
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config needs a 'layers' list.")
        classes = {c.__name__: c for c in vars(layers_mod).values() if isinstance(c, type)
                   and issubclass(c, Layer) and c not in (Layer, InputLayer)}
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        specs = config["layers"]
        if specs and isinstance(specs[0], dict) and specs[0].get("class_name") == "InputLayer":
            cfg = specs[0].get("config") or {}
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if not isinstance(shape, list) or len(shape) < 2:
                raise ValueError("InputLayer: 'batch_shape' must be a list [null, d1, ...].")
            model.add(InputLayer(shape=shape[1:]))
            specs = specs[1:]
        model._layers = [_config.deserialize(s, classes, f"layer {i}")
                         for i, s in enumerate(specs)]
        if model._input_shape is None and model._layers:
            model._input_shape = model._layers[0]._input_shape_arg
        if model._input_shape is not None:
            model._build(core=_core)
        return model

    def to_json(self, **kwargs):
        """The architecture as Keras JSON (``shenjing.models.model_from_json`` reads it)."""
        spec = {"module": "keras", "class_name": "Sequential", "config": self.get_config(),
                "registered_name": None}
        if self._input_shape is not None:
            spec["build_config"] = {"input_shape": [None, *self._input_shape]}
        return json.dumps(spec, **kwargs)

    # -- the symbolic chain (inputs, outputs, layer.output; a Sequential inside a graph) ------
    def _trace_chain(self):
        """Calls the layers on a symbolic input, as Keras 3 builds a Sequential over a
        functional graph: ``model.inputs``/``outputs`` and ``layer.output`` then work, and the
        model can be cut (``Model(seq.inputs, seq.layers[1].output)``). The nodes of an
        earlier build are dropped from the layers first."""
        for layer in self._layers:
            old = getattr(self, "_chain_nodes", ())
            layer._inbound_nodes = [n for n in layer._inbound_nodes
                                    if not any(n is o for o in old)]
            if not layer._inbound_nodes:
                layer._call_shapes = None
        x = InputLayer(shape=self._input_shape, name=f"{self.name}_input").output
        inputs, nodes = [x], []
        for layer in self._layers:
            x = layer(x)
            nodes.append(x._node)
        from shenjing.functional import graph_nodes
        self._chain_nodes = nodes
        # The layers' nodes, and the ops that make masks between them, in topological order.
        self._chain = (inputs, [x], graph_nodes(inputs, [x], self.name))

    def _graph(self):
        if getattr(self, "_chain", None) is None:
            self._require_built("the model's graph")
        return self._chain

    def _prepare_call(self, shapes):
        if self._core is None and len(shapes) == 1:
            self.build((None,) + tuple(shapes[0]))

    @property
    def inputs(self):
        return list(self._graph()[0])

    @property
    def outputs(self):
        return list(self._graph()[1])

    @property
    def input(self):
        return self._graph()[0][0]

    @property
    def output(self):
        return self._graph()[1][0]

    @property
    def input_names(self):
        return [self._graph()[0][0]._node.layer.name]

    @property
    def output_names(self):
        return [self._layers[-1].name] if self._layers else []
