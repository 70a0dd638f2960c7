"""``models.clone_model`` (keras/src/models/cloning.py): the same architecture with new layers
made from the layers' configs, so new weights (as in Keras, no weights are copied: call
``clone.set_weights(model.get_weights())`` for that); a compiled model's clone is compiled
the same way."""
from shenjing.layers.input import Input, InputLayer
from shenjing.layers.node import KerasTensor


def _default_clone(layer):
    return layer.__class__.from_config(layer.get_config())


def _wrap(clone_function, call_function, recursive, cache):
    """Keras's _wrap_clone_function: one clone per layer (a shared layer stays shared), and
    nested models cloned as models when ``recursive``."""
    from shenjing.functional import Functional
    from shenjing.sequential import Sequential
    clone_function = clone_function or _default_clone

    def wrapped(layer):
        if id(layer) in cache:
            return cache[id(layer)]
        if recursive and isinstance(layer, (Sequential, Functional)):
            clone = clone_model(layer, clone_function=clone_function,
                                call_function=None if isinstance(layer, Sequential)
                                else call_function, recursive=True, _cache=cache)
        else:
            clone = clone_function(layer)
        cache[id(layer)] = clone
        return clone
    return wrapped


def _copy_compile(model, clone):
    if getattr(model, "optimizer", None) is not None:
        from shenjing.saving import _compile_from_config
        _compile_from_config(clone, model._compile_config())
    return clone


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive=False, **kwargs):
    """Clones a Sequential or functional model (Keras's ``clone_model``).

    Args:
        model: a ``Sequential`` or functional ``Model``.
        input_tensors: new input tensor(s) (from ``shenjing.Input``) to build the clone on,
            in the structure of ``model.inputs`` (one tensor for a Sequential model).
        clone_function: ``layer -> new layer``, called once per layer (default:
            ``layer.__class__.from_config(layer.get_config())``); return the layer itself to
            share it (and its weights) with the original.
        call_function: ``(layer, *args, **kwargs) -> outputs``, called instead of
            ``layer(*args, **kwargs)`` when the functional graph is rebuilt (functional
            models only).
        recursive: clone nested models layer by layer (else ``clone_function`` gets them).

    Returns:
        The new model, with freshly initialized weights (Keras does not copy weights either)
        and, when ``model`` is compiled, compiled with the same optimizer config, losses and
        metrics.
    """
    from shenjing.functional import Functional
    from shenjing.sequential import Sequential
    cache = kwargs.pop("_cache", None)
    if kwargs:
        raise ValueError(f"Unexpected keyword argument(s): {tuple(kwargs.keys())}")
    if clone_function is not None and not callable(clone_function):
        raise ValueError(f"Expected `clone_function` argument to be a callable. Received: "
                         f"clone_function={clone_function}")
    if call_function is not None and not callable(call_function):
        raise ValueError(f"Expected `call_function` argument to be a callable. Received: "
                         f"call_function={call_function}")
    wrapped = _wrap(clone_function, call_function, recursive, {} if cache is None else cache)
    if isinstance(model, Sequential):
        if call_function is not None:
            raise ValueError(
                "`call_function` argument is not supported with Sequential models.  In a "
                "Sequential model, layers aren't called at model-construction time (they're "
                "merely listed). Use `call_function` with Functional models only. Received "
                f"model of type '{model.__class__.__name__}', with "
                f"call_function={call_function}")
        return _copy_compile(model, _clone_sequential(model, wrapped, input_tensors))
    if isinstance(model, Functional):
        return _copy_compile(model, _clone_functional(model, wrapped, input_tensors,
                                                      call_function))
    raise ValueError(f"clone_model supports Sequential and functional models; received a "
                     f"model of type '{model.__class__.__name__}'. A subclassed model can be "
                     f"cloned with `type(model).from_config(model.get_config())`.")


def _clone_sequential(model, clone_function, input_tensors):
    from shenjing.sequential import Sequential
    new_layers = [clone_function(layer) for layer in model.layers]
    if input_tensors is not None:
        if isinstance(input_tensors, (list, tuple)):
            if len(input_tensors) != 1:
                raise ValueError("Argument `input_tensors` must contain a single tensor.")
            input_tensors = input_tensors[0]
        if not isinstance(input_tensors, KerasTensor) or input_tensors._node is None or \
                not isinstance(input_tensors._node.layer, InputLayer):
            raise ValueError(f"Argument `input_tensors` must be a KerasTensor from "
                             f"shenjing.Input. Received invalid value: "
                             f"input_tensors={input_tensors}")
        new_layers = [input_tensors] + new_layers
    elif model._input_shape is not None:
        new_layers = [Input(shape=model._input_shape)] + new_layers
    return Sequential(new_layers, name=model.name, trainable=model.trainable)


def _map_structure(x, fn):
    if isinstance(x, KerasTensor):
        return fn(x)
    if isinstance(x, dict):
        return {k: _map_structure(v, fn) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_map_structure(v, fn) for v in x)
    return x


def _clone_functional(model, clone_function, input_tensors, call_function):
    from shenjing.functional import Functional
    old_inputs = model.inputs
    if input_tensors is not None:
        if isinstance(input_tensors, KerasTensor):
            new_inputs = [input_tensors]
        elif isinstance(input_tensors, dict):
            new_inputs = list(input_tensors.values())
        else:
            new_inputs = list(input_tensors) if isinstance(input_tensors, (list, tuple)) \
                else None
        if new_inputs is None or not all(isinstance(t, KerasTensor) for t in new_inputs):
            raise ValueError(f"All entries in `input_tensors` must be KerasTensors. "
                             f"Received invalid values: inputs_tensors={input_tensors}")
        if len(new_inputs) != len(old_inputs):
            raise ValueError(f"`input_tensors` must have the same structure as model.input\n"
                             f"Reference structure: {model._inputs_struct}\nReceived "
                             f"structure: {input_tensors}")
        inputs_struct = input_tensors
    else:
        new_inputs = [Input(shape=t.shape[1:], dtype=t.dtype, name=t._node.layer.name)
                      for t in old_inputs]
        inputs_struct = _map_structure(model._inputs_struct,
                                       lambda t: new_inputs[_index(old_inputs, t)])
    mapping = {id(o): n for o, n in zip(old_inputs, new_inputs)}
    for node in model._nodes:
        layer = clone_function(node.layer)
        args = _map_structure(node.call_args, lambda t: mapping[id(t)])
        call_kwargs = {k: _map_structure(v, lambda t: mapping[id(t)])
                       for k, v in node.call_kwargs.items()}
        if call_function is not None:
            out = call_function(layer, args, **call_kwargs)
        else:
            out = layer(args, **call_kwargs)
        new_outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if len(new_outs) != len(node.outputs):
            raise ValueError(f"The clone of layer '{node.layer.name}' returned "
                             f"{len(new_outs)} outputs where the original returned "
                             f"{len(node.outputs)}.")
        for o, n in zip(node.outputs, new_outs):
            mapping[id(o)] = n
    outputs = _map_structure(model._outputs_struct, lambda t: mapping[id(t)])
    return Functional(inputs_struct, outputs, name=model.name, trainable=model.trainable)


def _index(tensors, t):
    for i, x in enumerate(tensors):
        if x is t:
            return i
    raise ValueError(f"{t!r} is not one of the model's inputs.")
