"""Functional models as Keras 3 configs (keras/src/models/functional.py's get_config and
functional_from_config), so a config written by Keras for built-in layers loads here and ours
loads in Keras.

A config lists the layers in ``model.layers`` order, each with ``name`` and ``inbound_nodes``:
one entry per call of the layer inside this model, ``{"args": [...], "kwargs": {}}``, where each
input tensor is ``{"class_name": "__keras_tensor__", "config": {"shape", "dtype",
"keras_history": [layer name, node index, tensor index]}}`` and the node index counts only the
calls that belong to this model. ``input_layers`` and ``output_layers`` give the inputs and
outputs as ``[layer name, node index, tensor index]`` in the structure they were passed in
(one, a list or a dict). Keras numbers a nested Functional's calls from 1 there (an old
convention: Keras 2 gave each Functional a node of its own), but from 0 in ``inbound_nodes``.
"""
import json
from collections import deque

from shenjing import _config
from shenjing.layers.base import Layer
from shenjing.layers.input import InputLayer
from shenjing.layers.node import KerasTensor, flatten_tensors, node_position

MAX_NESTING = 16  # models inside models inside ... (the C++ loader has the same cap)
MAX_NODES = 1 << 16  # layer calls in one config


def _is_functional(layer):
    from shenjing.functional import Functional
    return isinstance(layer, Functional)


# -- writing ---------------------------------------------------------------------------------
def serialize_layer(layer):
    """The Keras dict of a layer or of a model used as a layer."""
    from shenjing.sequential import Sequential
    if _is_functional(layer):
        return {"module": "keras.src.models.functional", "class_name": "Functional",
                "config": layer.get_config(), "registered_name": "Functional"}
    if isinstance(layer, Sequential):
        return {"module": "keras", "class_name": "Sequential", "config": layer.get_config(),
                "registered_name": None,
                "build_config": {"input_shape": [None, *layer._input_shape]}}
    return _config.serialize(layer)


def get_config(model):
    own = {id(n) for n in model._nodes} | {id(t._node) for t in model.inputs}

    def node_index(node):
        """Keras's index of ``node`` among its layer's calls inside this model."""
        layer_nodes = node.layer._inbound_nodes[:node_position(node)]
        return sum(1 for n in layer_nodes if id(n) in own)

    def structure(x, leaf):
        if isinstance(x, KerasTensor):
            return leaf(x)
        if isinstance(x, dict):
            return {k: structure(v, leaf) for k, v in x.items()}
        return [structure(v, leaf) for v in x]

    def keras_tensor(t):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(t.shape), "dtype": t.dtype,
                           "keras_history": [t._node.layer.name, node_index(t._node),
                                             t._index]}}

    def io_ref(t):
        return [t._node.layer.name, node_index(t._node) + _is_functional(t._node.layer),
                t._index]

    layers = []
    for layer in getattr(model, "_config_layers", model.layers):
        spec = serialize_layer(layer)
        spec["name"] = layer.name
        op = getattr(layer, "_is_op", False)  # a constant op is called on no tensors
        spec["inbound_nodes"] = [{"args": [structure(n.call_args, keras_tensor)],
                                  "kwargs": {k: structure(v, keras_tensor)
                                             for k, v in n.call_kwargs.items()}}
                                 for n in layer._inbound_nodes
                                 if id(n) in own and (n.inputs or op)]
        layers.append(spec)
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": structure(model._inputs_struct, io_ref),
            "output_layers": structure(model._outputs_struct, io_ref)}


def to_json(model, **kwargs):
    return json.dumps({"module": "keras.src.models.functional", "class_name": "Functional",
                       "config": get_config(model), "registered_name": "Functional",
                       "build_config": {"input_shape": None}}, **kwargs)


# -- reading ---------------------------------------------------------------------------------
def _layer_classes():
    from shenjing import layers as layers_mod
    return {c.__name__: c for c in vars(layers_mod).values() if isinstance(c, type)
            and issubclass(c, Layer) and c not in (Layer, InputLayer)}


def _input_layer(spec, name):
    cfg = spec.get("config") or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"InputLayer '{name}': 'config' must be a dict.")
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    if not isinstance(shape, list) or len(shape) < 2:
        raise ValueError(f"InputLayer '{name}': 'batch_shape' must be a list [null, d1, ...].")
    if cfg.get("sparse") or cfg.get("ragged") or cfg.get("optional"):
        raise ValueError(f"InputLayer '{name}': sparse, ragged and optional inputs are not "
                         f"supported.")
    return InputLayer(shape=shape[1:], dtype=cfg.get("dtype"), name=name)


def _make_layer(spec, name, depth):
    from shenjing.functional import Functional
    from shenjing.sequential import Sequential
    cls = spec.get("class_name")
    if cls == "InputLayer":
        return _input_layer(spec, name)
    if cls == "Operation":
        from shenjing.ops._trace import Operation
        cfg = spec.get("config")
        if not isinstance(cfg, dict):
            raise ValueError(f"operation '{name}': 'config' must be a dict.")
        return Operation.from_config(cfg)
    if cls in ("Functional", "Model", "Sequential"):
        if depth >= MAX_NESTING:
            raise ValueError(f"model '{name}' is nested more than {MAX_NESTING} models deep.")
        cfg = spec.get("config")
        if not isinstance(cfg, dict):
            raise ValueError(f"model '{name}': 'config' must be a dict.")
        if cls == "Sequential":
            return Sequential.from_config(cfg)
        return from_config(cfg, Functional, depth + 1)
    return _config.deserialize(spec, _layer_classes(), f"layer '{name}'")


def _parse_args(node, where):
    """The call structure of one inbound node, tensors as (layer name, node, tensor) refs."""
    if isinstance(node, list):  # the legacy form: [[name, node, tensor, kwargs], ...]
        refs = []
        for item in node:
            if not isinstance(item, list) or len(item) not in (3, 4):
                raise ValueError(f"{where}: a legacy inbound node entry must be [layer name, "
                                 f"node index, tensor index(, kwargs)].")
            refs.append(_ref(item[:3], where))
        if not refs:
            raise ValueError(f"{where}: an inbound node with no inputs.")
        return refs[0] if len(refs) == 1 else refs
    if not isinstance(node, dict) or not isinstance(node.get("args"), list):
        raise ValueError(f"{where}: an inbound node must be {{'args': [...], 'kwargs': {{}}}}.")
    kwargs = node.get("kwargs") or {}
    if not isinstance(kwargs, dict) or any(v is not None for k, v in kwargs.items()
                                           if k not in _TENSOR_KWARGS):
        raise ValueError(f"{where}: call arguments besides the inputs, a mask and initial "
                         f"states are not supported (kwargs "
                         f"{sorted(kwargs) if isinstance(kwargs, dict) else kwargs}).")
    if len(node["args"]) != 1:
        raise ValueError(f"{where}: a layer call takes one argument (its inputs), the config "
                         f"gives {len(node['args'])}.")
    args = _tensor_structure(node["args"][0], where)
    tensors = {k: _tensor_structure(v, where) for k, v in kwargs.items()
               if k in _TENSOR_KWARGS and v is not None}
    return _Call((args, tensors)) if tensors else args


# Call arguments that are tensors, as Keras writes them in "kwargs" (masks, recurrent states).
_TENSOR_KWARGS = ("mask", "initial_state")


class _Call(tuple):
    """(inputs, {argument: tensors}) of a call whose config passes tensors in "kwargs"."""


def _tensor_structure(x, where):
    if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":
        cfg = x.get("config")
        if not isinstance(cfg, dict):
            raise ValueError(f"{where}: a __keras_tensor__ needs a 'config'.")
        return _ref(cfg.get("keras_history"), where)
    if isinstance(x, dict) and "class_name" not in x and x:
        return {k: _tensor_structure(v, where) for k, v in x.items()}
    if isinstance(x, list):  # [] only for an operation that reads no tensor (a constant)
        return [_tensor_structure(v, where) for v in x]
    raise ValueError(f"{where}: layer inputs must be tensors (or lists or dicts of them), "
                     f"received {x!r:.100}.")


class _Ref(tuple):
    """(layer name, node index, tensor index) of a tensor in a config."""


def _ref(history, where):
    if not isinstance(history, list) or len(history) != 3 or \
            not isinstance(history[0], str) or \
            not all(isinstance(i, int) and not isinstance(i, bool) for i in history[1:]):
        raise ValueError(f"{where}: keras_history must be [layer name, node index, tensor "
                         f"index], received {history!r:.100}.")
    if history[1] < 0 or history[2] < 0:
        raise ValueError(f"{where}: no tensor {history!r:.100}.")
    return _Ref(history)


def _refs_in(structure):
    if isinstance(structure, _Ref):
        return [structure]
    if isinstance(structure, _Call):
        return _refs_in(structure[0]) + [r for v in structure[1].values() for r in _refs_in(v)]
    values = structure.values() if isinstance(structure, dict) else structure
    return [r for v in values for r in _refs_in(v)]


def _resolve(structure, made):
    if isinstance(structure, _Ref):
        out = made[structure[0]][structure[1]]
        outs = out if isinstance(out, (list, tuple)) else [out]
        if structure[2] >= len(outs):
            raise ValueError(f"no tensor {list(structure)!r:.100}: tensor index "
                             f"{structure[2]} of a call of layer '{structure[0]:.80}', which "
                             f"made {len(outs)} tensor(s).")
        return outs[structure[2]]
    if isinstance(structure, dict):
        return {k: _resolve(v, made) for k, v in structure.items()}
    return [_resolve(v, made) for v in structure]


def from_config(config, cls, depth=0):
    """A ``cls`` (Functional) model from a Keras functional config.

    Layers are created first; then their calls run once the tensors they read exist (a shared
    layer's later call can read a layer listed after it), as Keras's queue does. A config
    whose calls can never all run (a cycle, a tensor no call makes) raises ValueError."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("A Functional config needs a 'layers' list.")
    for key in ("input_layers", "output_layers"):
        if key not in config:
            raise ValueError(f"A Functional config needs '{key}'.")
    made = {}  # layer name -> output tensors of its calls so far
    layers = {}
    pending = []  # [name, layer, deque of parsed calls]
    total = 0
    for k, spec in enumerate(config["layers"]):
        if not isinstance(spec, dict):
            raise ValueError(f"layer {k}: expected a dict, received {spec!r:.100}.")
        name = spec.get("name", (spec.get("config") or {}).get("name")
                        if isinstance(spec.get("config"), dict) else None)
        if not isinstance(name, str):
            raise ValueError(f"layer {k}: missing 'name'.")
        if name in layers:
            raise ValueError(f"the name '{name:.80}' is used by two layers; all layer names "
                             f"in a model must be unique.")
        layer = layers[name] = _make_layer(spec, name, depth)
        nodes = spec.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ValueError(f"layer '{name}': 'inbound_nodes' must be a list.")
        total += len(nodes)
        if total > MAX_NODES:
            raise ValueError(f"the config has more than {MAX_NODES} layer calls.")
        if isinstance(layer, InputLayer):
            if nodes:
                raise ValueError(f"InputLayer '{name}' cannot have inbound nodes.")
            made[name] = [layer.output]
            continue
        if not nodes:
            raise ValueError(f"layer '{name}' is never called (it has no inbound nodes).")
        calls = deque(_parse_args(n, f"layer '{name}'") for n in nodes)
        made[name] = []
        pending.append((name, layer, calls))
    for reader, _, calls in pending:
        for call in calls:
            for ref in _refs_in(call):
                if ref[0] not in layers:
                    raise ValueError(f"layer '{reader}' reads a tensor of unknown layer "
                                     f"'{ref[0]:.80}'.")
    # Each layer runs its calls in order; one that waits for a tensor not made yet is woken
    # when that call of the producing layer has run.
    waiting = {}
    queue = deque(pending)
    while queue:
        name, layer, calls = item = queue.popleft()
        while calls:
            missing = next((r for r in _refs_in(calls[0]) if r[1] >= len(made[r[0]])), None)
            if missing is not None:
                waiting.setdefault((missing[0], missing[1]), []).append(item)
                break
            call = calls.popleft()
            if isinstance(call, _Call):
                out = layer(_resolve(call[0], made),
                            **{k: _resolve(v, made) for k, v in call[1].items()})
            else:
                out = layer(_resolve(call, made))
            made[name].append(out)
            queue.extend(waiting.pop((name, len(made[name]) - 1), ()))
    stuck = [name for name, _, calls in pending if calls]
    if stuck:
        raise ValueError(f"Invalid Functional model configuration: the graph has loops or "
                         f"reads tensors no layer call makes. The calls of these layers "
                         f"cannot be resolved: {', '.join(stuck)[:300]}.")

    def io_tensor(ref):
        if not isinstance(ref, list) or len(ref) != 3 or not isinstance(ref[0], str):
            raise ValueError(f"input_layers/output_layers entries must be [layer name, node "
                             f"index, tensor index], received {ref!r:.100}.")
        name = ref[0]
        if name not in layers:
            raise ValueError(f"input_layers/output_layers name unknown layer '{name:.80}'.")
        index = ref[1] - 1 if _is_functional(layers[name]) else ref[1]
        r = _ref([name, index, ref[2]], "input_layers/output_layers")
        if r[1] >= len(made[name]):
            raise ValueError(f"input_layers/output_layers: layer '{name}' has no call "
                             f"{ref[1]}.")
        return _resolve(r, made)

    def io_structure(x):
        if isinstance(x, list) and len(x) == 3 and isinstance(x[0], str):
            return io_tensor(x)
        if isinstance(x, dict) and x:
            return {k: io_structure(v) for k, v in x.items()}
        if isinstance(x, list) and x:
            return [io_structure(v) for v in x]
        raise ValueError(f"input_layers/output_layers: expected [layer name, node index, "
                         f"tensor index] or a list or dict of them, received {x!r:.100}.")

    inputs = io_structure(config["input_layers"])
    outputs = io_structure(config["output_layers"])
    listed = {id(t) for t in flatten_tensors(inputs, "input_layers")}
    for name, layer in layers.items():
        if isinstance(layer, InputLayer) and id(layer.output) not in listed:
            raise ValueError(f"InputLayer '{name}' is not one of input_layers.")
    trainable = config.get("trainable", True)
    return cls(inputs, outputs, name=config.get("name"),
               trainable=True if trainable is None else bool(trainable))
