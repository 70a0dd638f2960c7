"""Models with the Keras 3 API. ``Model`` holds what every model shares (weights, files,
summary; training comes from trainer.py); ``Sequential`` (sequential.py) and the functional
``Model(inputs, outputs)`` (functional.py) build its graph."""
import json
import os

import numpy as np

from shenjing import saving
from shenjing.layers.base import Layer, _auto_name
from shenjing._graph_model import GraphModel
from shenjing.trainer import Trainer


class Model(Trainer, GraphModel):
    """A model: ``Model(inputs, outputs)`` builds a functional model from symbolic tensors
    (see ``shenjing.Input``); ``Sequential`` is the stack of layers."""

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            return Functional.__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        """A subclassed model (Functional and Sequential have their own constructors). A
        subclass whose __init__ passes (inputs, outputs) up is a functional model, as in Keras:
        Functional takes Model's place among its bases."""
        from shenjing import _subclassed
        if _subclassed.functional_arguments(args, kwargs):
            _subclassed.inject_functional(type(self))
            Functional.__init__(self, *args, **kwargs)
            return
        _subclassed.init(self, args, kwargs)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        from shenjing import _registry
        from shenjing.layers._custom_api import capturing_init
        if _registry.is_custom_class(cls):
            cls.__init__ = capturing_init(cls.__init__)

    def get_config(self):
        """A subclassed model's config: the (plain) arguments its constructor was called with
        (override to add more, as in Keras)."""
        return {"name": self.name, "trainable": self.trainable,
                **self.__dict__.get("_init_args", {})}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from shenjing import _config
        return _config.call_with_accepted(cls, config)

    def to_json(self, **kwargs):
        """The model's class, config and input shapes as Keras JSON (a subclassed model loads
        with its class registered or passed in custom_objects)."""
        from shenjing import _registry
        self._require_built("to_json()")
        return json.dumps({"module": type(self).__module__, "class_name": type(self).__name__,
                           "config": self.get_config(),
                           "registered_name": _registry.get_registered_name(self),
                           "build_config": {"input_shape": [[None, *s] for s in
                                                            self._input_shapes]}}, **kwargs)

    def call(self, inputs, training=None):
        raise NotImplementedError(f"Model {type(self).__name__} has no call(): subclass Model "
                                  f"with a call(), or use Model(inputs, outputs).")

    def _build(self, init=True, core=None):
        from shenjing import _subclassed
        if core is not None:
            raise ValueError("A subclassed model cannot be rebuilt from a file's graph; "
                             "recreate it in Python and use load_weights().")
        self._rollback_on_error(lambda: _subclassed.build(self, init))

    def build(self, input_shape=None):
        """Builds a subclassed model for ``input_shape`` (with the batch axis, e.g.
        ``(None, 784)``; a list of shapes for several inputs)."""
        several = isinstance(input_shape, list) and input_shape and \
            isinstance(input_shape[0], (list, tuple))
        shapes = input_shape if several else [input_shape]
        self._input_shapes = [tuple(s)[1:] for s in shapes]
        self._input_shape = self._input_shapes[0]
        self._build()

    @property
    def layers(self):
        from shenjing import _subclassed
        return _subclassed.tracked_layers(self)

    def add_loss(self, loss):
        from shenjing.layers import _custom
        _custom.add_loss(self, loss)

    def _init_model(self, name, default_name, trainable):
        """The state every model starts with: name, no core yet, not compiled."""
        self.name = name or _auto_name(default_name)
        self._trainable = bool(trainable)
        self._core = None
        self.optimizer = self.loss = None
        self._metric_ids = []
        self._metrics = None
        self.stop_training = False
        self.history = None
        self._shuffle_rng = None  # drawn from the package generator on first use
        self._inbound_nodes = []  # calls of this model inside other models

    # -- a model used as a layer -------------------------------------------------------------
    def __call__(self, x, training=None, mask=None):
        """On symbolic tensors: this model as one layer of another model (its layers keep
        their weights). On arrays: ``predict`` on one batch."""
        from shenjing.layers.node import is_symbolic
        if is_symbolic(x) or isinstance(x, dict) and x and is_symbolic(list(x.values())):
            self._check_training_arg(training)
            return self._symbolic_call(x)
        from shenjing.layers import preprocessing  # an augmentation pipeline augments, as Keras
        out = preprocessing.pipeline_on_arrays(self, x, training)
        return self._call_on_arrays(x, training) if out is None else out

    def _check_training_arg(self, training):
        Layer._check_training_arg(self, training)

    def _sublayers(self):
        return [sub for layer in self._layers for sub in layer._sublayers()]

    def _check_nested(self):
        if len(self.outputs) != 1:
            raise ValueError(f"Model '{self.name}' has {len(self.outputs)} outputs; a model "
                             f"used as a layer must have one output for now.")

    def _symbolic_call(self, inputs):
        """One node of the calling graph whose output has this model's output shape."""
        from shenjing.layers.node import KerasTensor, Node, flatten_tensors
        tensors = flatten_tensors(inputs, f"The input of model '{self.name}'")
        if any(t._keras_mask is not None for t in tensors):
            raise ValueError(f"Model '{self.name}' is called on a tensor that carries a mask "
                             f"(from Embedding(mask_zero=True) or Masking); a model used as a "
                             f"layer does not take masks in shenjing yet.")
        self._prepare_call([t.shape[1:] for t in tensors])
        self._check_nested()
        if len(tensors) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s), but it "
                             f"received {len(tensors)} input tensors.")
        for t, want in zip(tensors, self.inputs):
            if t.shape[1:] != want.shape[1:]:
                raise ValueError(f"Input of model '{self.name}' is incompatible: expected "
                                 f"shape {want.shape}, received {t.shape}.")
        if self.outputs[0]._keras_mask is not None:
            raise ValueError(f"The output of model '{self.name}' carries a mask; a model used "
                             f"as a layer does not pass masks on in shenjing yet.")
        out = KerasTensor(self.outputs[0].shape, name=self.name)
        Node(self, inputs, tensors, out)
        return out

    def _prepare_call(self, shapes):
        """Builds the model for these per-sample input shapes if it is not built yet."""
        if self._core is None and type(self)._build is Model._build:
            self._input_shapes = [tuple(s) for s in shapes]
            self._input_shape = self._input_shapes[0]
            self._build()

    # -- inputs and outputs of a graph model (functional and subclassed) ---------------------
    @property
    def input_names(self):
        if not hasattr(self, "_inputs_struct"):
            return []  # a subclassed model not built yet
        if isinstance(self._inputs_struct, dict):
            return list(self._inputs_struct)
        return [t._node.layer.name for t in self.inputs]

    @property
    def output_names(self):
        if not hasattr(self, "_outputs_struct"):
            return []
        if isinstance(self._outputs_struct, dict):
            return list(self._outputs_struct)
        return [t._node.layer.name for t in self.outputs]

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def _rollback_on_error(self, change, new_layers=()):
        """Runs ``change()``; if it raises, puts the model, its layers (and ``new_layers``)
        and the optimizer's core link back exactly as they were, so a failed add, pop,
        build or compile changes nothing (the old C++ model is still referenced, untouched:
        a rebuild always fills a new one)."""
        model_vars, layers = dict(vars(self)), list(self._layers)
        layer_vars = [(layer, dict(vars(layer))) for layer in
                      list(self._layers) + [l for l in new_layers if isinstance(l, Layer)]]
        optimizer = self.optimizer
        optimizer_core = getattr(optimizer, "_model", None)
        try:
            return change()
        except BaseException:
            vars(self).clear()
            vars(self).update(model_vars)
            self._layers = layers
            for layer, saved in layer_vars:
                vars(layer).clear()
                vars(layer).update(saved)
            if optimizer is not None:
                optimizer._model = optimizer_core
            raise

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """As Keras: sets ``trainable`` on every layer; training sees it at the next compile()."""
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = bool(value)

    @property
    def built(self):
        return self._core is not None

    def _require_built(self, what):
        if self._core is None:
            raise ValueError(f"This model has not yet been built, so {what} is not available. "
                             "Give the first layer an input_shape, start with Input(shape), "
                             "call build(), or fit it on data first.")

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Saves architecture, weights and optimizer state to one file (safetensors, whatever
        the extension, e.g. ``model.keras``); ``shenjing.models.load_model`` restores it.
        The file is written beside the target and renamed into place, so a failed save leaves
        any previous file intact."""
        saving.save_model(self, filepath, overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Saves the weights alone (e.g. ``model.weights.h5``; the content is safetensors)."""
        saving.save_weights(self, filepath, overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Loads weights from ``save_weights`` or ``save`` output into this (built) model.

        Layers are matched by position; with ``skip_mismatch`` a layer whose weights are
        missing or shaped differently keeps its own."""
        self._require_built("load_weights()")
        path = os.fspath(filepath)
        _, tensors = saving.read(path)
        saving.assign_weights(self, tensors, path, skip_mismatch)

    def _training_state(self):
        """What a resumed fit needs besides weights and optimizer: the random streams."""
        rng = self._shuffle_rng.bit_generator.state if self._shuffle_rng else None
        index = saving.core_weight_index(self)  # keyed by weight index: the file's numbering
        streams = {str(index[i]): self._core.random_state(i)
                   for i in range(self._core.num_layers)
                   if self._core.random_state(i) is not None}
        return {"shuffle_rng": rng, "random_states": streams}

    def _restore_training_state(self, state):
        if state.get("shuffle_rng") is not None:
            rng = np.random.default_rng()
            rng.bit_generator.state = state["shuffle_rng"]
            self._shuffle_rng = rng
        core_of = {w: i for i, w in reversed(list(enumerate(saving.core_weight_index(self))))}
        for w, v in (state.get("random_states") or {}).items():
            self._core.set_random_state(core_of[int(w)], int(v))

    # -- export ------------------------------------------------------------------------------
    def export_onnx(self, filepath, opset=None):
        """Writes the model as an ONNX graph (needs the ``onnx`` package: ``pip install onnx``).

        The graph takes float32 input of shape ``(batch, *input_shape)`` named ``input`` and
        gives what ``predict`` gives, named ``output``. Returns ``filepath``.
        """
        from shenjing import _onnx
        self._require_built("export_onnx()")
        return _onnx.export(self, filepath, opset=opset)

    def export(self, filepath, format="onnx", verbose=True):
        """Keras 3's ``model.export``; only ``format='onnx'`` is available."""
        if format != "onnx":
            raise ValueError(f"export: format={format!r} is not supported; use 'onnx'.")
        return self.export_onnx(filepath)

    # -- weights and reporting ---------------------------------------------------------------
    def get_weights(self):
        """Copies of every weight array, layer by layer."""
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Sets every weight from a list shaped like ``get_weights()``."""
        self._require_built("set_weights")
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"set_weights expects {expected} arrays, received {len(weights)}.")
        i = 0
        for layer in self._layers:
            k = len(layer.weights)
            layer.set_weights(weights[i:i + k])
            i += k

    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def count_params(self):
        self._require_built("count_params()")
        return sum(layer.count_params() for layer in self._layers)

    def get_layer(self, name=None, index=None):
        """The layer called ``name`` or at position ``index`` (Keras's errors for neither,
        both or an index out of range)."""
        if index is not None and name is not None:
            raise ValueError(f"Provide only a layer name or a layer index. Received: "
                             f"index={index}, name={name}.")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"get_layer: index must be an integer, received {index!r}.")
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self._layers)} layers.")
            return self._layers[index]
        if name is None:
            raise ValueError("Provide either a layer name or layer index at `get_layer`.")
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}.")

    def summary(self, line_length=None, positions=None, print_fn=None):
        """Prints the layers, output shapes and parameter counts as Keras 3 does (with a
        "Connected to" column for a functional model that is not a plain chain); each line
        goes to ``print_fn`` (default ``print``)."""
        from shenjing import _summary
        self._require_built("summary()")
        _summary.print_summary(self, print_fn)


load_model = saving.load_model
model_from_json = saving.model_from_json


from shenjing.functional import Functional  # noqa: E402  (they subclass Model)
from shenjing.sequential import Sequential  # noqa: E402

from shenjing._cloning import clone_model  # noqa: E402

__all__ = ["Model", "Sequential", "Functional", "load_model", "model_from_json",
           "clone_model"]
