"""Custom classes in configs: ``register_keras_serializable`` (Keras's names) and the
``custom_objects`` a load passes. A config names a custom class by its registered name
("package>Name") or class name; only classes the program registered or passed are used, so a
file can never make shenjing import or run code of its choosing."""
import contextlib

from shenjing._thread_stack import ThreadStack

_REGISTERED = {}  # "package>Name" -> class
_scopes = ThreadStack()  # custom_objects dicts of the loads in progress, innermost last


def register_keras_serializable(package="Custom", name=None):
    """Decorator of a class or function (custom layer, model, loss, metric function): configs
    that name it can be loaded (saved models)."""
    def decorator(obj):
        key = f"{package}>{name or obj.__name__}"
        if key in _REGISTERED and _REGISTERED[key] is not obj:
            raise ValueError(f"{key} has already been registered to {_REGISTERED[key]}.")
        _REGISTERED[key] = obj
        obj._registered_name = key
        return obj
    return decorator


def get_registered_name(obj):
    if callable(obj) and not isinstance(obj, type) and hasattr(obj, "__name__"):
        return getattr(obj, "_registered_name", obj.__name__)  # a function
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__dict__.get("_registered_name", cls.__name__)


def get_registered_object(name, custom_objects=None):
    """The class a config names, from custom_objects (given or in scope) or the registry."""
    for objects in [custom_objects or {}] + list(_scopes)[::-1]:
        if name in objects:
            return objects[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    short = name.split(">")[-1]
    for key, cls in _REGISTERED.items():
        if key.split(">")[-1] == short:
            return cls
    return None


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Within the block, configs may name the classes of ``custom_objects``."""
    _scopes.append(dict(custom_objects or {}))
    try:
        yield
    finally:
        _scopes.pop()


def is_custom_class(cls):
    return not cls.__module__.startswith("shenjing.")


def serialize(obj, config):
    """The Keras dict of a user class instance: module, class, config, registered name."""
    cls = type(obj)
    return {"module": cls.__module__, "class_name": cls.__name__, "config": config,
            "registered_name": get_registered_name(obj)}


def lookup(spec, what):
    """The user class of a Keras dict, or None when it names none known; ValueError when it
    names a class neither registered nor passed in custom_objects."""
    for key in ("registered_name", "class_name"):
        name = spec.get(key)
        if isinstance(name, str):
            cls = get_registered_object(name)
            if cls is not None:
                return cls
    return None
