"""Layer base class: a Python description of a C++ layer plus zero-copy views of its weights."""
import json
import re
from collections import defaultdict

import numpy as np

from shenjing import _config
from shenjing.layers._custom_api import CustomLayerAPI, capturing_init

_name_counts = defaultdict(int)


def _auto_name(cls_name):
    # Keras's to_snake_case: "MLPBlock" -> "mlp_block", "Conv2DTranspose" -> "conv2d_transpose".
    base = re.sub(r"\W+", "", cls_name)
    base = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", base)
    base = re.sub(r"([a-z])([A-Z])", r"\1_\2", base).lower()
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def _batched(shapes):
    shapes = [(None,) + tuple(s) for s in shapes]
    return shapes[0] if len(shapes) == 1 else shapes


def _shape_tuple(shape, what):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        items = tuple(shape)
    except TypeError:
        items = None
    if items is None or not all(s is None or isinstance(s, (int, np.integer)) and
                                not isinstance(s, bool) for s in items):
        raise TypeError(f"{what} must be a tuple of integers, received {shape!r}.")
    shape = tuple(None if s is None else int(s) for s in items)  # None: any size
    if any(s is not None and s <= 0 for s in shape):
        raise ValueError(f"{what} must contain positive integers, received {shape}.")
    return shape


class Layer(CustomLayerAPI):
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
        self._bound = None  # (core model, layer index) whose weight buffers this layer uses
        self._inbound_nodes = []  # one Node per call on symbolic tensors
        self._call_shapes = None  # per-sample input shapes of the first call
        self.input_shape = None
        self.output_shape = None

    # -- calls on symbolic tensors (the functional API) ------------------------------------
    def __call__(self, inputs, *args, training=None, mask=None, **kwargs):
        """On symbolic tensors (``shenjing.Input`` or a layer's output): records a node of the
        graph and returns the output tensor, with the shapes checked now. Merge layers take
        a list of tensors."""
        from shenjing.layers.node import KerasTensor, Node, flatten_tensors, is_symbolic
        if self._is_custom():
            from shenjing.layers import _custom
            return _custom.call(self, inputs, args, training, mask, kwargs)
        if args or kwargs or (mask is not None and not self._takes_mask):
            extra = ", ".join([repr(a) for a in args] + sorted(kwargs) +
                              (["mask"] if mask is not None else []))
            raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) takes only its "
                            f"inputs (and training=); received also {extra}.")
        if not is_symbolic(inputs):
            return self._eager_call(inputs, training)
        self._check_training_arg(training)
        tensors = flatten_tensors(inputs, f"The input of layer '{self.name}'")
        multi = getattr(self, "_multi_input", False)
        if multi and isinstance(inputs, KerasTensor):
            raise ValueError(f"A merge layer should be called on a list of inputs. Received: "
                             f"input_shape={inputs.shape} (not a list of shapes). Layer "
                             f"'{self.name}' ({type(self).__name__}).")
        if not multi and len(tensors) != 1:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) expects 1 input, "
                             f"but it received {len(tensors)} input tensors.")
        from shenjing.layers import _masking
        if mask is not None and not isinstance(mask, KerasTensor):
            raise TypeError(f"Layer '{self.name}': mask must be a symbolic tensor, received "
                            f"{mask!r:.100}.")
        in_mask = _masking.call_mask(self, tensors, mask)
        reads = [in_mask] if self._takes_mask and in_mask is not None else []
        out_shape = self._output_shape_for([t.shape[1:] for t in tensors + reads])
        out_mask = _masking.output_mask(self, inputs, in_mask)  # may refuse: before the node
        out = KerasTensor((None,) + out_shape, name=self.name)
        node = Node(self, inputs, tensors + reads, out)
        if reads:
            node.call_kwargs = {"mask": in_mask}
        out._keras_mask = out_mask
        return out

    # -- masks (see _masking.py) ------------------------------------------------------------
    supports_masking = False  # passes a mask on (compute_mask); Keras's attribute
    _takes_mask = False  # call() reads the mask (it becomes the node's second input)

    def compute_mask(self, inputs, previous_mask):
        """The mask of the output of a call on ``inputs`` whose mask is ``previous_mask``
        (Keras's default: unchanged)."""
        return previous_mask

    # -- custom layers (subclasses with call(); traced, see _custom.py) ---------------------
    @classmethod
    def _is_custom(cls):
        return cls.call is not Layer.call

    def _eager_call(self, x, training):
        """``layer(array)``: the layer on one batch of arrays, through a one-layer model (the
        core runs it; the layer keeps its weights, built on the first call)."""
        from shenjing.layers.input import Input
        from shenjing.models import Model
        if getattr(self, "_multi_input", False) or not hasattr(x, "shape") and \
                not isinstance(x, (list, tuple, float, int)):
            raise TypeError(
                f"Layer '{self.name}' ({type(self).__name__}) was called on "
                f"{type(x).__name__}; call it on an array (one batch) or on symbolic tensors "
                f"(shenjing.Input(...)) to build a model.")
        if training:
            raise ValueError(f"Layer '{self.name}': a call on arrays runs in inference mode; "
                             f"training=True needs a model's fit().")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim < 2:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) expects a batch of "
                             f"inputs (at least 2 axes: the batch first), received shape "
                             f"{x.shape}.")
        inp = Input(shape=x.shape[1:])
        out = self(inp)
        self._inbound_nodes = [n for n in self._inbound_nodes if n is not out._node]
        model = Model(inp, out)
        return model.predict(x, batch_size=max(len(x), 1), verbose=0)

    def _check_training_arg(self, training):
        if training is None or training is True:
            return
        from shenjing.layers import _custom
        if _custom.modes and training is _custom.modes[-1]:
            return  # passed down from a traced call(): the run's mode, switched in the core
        if training is not False:
            raise TypeError(f"training must be True, False or None, received {training!r}.")
        # A per-call inference mode is not in the core yet: refuse it where it would change
        # the result, and say how to get the same effect.
        from shenjing.layers.core import Dropout
        from shenjing.layers.noise import _Seeded  # GaussianNoise, SpatialDropout, ...
        from shenjing.layers.normalization import BatchNormalization
        for layer in self._sublayers():
            if isinstance(layer, (Dropout, _Seeded)) or getattr(layer, "_train_only", False) or (
                    isinstance(layer, BatchNormalization) and layer.trainable):
                raise ValueError(
                    f"Calling '{self.name}' with training=False is not supported when it holds "
                    f"{type(layer).__name__} layer '{layer.name}' that would behave "
                    f"differently. Set `.trainable = False` on it (BatchNormalization then runs "
                    f"in inference mode, as Keras does) and call it without training=.")

    def _sublayers(self):
        return [self]

    def _output_shape_for(self, shapes):
        """The per-sample output shape on per-sample input ``shapes``, computed by the core
        (ValueError naming the layer when they do not fit). A layer called again must get
        the shapes of its first call: its weights are built for them."""
        from shenjing import _core
        shapes = [tuple(s) for s in shapes]
        if self._call_shapes is not None:
            if shapes != self._call_shapes:
                raise ValueError(
                    f"Layer '{self.name}' ({type(self).__name__}) was first called on input "
                    f"shape(s) {_batched(self._call_shapes)} and cannot be called again on "
                    f"{_batched(shapes)}: a shared layer needs the same input shapes at every "
                    f"call.")
            return self._call_output
        from shenjing import _dynamic
        spec = self._spec(seeded=False)
        out, params = _dynamic.infer(lambda c: _core.layer_shapes(spec, c), shapes)
        if params[0] != params[-1]:  # the weights differ between the two probe lengths
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}): its weights would depend on an "
                f"axis of unknown size (None) of its input {_batched(shapes)}; give that axis "
                f"a size in Input(shape=...) (Keras: the last dimension of the inputs to a "
                f"Dense layer should be defined).")
        self._call_shapes, self._call_output = shapes, out
        if self.output_shape is None:
            data = shapes[:1] if self._takes_mask else shapes  # a mask is not an input shape
            self.input_shape = (None,) + data[0] if len(data) == 1 and not getattr(
                self, "_multi_input", False) else [(None,) + s for s in data]
            self.output_shape = (None,) + out
        return out

    def _node_attribute(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"The layer {self.name} has never been called and thus has "
                                 f"no defined {what}.")
        node = self._inbound_nodes[0]
        if what == "output":
            return node.output
        return node.call_args

    @property
    def input(self):
        """The symbolic input of the layer's first call (a list for merge layers)."""
        return self._node_attribute("input")

    @property
    def output(self):
        """The symbolic output of the layer's first call."""
        return self._node_attribute("output")

    # -- building, called by the model --------------------------------------------------
    def _spec(self, seeded=True):
        """The JSON the C++ layer is built from (without drawing random seeds when not
        ``seeded``: enough to know its shapes)."""
        config = self._core_config() if seeded else self.get_config()
        return json.dumps({"class_name": self._core_class_name(), "config": config})

    def _core_class_name(self):
        """The core layer that computes this one (its Keras class name)."""
        return type(self).__name__

    def _add_to(self, core):
        """Appends the C++ layer to ``core`` (a shenjing._core.Model)."""
        core.add_layer(self._spec())

    def _core_config(self):
        """The config the C++ layer is built from (the Keras config unless overridden)."""
        return self.get_config()

    def _initial_values(self, name, shape):
        """Initial value for parameter ``name`` of ``shape`` (layers with weights override)."""
        raise NotImplementedError

    def _attach(self, core, index, input_shape=None, init=True):
        """Points this layer at layer ``index`` of ``core``. A layer already in another core
        model with weights of the same shapes keeps them: the new core uses the same buffers
        (one set of weights in every model, as Keras). Otherwise the weights are initialized
        (left as the core made them when not ``init``: a load fills them next)."""
        shapes = [tuple(v.shape) for _, v, _ in core.params(index)]
        old = self._bound
        if old is not None and old[0] is core and old[1] != index:
            # Two core layers of one model cannot share weights: a layer wrapped in
            # TimeDistributed there and also used on its own (see layers/time_distributed.py).
            raise ValueError(f"Layer '{self.name}' is used both inside TimeDistributed and on its "
                             f"own in the same model; shenjing cannot share its weights between "
                             f"the two. Use two layers, or wrap every use in TimeDistributed.")
        if old is not None and shapes and shapes == [tuple(v.shape) for v in self.weights] \
                and old[0] is not core:
            core.share_params(index, old[0], old[1])
            init = False
        self._views = core.params(index)
        self._bound = (core, index)
        self._trainable_flags = list(core.params_trainable(index))
        if input_shape is not None:
            self.input_shape = (None,) + tuple(input_shape)
        if self._call_shapes is None:  # a symbolic call's shapes keep their unknown axes
            self.output_shape = (None,) + tuple(core.layer_output_shape(index))
        if init:
            for pname, value, _ in self._views:
                value[...] = self._initial_values(pname, value.shape)
        for pname, value, _ in self._views:
            setattr(self, pname, value)

    @property
    def built(self):
        return self.__dict__.get("_built", False) or self.output_shape is not None

    @built.setter
    def built(self, value):
        self._built = bool(value)

    # -- weights --------------------------------------------------------------------------
    @property
    def weights(self):
        if self._is_custom():
            return self._own_variables() + [w for sub in self._tracked_layers()
                                            for w in sub.weights]
        return [v for _, v, _ in self._views]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        if self._is_custom():
            return [v for v in self._own_variables() if v.trainable] + [
                w for sub in self._tracked_layers() for w in sub.trainable_weights]
        return [v for (_, v, _), t in zip(self._views, self._trainable_flags) if t]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        if self._is_custom():
            return [v for v in self._own_variables() if not v.trainable] + [
                w for sub in self._tracked_layers() for w in sub.non_trainable_weights]
        return [v for (_, v, _), t in zip(self._views, self._trainable_flags) if not t]

    def get_weights(self):
        return [np.array(v) for v in self.weights]

    def set_weights(self, weights):
        if self._is_custom():
            return self._set_custom_weights(weights)
        self._set_view_weights(weights)

    def _set_view_weights(self, weights):
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
        return int(sum(np.asarray(v).size for v in self.weights))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        from shenjing import _registry
        if _registry.is_custom_class(cls):
            cls.__init__ = capturing_init(cls.__init__)

    def get_config(self):
        """The constructor arguments, as a JSON-ready dict (``cls.from_config`` inverts it).
        A custom layer that does not override it gets the arguments its constructor was
        called with (Keras 3's automatic config), when they are plain values."""
        base = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        captured = self.__dict__.get("_init_args")
        if captured is not None and self._is_custom():
            return {**base, **captured}
        return {**base, **_config.init_config(self, skip=("name", "trainable", "dtype"))}

    @classmethod
    def from_config(cls, config):
        from shenjing import _registry
        if _registry.is_custom_class(cls):
            return _config.call_with_accepted(cls, config)
        return _config.from_config(cls, config, f"{cls.__name__} config")

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"

