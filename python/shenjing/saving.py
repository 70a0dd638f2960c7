"""Model files: one safetensors file (a JSON header, then raw little-endian tensors) that no
load can turn into running code. ``model.save`` writes the architecture as Keras JSON, every
weight, and the optimizer and random-stream state, so training resumes exactly where it
stopped; ``save_weights`` writes the weights alone. The C++ core reads the same files
(``shenjing::Model::load``). Layout: docs/ARCHITECTURE.md, "Model files".
"""
import contextlib
import json
import os
import struct

import numpy as np

from shenjing import _atomic, _core, _registry

FORMAT = "shenjing"
FORMAT_VERSION = "1"
_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}


# -- the container ---------------------------------------------------------------------------
def write_safetensors(path, metadata, tensors):
    """Writes ``tensors`` ({name: array}) and ``metadata`` ({str: str}) to ``path`` atomically."""
    header = {"__metadata__": metadata}
    arrays, offset = [], 0
    for name, a in tensors.items():
        a = np.require(a, requirements="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        arrays.append(a)
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # keeps the tensors 8-byte aligned, as the format advises

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for a in arrays:
            f.write(memoryview(a.astype(a.dtype.newbyteorder("<"), copy=False)).cast("B"))

    _atomic.atomic_write(path, write)


def read(path):
    """(metadata, {name: array}) of a shenjing file; ValueError for anything else or broken.

    The C++ reader checks every size and offset against the file before it allocates."""
    path = os.fspath(path)
    meta, tensors = _core.read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"Cannot load {path!r}: it is a safetensors file, but not one written "
                         f"by shenjing (no 'format': 'shenjing' in its metadata).")
    return meta, tensors


def parse_json(text, path, key):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"Cannot load {path!r}: its {key} is not valid JSON ({e}).") from None


# -- weights ---------------------------------------------------------------------------------
def _weight_name(index, pname):
    return f"layers.{index}.{pname}"


def weight_layers(model, _depth=0):
    """The layers whose weights a file names ``layers.<i>.<param>``, i counting them in this
    order: ``model.layers`` without the InputLayers (with the primitive ops a functional
    model's config lists), a nested model's layers inline where it stands (in its own
    ``layers`` order), a custom layer's Variables and then its sub-layers'. Every other layer
    counts, weights or not. The C++
    loader (io/functional_config.cpp) numbers a config's layers the same way."""
    from shenjing.layers.base import Layer
    from shenjing.layers.input import InputLayer
    out = []
    for layer in getattr(model, "_config_layers", model.layers):  # ops count, as in configs
        if isinstance(layer, InputLayer):
            continue
        if isinstance(layer, Layer) and layer._is_custom():
            out += _custom_weight_layers(layer)
        else:
            out += [layer] if isinstance(layer, Layer) else weight_layers(layer, _depth + 1)
    return out


def _custom_weight_layers(layer):
    """A custom layer's weight holders: the nodes of its Variables (those its call used), then
    its sub-layers', in tracking order."""
    from shenjing.layers.base import Layer
    out = [v._node for v in layer._own_variables() if v._node is not None]
    for sub in layer._tracked_layers():
        if isinstance(sub, Layer) and sub._is_custom():
            out += _custom_weight_layers(sub)
        elif isinstance(sub, Layer):
            out.append(sub)
        else:
            out += weight_layers(sub)
    return out


def core_weight_index(model):
    """Per core layer index of ``model._core``, its weight index (see ``weight_layers``)."""
    pos = {}
    for i, layer in enumerate(weight_layers(model)):
        pos.setdefault(id(layer), i)
    return [pos.get(id(layer), -1) for layer in model._core_layers]  # -1: an op, no weights


def weight_tensors(model):
    return {_weight_name(i, pname): value for i, layer in enumerate(weight_layers(model))
            for pname, value, _ in layer._views}


def assign_weights(model, tensors, path, skip_mismatch=False):
    """Sets every layer's weights from ``tensors``; checks them all before changing any."""
    plan = []
    owners = weight_layers(model)
    for i, layer in enumerate(owners):
        found = []
        for pname, value, _ in layer._views:
            name = _weight_name(i, pname)
            t = tensors.get(name)
            problem = None
            if t is None:
                problem = "is missing"
            elif t.dtype != np.float32:
                problem = f"has dtype {t.dtype}, expected float32"
            elif t.shape != value.shape:
                problem = f"has shape {t.shape}, but the layer needs {value.shape}"
            elif not np.isfinite(t).all():
                problem = "contains NaN or infinity"
            if problem:
                if skip_mismatch:
                    found = None
                    break
                raise ValueError(f"Cannot load {path!r}: weight {name!r} of layer "
                                 f"'{layer.name}' ({type(layer).__name__}) {problem}.")
            found.append((value, t))
        if found:
            plan.extend(found)
    stored = sum(1 for n in tensors if n.startswith("layers."))
    used = sum(len(layer._views) for layer in owners)
    if stored != used and not skip_mismatch:
        raise ValueError(f"Cannot load {path!r}: it holds {stored} layer weights, but this "
                         f"model has {used}. Was it saved from a different architecture?")
    for value, t in plan:
        value[...] = t


# -- whole models ----------------------------------------------------------------------------
def _trainable(model):
    """(name, shape) of the params the optimizer trains (frozen layers left out at compile),
    in the order it keeps their state (core layer order, which the names do not depend on)."""
    layers, index = model._core_layers, core_weight_index(model)
    return [(_weight_name(index[i], layers[i]._views[k][0]), layers[i]._views[k][1].shape)
            for i, k in model._core.trained_params()]


def core_graph(model):
    """The graph the core runs, as the file's "core_graph" (docs/ARCHITECTURE.md, "Model
    files"), for a model with traced parts: what lets Model::load run custom layers without
    Python. None for a model of built-in layers only (its Keras config says it all)."""
    from shenjing import _dynamic
    nodes = getattr(model, "_saved_graph", None)
    if nodes is None or not (any(getattr(la, "_is_op", False) for la in model._core_layers) or
                             _dynamic.is_dynamic(model._input_shapes_list())):
        # Built-in layers on concrete shapes: the Keras config says it all. With axes of
        # unknown size, the graph records the sizes the core ran last.
        return None
    index = core_weight_index(model)
    out = []
    for entry in nodes:
        if "layer" in entry:
            out.append({"layer": entry["layer"], "inputs": entry["inputs"],
                        "weights": index[entry["core"]]})
        else:
            out.append({"shared": entry["shared"], "inputs": entry["inputs"]})
    inputs, outputs, _ = model._graph()
    ids = model._core_graph_ids
    return json.dumps({"inputs": model._core_input_shapes, "nodes": out,
                       "outputs": [ids[id(t)] for t in outputs]})


def save_model(model, filepath, overwrite=True):
    model._require_built("save()")
    with _rank_zero_writes() as writer:
        if writer:
            _save_model(model, filepath, overwrite)


def _save_model(model, filepath, overwrite):
    _check_overwrite(filepath, overwrite)
    from shenjing import __version__
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "model",
            "shenjing_version": __version__, "model_config": model.to_json()}
    graph = core_graph(model)
    if graph is not None:
        meta["core_graph"] = graph
    tensors = weight_tensors(model)
    if model.optimizer is not None:
        meta["compile_config"] = json.dumps(model._compile_config())
        iterations, slots = model._core.optimizer_state()
        tensors["optimizer.iterations"] = np.array(iterations, dtype=np.int64)
        for (name, shape), bufs in zip(_trainable(model), slots):
            for s, buf in enumerate(bufs):
                tensors[f"optimizer.{name}.{s}"] = buf.reshape(shape)
    meta["training_state"] = json.dumps(model._training_state())
    write_safetensors(filepath, meta, tensors)


@contextlib.contextmanager
def _rank_zero_writes():
    """Under a distribution every rank holds the same model: only rank 0 writes the file,
    and every rank waits until it is written (so any may read it next)."""
    from shenjing import distribution
    try:
        yield distribution.rank() == 0
    finally:
        comm = distribution.comm()
        if comm is not None:
            comm.Barrier()


def save_weights(model, filepath, overwrite=True):
    model._require_built("save_weights()")
    with _rank_zero_writes() as writer:
        if writer:
            _save_weights(model, filepath, overwrite)


def _save_weights(model, filepath, overwrite):
    _check_overwrite(filepath, overwrite)
    from shenjing import __version__
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "weights",
            "shenjing_version": __version__}
    write_safetensors(filepath, meta, weight_tensors(model))


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a model written by ``model.save``: architecture, weights and, when ``compile``,
    the optimizer with its state, ready to resume ``fit`` exactly.

    Only shenjing's safetensors files are read, and nothing in them can run code
    (``safe_mode`` is therefore always on). Broken or hostile files raise ValueError.
    """
    path = os.fspath(filepath)
    with _registry.custom_object_scope(custom_objects):
        return _load_model(path, compile)


def _peek_metadata(path):
    """The metadata of a safetensors file from its header alone, or {} when it cannot be read
    (the full loader then reports what is wrong)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(size - 8, 1 << 26):
                return {}
            meta = json.loads(f.read(n)).get("__metadata__")
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError, struct.error, AttributeError, RecursionError):
        return {}


def _load_model(path, compile):
    if "core_graph" in _peek_metadata(path):
        # Custom layers: the Python model is rebuilt from its classes (traced again), then
        # given the file's weights.
        meta, tensors = read(path)
        model = model_from_json(meta["model_config"], _path=path)
        assign_weights(model, tensors, path)
    else:
        # One read: the core is Model::load's (every weight checked against the file before
        # it allocates); meta and the optimizer tensors come with it.
        core, meta, tensors = _core.load_model_file(path)
        model = model_from_json(meta["model_config"], _path=path, _core=core)
    state = parse_json(meta.get("training_state", "{}"), path, "training_state")
    try:
        model._restore_training_state(state)
        if compile and "compile_config" in meta:
            cfg = parse_json(meta["compile_config"], path, "compile_config")
            _compile_from_config(model, cfg)
            _restore_optimizer(model, tensors)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise ValueError(f"Cannot load {path!r}: {e}") from None
    return model


def _restore_optimizer(model, tensors):
    slots = []
    for name, _ in _trainable(model):
        bufs = []
        while f"optimizer.{name}.{len(bufs)}" in tensors:
            bufs.append(tensors[f"optimizer.{name}.{len(bufs)}"].reshape(-1))
        slots.append(bufs)
    iterations = tensors.get("optimizer.iterations", np.zeros((), np.int64))
    if iterations.shape != () or iterations.dtype != np.int64:
        raise ValueError("'optimizer.iterations' must be one int64 value.")
    model._core.restore_optimizer(int(iterations), slots if any(slots) else [])


def restore_training(model, path):
    """Puts a ``model.save`` file's weights, optimizer state and random streams into this
    compiled model (BackupAndRestore's resume): training then continues as it would have."""
    meta, tensors = read(path)
    try:
        assign_weights(model, tensors, path)
        model._restore_training_state(parse_json(meta.get("training_state", "{}"), path,
                                                 "training_state"))
        if model.optimizer is not None and "compile_config" in meta:
            _restore_optimizer(model, tensors)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise ValueError(f"Cannot restore the backup {path!r}: {e}") from None


def _compile_from_config(model, cfg):
    """``model.compile(...)`` with what ``_compile_config()`` wrote: Keras dicts revived
    (optimizer, losses, metrics, at any nesting: per-output lists or dicts), the rest as is."""
    from shenjing import losses, metrics, optimizers

    def revive(x, get):
        if isinstance(x, dict) and "class_name" in x:
            return get(x)
        if isinstance(x, str) and _registry.get_registered_object(x) is not None:
            return _registry.get_registered_object(x)  # a custom loss or metric function
        if isinstance(x, list):
            return [revive(v, get) for v in x]
        if isinstance(x, dict):
            return {k: revive(v, get) for k, v in x.items()}
        return x
    if not isinstance(cfg, dict):
        raise ValueError("compile_config must be a JSON object.")
    kwargs = {"optimizer": optimizers.get(cfg["optimizer"]),
              "loss": revive(cfg["loss"], losses.get)}
    for key in ("metrics", "weighted_metrics"):
        if cfg.get(key) is not None:
            kwargs[key] = revive(cfg[key], lambda m: metrics.get(m, (1, 2), (1, 2)))
    if cfg.get("loss_weights") is not None:
        kwargs["loss_weights"] = cfg["loss_weights"]
    model.compile(**kwargs)


_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def model_from_json(json_string, custom_objects=None, _path=None, _core=None):
    """A new, untrained model from ``model.to_json()`` output (weights are initialized).
    Custom classes come from ``custom_objects`` or ``register_keras_serializable``."""
    with _registry.custom_object_scope(custom_objects):
        return _model_from_json(json_string, _path, _core)


def _model_from_json(json_string, _path, _core):
    from shenjing.models import Functional, Sequential
    where = repr(_path) if _path else "the JSON"
    spec = parse_json(json_string, _path or "<json>", "model config") \
        if isinstance(json_string, (str, bytes)) else json_string
    if isinstance(spec, dict) and isinstance(spec.get("config"), dict) and \
            spec.get("class_name") not in _MODEL_CLASSES:
        return _subclassed_from_json(spec, where)
    if not isinstance(spec, dict) or spec.get("class_name") not in _MODEL_CLASSES or \
            not isinstance(spec.get("config"), dict):
        raise ValueError(f"Cannot load {where}: it does not describe a Sequential or "
                         f"Functional model.")
    cls = Sequential if spec["class_name"] == "Sequential" else Functional
    try:
        return cls.from_config(spec["config"], _core=_core)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError,
            RecursionError) as e:
        raise ValueError(f"Cannot load {where}: {e}") from None


def _subclassed_from_json(spec, where):
    """A subclassed model from its class (registered or in custom_objects), config and input
    shapes; built (traced) for those shapes."""
    from shenjing.models import Model
    cls = _registry.lookup(spec, "model")
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ValueError(f"Cannot load {where}: it holds a model of class "
                         f"{spec.get('class_name')!r:.80}, which is neither built in nor given: "
                         f"pass custom_objects={{'{spec.get('class_name')!s:.80}': ...}} or "
                         f"decorate the class with @shenjing.saving.register_keras_serializable().")
    shapes = (spec.get("build_config") or {}).get("input_shape")
    if not isinstance(shapes, list) or not shapes or not all(
            isinstance(s, list) and len(s) >= 2 and all(isinstance(d, int) and d > 0
                                                        for d in s[1:]) for s in shapes):
        raise ValueError(f"Cannot load {where}: build_config.input_shape must list the "
                         f"input shapes, e.g. [[null, 784]].")
    try:
        model = cls.from_config(spec["config"])
        model.build(shapes if len(shapes) > 1 else shapes[0])
    except (TypeError, ValueError) as e:
        raise ValueError(f"Cannot load {where}: {cls.__name__}: {e}") from None
    return model


def _check_overwrite(filepath, overwrite):
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{os.fspath(filepath)!r} exists and overwrite=False.")


register_keras_serializable = _registry.register_keras_serializable
get_registered_name = _registry.get_registered_name
get_registered_object = _registry.get_registered_object
custom_object_scope = _registry.custom_object_scope
