"""Keras-style configs: objects to plain dicts (``get_config``) and back (``from_config``).

A config holds the constructor arguments, so ``cls(**obj.get_config())`` rebuilds ``obj``.
Nested objects (initializers, regularizers, ...) are written as Keras writes them:
``{"module": ..., "class_name": ..., "config": {...}, "registered_name": None}``.
"""
import inspect

import numpy as np


def init_config(obj, skip=()):
    """``{arg: obj.arg}`` for every argument of ``type(obj).__init__`` kept as an attribute."""
    out = {}
    for name, p in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or name in skip or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if hasattr(obj, name):
            out[name] = plain(getattr(obj, name))
    return out


def plain(value):
    """value as JSON-ready data: tuples become lists, config objects become Keras dicts."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "get_config") and hasattr(type(value), "_module"):
        return serialize(value)
    return value


def serialize(obj):
    from shenjing import _registry
    if _registry.is_custom_class(type(obj)):
        return _registry.serialize(obj, obj.get_config())
    return {"module": type(obj)._module, "class_name": type(obj).__name__,
            "config": obj.get_config(), "registered_name": None}


def deserialize(spec, classes, what):
    """The object a Keras dict describes, from ``classes`` ({class_name: class}).

    Arguments the class does not take are dropped when they are None (Keras writes unused
    options as None); anything else wrong raises ValueError naming ``what``.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise ValueError(f"{what}: expected a dict with a 'class_name', received {spec!r:.200}.")
    cls = classes.get(spec["class_name"])
    if cls is None:
        from shenjing import _registry
        cls = _registry.lookup(spec, what)
        if cls is not None:
            config = spec.get("config") or {}
            if not isinstance(config, dict):
                raise ValueError(f"{what}: 'config' of {cls.__name__} must be a dict.")
            try:
                return cls.from_config(config)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{what}: {cls.__name__}.from_config failed: {e}") from None
    if cls is None:
        raise ValueError(f"{what}: unknown class {spec['class_name']!r:.80}. Known: "
                         f"{', '.join(sorted(classes))}. A custom class must be passed in "
                         f"custom_objects={{'{spec['class_name']!s:.80}': ...}} or decorated "
                         f"with @shenjing.saving.register_keras_serializable().")
    config = spec.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{what}: 'config' of {cls.__name__} must be a dict.")
    return from_config(cls, config, what)


def from_config(cls, config, what):
    nested = getattr(cls, "_nested_from_config", None)
    if nested is not None:  # a wrapper: its config holds a layer's (TimeDistributed)
        config = nested(config, what)
    params = inspect.signature(cls.__init__).parameters
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kwargs = {}
    # Keras options the class does not implement, accepted at the value that changes nothing.
    neutral = getattr(cls, "_keras_only", {})
    for k, v in config.items():
        if k in params or (takes_kwargs and (k in _LAYER_KWARGS or
                                             k in getattr(cls, "_config_kwargs", ()))):
            kwargs[k] = v
        elif k in neutral:
            if v != neutral[k]:
                raise ValueError(f"{what}: {cls.__name__}({k}={v!r:.80}) is not supported; "
                                 f"only {k}={neutral[k]!r}.")
        elif v is not None:
            raise ValueError(f"{what}: {cls.__name__} has no argument {k!r:.80}.")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: {e}") from None


# Arguments every layer takes through **kwargs (see shenjing.layers.base.Layer).
_LAYER_KWARGS = {"name", "trainable", "dtype", "input_shape", "input_dim"}


def call_with_accepted(cls, config):
    """``cls(**config)`` for a user class, leaving out the arguments its constructor does
    not take (a custom layer without **kwargs gets its name set afterwards)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return cls(**config)
    obj = cls(**{k: v for k, v in config.items() if k in params})
    if "name" in config and "name" not in params:
        obj.name = config["name"]
    return obj
