"""Functional models: ``Model(inputs, outputs)`` over the graph of layer calls between them.

The graph is found by walking back from the outputs through the nodes that layer calls
recorded (layers/node.py), then handed to the C++ core node by node: the core runs it, one
call per batch. A model used as a layer inside another is expanded into the outer graph, its
layers keeping their weights (shared buffers).
"""
from shenjing import _core, _functional_config, saving
from shenjing.layers.input import InputLayer
from shenjing.layers.node import flatten_tensors, layers_by_depth
from shenjing.models import Model


def _structure(x, what):
    """(flat list of tensors, the structure as given: tensor, list or dict)."""
    if isinstance(x, tuple):
        x = list(x)
    return flatten_tensors(x, what), x


def graph_nodes(inputs, outputs, model_name):
    """The nodes between ``inputs`` and ``outputs`` in topological order (every node after
    the nodes that made its inputs; ties in the order the outputs and inputs list them), or
    ValueError naming the tensor that no given input leads to."""
    sources = {id(t) for t in inputs}
    order, done = [], set()
    for out in outputs:
        stack = [(out, False)]
        while stack:
            t, expanded = stack.pop()
            if id(t) in sources:
                continue
            node = t._node
            if node is None or isinstance(node.layer, InputLayer):
                raise ValueError(
                    f"Graph disconnected: cannot find a path from the inputs of model "
                    f"'{model_name}' to {t!r}, which comes from "
                    f"{'Input ' + repr(node.layer.name) if node else 'outside any model'}. "
                    f"Pass that Input in `inputs` too, or build the outputs from the given "
                    f"inputs.")
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((t, True))
            for x in reversed(node.inputs):
                if id(x) not in sources and x._node is not None and id(x._node) not in done:
                    stack.append((x, False))
    return order


class Functional(Model):
    """A model of layers called on symbolic tensors: ``Model(inputs, outputs)``.

    ``inputs``: tensors from ``shenjing.Input`` (one, a list, or a dict by name); ``outputs``:
    tensors computed from them (one, a list, or a dict by name). Layers called on two
    tensors share their weights; a model cut out of another (an encoder from an autoencoder)
    uses the same weights as the model it came from.
    """

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"Model: unexpected keyword argument(s) {', '.join(sorted(kwargs))}.")
        self._init_model(name, "Functional", trainable)
        self.inputs, self._inputs_struct = _structure(inputs, "Model inputs")
        self.outputs, self._outputs_struct = _structure(outputs, "Model outputs")
        for t in self.inputs:
            if t._node is None or not isinstance(t._node.layer, InputLayer):
                raise ValueError(f"Model '{self.name}': every input must be a tensor made by "
                                 f"shenjing.Input(...); received {t!r}, which a layer computed.")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError(f"Model '{self.name}': the same Input is listed twice in inputs.")
        for t in self.outputs:
            if any(t is i for i in self.inputs):
                raise ValueError(f"Model '{self.name}': output {t!r} is one of the inputs; an "
                                 f"output must be computed by a layer (use layers.Identity()).")
        self._nodes = graph_nodes(self.inputs, self.outputs, self.name)
        layers, self._nodes_by_depth = layers_by_depth(self.inputs, self.outputs)
        # Primitive ops called directly in the model are nodes, not layers (as in Keras).
        self._layers = [la for la in layers if not getattr(la, "_is_op", False)]
        self._config_layers = layers  # the config lists the ops too
        if not trainable:
            self.trainable = False
        self._input_shapes = [t.shape[1:] for t in self.inputs]
        self._input_shape = self._input_shapes[0]  # the trainer's single-input path
        self._rollback_on_error(self._build)

    def build(self, input_shape=None):
        """A functional model is built from its inputs already (Keras's no-op)."""

    # -- structure -------------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    # -- configs and files -----------------------------------------------------------------
    def get_config(self):
        """Keras 3's functional config: name, trainable, the layers with their inbound nodes,
        input_layers and output_layers (_functional_config.py)."""
        return _functional_config.get_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None, _core=None):
        """A new model from ``get_config()`` output (Keras's too, for built-in layers);
        weights freshly initialized, or those of ``_core`` (a loaded core model)."""
        model = _functional_config.from_config(config, cls)
        if _core is not None:
            model._build(core=_core)
        return model

    def to_json(self, **kwargs):
        """The architecture as Keras JSON (``shenjing.models.model_from_json`` reads it)."""
        return _functional_config.to_json(self, **kwargs)

    # -- the core --------------------------------------------------------------------------
    def _build(self, init=True, core=None):
        """Hands the graph to a new C++ model and points every layer at its weights. With
        ``core`` (Model::load's, whose layer i holds the file's ``layers.<i>.*``) the layers
        attach to it instead, in that weight order, keeping its weights."""
        if core is not None:
            return self._adopt(core)
        self._build_graph(init)

    def _adopt(self, core):
        order = saving.weight_layers(self)
        problem = None
        if core.num_layers != len(order):
            problem = f"the core model has {core.num_layers} layers, the config {len(order)}"
        elif (core.num_inputs, core.num_outputs) != (len(self.inputs), len(self.outputs)):
            problem = "the core model's inputs or outputs differ from the config's"
        else:
            for i, layer in enumerate(order):
                if core.layer_name(i) != layer.name or \
                        tuple(core.layer_output_shape(i)) != layer.output_shape[1:]:
                    problem = f"layer {i} ('{layer.name}') differs between the core and config"
                    break
        if problem:
            raise ValueError(problem + ".")
        for i, layer in enumerate(order):
            # A layer already bound elsewhere (a nested model's own core) shares its buffer
            # with the loaded core: copy the loaded values into it.
            loaded = [v.copy() for _, v, _ in core.params(i)]
            layer._attach(core, i, init=False)
            for (_, value, _), w in zip(layer._views, loaded):
                value[...] = w
        self._set_core(core, order)

    def _graph(self):
        """(inputs, outputs, nodes) for expanding this model inside another."""
        return self.inputs, self.outputs, self._nodes
