"""Sequential models with the Keras 3 API: structure, configs and files, weights and summary.
Training and inference (compile, fit, evaluate, predict) live in trainer.py."""
import json
import os
import textwrap

import numpy as np

from shenjing import _config, _core, saving
from shenjing.layers.base import Layer, _auto_name, _shape_tuple
from shenjing.layers.input import InputLayer
from shenjing.trainer import Trainer


class Sequential(Trainer):
    """A linear stack of layers.

    ``Sequential([layers.Input((784,)), layers.Dense(10)])``, ``model.add(layer)``, or a
    subclass that calls ``self.add`` in ``__init__``. The input shape comes from an ``Input``,
    from ``input_shape=``/``input_dim=`` on the first layer, or from the first data seen.
    """

    def __init__(self, layers=None, trainable=True, name=None):
        self.name = name or _auto_name("Sequential")
        self._layers = []
        self._trainable = bool(trainable)
        self._input_shape = None
        self._core = None
        self.optimizer = self.loss = None
        self._metric_ids = []
        self._metrics = None
        self.stop_training = False
        self.history = None
        self._shuffle_rng = None  # drawn from the package generator on first use
        layers = list(layers or [])
        # A failed construction leaves the given layers as they were (reusable elsewhere).
        self._rollback_on_error(lambda: [self.add(layer) for layer in layers], layers)

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

    # -- structure -------------------------------------------------------------------------
    def add(self, layer):
        """Appends a layer (or sets the input shape when given ``Input(...)``). A layer the
        model cannot take raises and leaves the model as it was."""
        self._rollback_on_error(lambda: self._add(layer), [layer])

    def _add(self, layer):
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
        self._input_shape = tuple(self._input_shape)
        self._output_tail = tuple(core.output_shape)
        if self.optimizer is not None:
            self._compile_core()

    def _require_built(self, what):
        if self._core is None:
            raise ValueError(f"This model has not yet been built, so {what} is not available. "
                             "Give the first layer an input_shape, start with Input(shape), "
                             "call build(), or fit it on data first.")

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

    def _compile_config(self):
        ms = [m if isinstance(m, str) else _config.serialize(m) if hasattr(m, "get_config")
              else m.__name__ for m in self._metric_ids]
        return {"optimizer": _config.serialize(self.optimizer),
                "loss": _config.serialize(self.loss), "metrics": ms, "loss_weights": None,
                "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
                "jit_compile": False}

    def _training_state(self):
        """What a resumed fit needs besides weights and optimizer: the random streams."""
        rng = self._shuffle_rng.bit_generator.state if self._shuffle_rng else None
        streams = {str(i): self._core.random_state(i) for i in range(len(self._layers))
                   if self._core.random_state(i) is not None}
        return {"shuffle_rng": rng, "random_states": streams}

    def _restore_training_state(self, state):
        if state.get("shuffle_rng") is not None:
            rng = np.random.default_rng()
            rng.bit_generator.state = state["shuffle_rng"]
            self._shuffle_rng = rng
        for i, v in (state.get("random_states") or {}).items():
            self._core.set_random_state(int(i), int(v))

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
        """Prints the layers, output shapes and parameter counts, as Keras does."""
        self._require_built("summary()")
        out = print_fn or print
        widths = (33, 24, 15)
        heavy = "━"

        def row(cells, left, mid, right, align=("<", "<", ">")):
            # A cell too long for its column wraps at spaces onto more lines, as Keras's does.
            wrapped = [textwrap.wrap(c, w - 2, break_on_hyphens=False) or [""]
                       for c, w in zip(cells, widths)]
            lines = []
            for k in range(max(len(c) for c in wrapped)):
                parts = [c[k] if k < len(c) else "" for c in wrapped]
                lines.append(left + mid.join(f" {c:{a}{w - 2}} " for c, w, a in
                                             zip(parts, widths, align)) + right)
            return "\n".join(lines)

        def rule(l, m, r, ch):
            return l + m.join(ch * w for w in widths) + r

        out(f'Model: "{self.name}"')
        out(rule("┏", "┳", "┓", heavy))
        out(row(("Layer (type)", "Output Shape", "Param #"), "┃", "┃", "┃"))
        out(rule("┡", "╇", "┩", heavy))
        for i, layer in enumerate(self._layers):
            for line in row((f"{layer.name} ({type(layer).__name__})", str(layer.output_shape),
                             f"{layer.count_params():,}"), "│", "│", "│").split("\n"):
                out(line)
            if i < len(self._layers) - 1:
                out(rule("├", "┼", "┤", "─"))
        out(rule("└", "┴", "┘", "─"))
        total = self.count_params()

        def size(n):
            b = n * 4
            for unit in ("B", "KB", "MB", "GB"):
                if b < 1024 or unit == "GB":
                    return f"{b:.2f} {unit}"
                b /= 1024

        trainable = int(sum(w.size for w in self.trainable_weights))
        out(f" Total params: {total:,} ({size(total)})")
        out(f" Trainable params: {trainable:,} ({size(trainable)})")
        out(f" Non-trainable params: {total - trainable:,} ({size(total - trainable)})")


Model = Sequential
load_model = saving.load_model
model_from_json = saving.model_from_json
