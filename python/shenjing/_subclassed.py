"""Subclassed models (``class MyModel(Model)`` with layers made in ``__init__`` and a ``call``).

The model is built on first use (``fit``/``predict``/``evaluate`` on data, ``build``, or a call
on symbolic tensors): ``call`` runs once on ``Input`` tensors of the data's shapes, and the
graph it records (layer calls, ``shenjing.ops``) is handed to the C++ core like a functional
model's. Python is not called per batch, so a custom ``train_step``/``test_step`` cannot run.
"""
import inspect

from shenjing.layers import _custom
from shenjing.layers.node import flatten_tensors, layers_by_depth

_STEPS = ("train_step", "test_step", "predict_step")


def init(model, args, kwargs):
    name = kwargs.pop("name", None)
    trainable = kwargs.pop("trainable", True)
    kwargs.pop("dtype", None)
    if args or kwargs:
        raise TypeError(f"Model: unexpected argument(s) "
                        f"{', '.join([repr(a) for a in args] + sorted(kwargs))}. A subclassed "
                        f"model takes name= and trainable= (build layers in __init__, use "
                        f"them in call()).")
    check_steps(type(model))
    model._init_model(name, type(model).__name__, trainable)
    model._input_shape = None
    model._input_shapes = None
    model._layers = []
    model._nodes = []


def check_steps(cls):
    """ValueError when cls defines a Python train_step/test_step/predict_step."""
    for step in _STEPS:
        if step in vars_of_class_chain(cls):
            raise ValueError(
                f"Model '{cls.__name__}' overrides {step}(): shenjing runs each batch as one "
                f"C++ call over the traced graph, so a Python {step} cannot run. Put the "
                f"computation in call() (and add_loss()), or use a custom loss or metric.")


def functional_arguments(args, kwargs):
    """Whether Model.__init__ got (inputs, outputs) tensors: a functional model."""
    from shenjing.layers.node import KerasTensor
    values = list(args[:2]) + [kwargs.get("inputs"), kwargs.get("outputs")]

    def tensors(x):
        if isinstance(x, KerasTensor):
            return True
        items = list(x.values()) if isinstance(x, dict) else x
        return isinstance(items, (list, tuple)) and bool(items) and \
            all(isinstance(t, KerasTensor) for t in items)
    return any(tensors(v) for v in values if v is not None)


def inject_functional(cls):
    """Puts Functional in Model's place among cls's bases (Keras's
    inject_functional_model_class), so the subclass runs as a functional model."""
    from shenjing.functional import Functional
    from shenjing.models import Model
    if cls is Model:
        return Functional
    if cls is object or issubclass(cls, Functional):
        return cls
    check_steps(cls)
    cls.__bases__ = tuple(inject_functional(base) for base in cls.__bases__)
    return cls


def vars_of_class_chain(cls):
    """Names defined by cls and its bases up to (not including) shenjing's own classes."""
    from shenjing.models import Model
    names = set()
    for c in cls.__mro__:
        if c.__module__.startswith("shenjing.") or c in (Model, object):
            break
        names.update(vars(c))
    return names


def tracked_layers(model):
    from shenjing.layers.base import Layer
    return Layer._tracked_layers(model)


def _trace_call(model, shapes, training):
    """call() once on new Inputs: (inputs, the call's argument, what it returned, the output
    tensors, add_loss terms, the Trace)."""
    from shenjing.functional import graph_nodes
    from shenjing.layers.input import Input
    from shenjing.ops import _trace
    inputs = [Input(shape=tuple(s)) for s in shapes]
    arg = inputs[0] if len(inputs) == 1 else inputs
    kwargs = {} if training is None else {"training": training}
    losses = []
    _trace._scopes.append(model)
    _custom.modes.append(training)
    model._trace_losses = losses
    try:
        outs = model.call(arg, **kwargs)
    finally:
        _trace._scopes.pop()
        _custom.modes.pop()
        model._trace_losses = None
    if isinstance(outs, tuple):
        outs = list(outs)
    outputs = [_trace.as_tensor(t) for t in flatten_tensors(
        outs, f"The output of model '{model.name}'.call()")]
    nodes = graph_nodes(inputs, outputs + losses, model.name)
    return inputs, arg, outs, outputs, losses, _custom.Trace(inputs, outputs, nodes, losses)


def build(model, init=True):
    """Traces ``call`` on Inputs of the model's input shapes and builds the core model."""
    from shenjing.functional import graph_nodes
    shapes = model._input_shapes_list()
    if shapes == [None]:
        raise ValueError(f"Model '{model.name}' has not been built: call it on data (fit, "
                         f"predict) or build(input_shape) first.")
    params = inspect.signature(model.call).parameters
    if "training" in params:
        # Keras calls it with training=True in fit and False in predict: one graph must do.
        inputs, arg, outs, outputs, losses, trace = _trace_call(model, shapes, True)
        other = _trace_call(model, shapes, False)[-1]
        _custom._forget(other, keep=trace)
        if _custom._signature(trace) != _custom._signature(other):
            _custom._forget(trace)
            raise ValueError(
                f"Model '{model.name}' ({type(model).__name__}): call() computes something "
                f"else with training=True than with training=False. shenjing traces call() "
                f"once into one graph, so training-dependent Python branches cannot run; use "
                f"layers that switch by themselves (Dropout, BatchNormalization) and call them "
                f"with training=training.")
    else:
        inputs, arg, outs, outputs, losses, _ = _trace_call(model, shapes, None)
    model.inputs, model._inputs_struct = inputs, arg
    model.outputs, model._outputs_struct = outputs, outs if isinstance(outs, (list, dict)) \
        else outputs[0]
    model._input_shapes = [tuple(s) for s in shapes]
    model._input_shape = model._input_shapes[0]
    model._nodes = graph_nodes(inputs, outputs + losses, model.name)
    model._nodes_by_depth = layers_by_depth(inputs, outputs)[1]
    model._call_losses = losses
    model._layers = tracked_layers(model)
    model._build_graph(init)
