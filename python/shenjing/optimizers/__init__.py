"""Optimizers with Keras 3 names, arguments and defaults; the update runs in C++.
``shenjing.optimizers.schedules`` holds the learning-rate schedules."""
from shenjing import _config
from shenjing.optimizers import schedules
from shenjing.optimizers._kinds import (SGD, Adagrad, Adam, Adamax, AdamW, Lion, Nadam,
                                        RMSprop)
from shenjing.optimizers.base import Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Nadam", "Adamax", "Lion",
           "schedules", "get", "serialize", "deserialize"]

_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
            "nadam": Nadam, "adamax": Adamax, "lion": Lion}


def serialize(optimizer):
    """The Keras dict of an optimizer."""
    return _config.serialize(optimizer)


def deserialize(config, custom_objects=None):
    """An optimizer from its Keras dict (a learning-rate schedule inside it included)."""
    from shenjing import _registry
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"optimizer: expected a dict with a 'class_name', received "
                         f"{config!r:.200}.")
    cls = {c.__name__: c for c in _BY_NAME.values()}.get(config["class_name"])
    with _registry.custom_object_scope(custom_objects):
        if cls is not None:
            inner = config.get("config") or {}
            if not isinstance(inner, dict):
                raise ValueError(f"optimizer: 'config' of {cls.__name__} must be a dict.")
            try:
                return cls.from_config(inner)
            except (TypeError, ValueError) as e:
                raise ValueError(f"optimizer: {e}") from None
        return _config.deserialize(config, {}, "optimizer")


def get(identifier):
    """An optimizer from a name ('adam', 'sgd', ...), an instance, or a Keras config dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}. Known optimizers: "
                     f"{', '.join(_BY_NAME)}.")
