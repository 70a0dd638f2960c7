"""Pictures: ``utils.plot_model``/``model_to_dot`` (keras/src/utils/model_visualization.py,
with pydot and Graphviz, both optional) and ``utils.plot_history`` (shenjing's own: training
curves with matplotlib, optional). Files are written atomically."""
import io
import os

from shenjing._atomic import atomic_write


def _pydot():
    try:
        import pydot
    except ImportError:
        return None
    return pydot


def check_pydot():
    return _pydot() is not None


def check_graphviz():
    """Whether pydot can run Graphviz's ``dot``."""
    pydot = _pydot()
    if pydot is None:
        return False
    try:
        pydot.Dot.create(pydot.Dot())
        return True
    except (OSError, pydot.PydotException):
        return False


def _activation_name(layer):
    act = layer.activation
    for attr in ("name", "__name__"):
        if isinstance(getattr(act, attr, None), str):
            return getattr(act, attr)
    return str(act)


def _format_shape(shapes):
    if shapes is None:
        return "?"
    return f"{shapes[0]}" if len(shapes) == 1 else f"{list(shapes)}"


def _label(layer, in_shapes, out_shapes, dtypes, show_layer_names, show_layer_activations,
           show_dtype, show_shapes, show_trainable):
    """Keras's HTML-like node label."""
    class_name = type(layer).__name__
    colspan = max(1, int(show_dtype) + int(show_trainable) + 2 * int(show_shapes))
    title = f"<b>{layer.name}</b> ({class_name})" if show_layer_names else \
        f"<b>{class_name}</b>"
    table = ('<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">'
             f'<tr><td colspan="{colspan}" bgcolor="black"><font point-size="16" '
             f'color="white">{title}</font></td></tr>')
    if show_layer_activations and getattr(layer, "activation", None) is not None:
        table += (f'<tr><td bgcolor="white" colspan="{colspan}"><font point-size="14">'
                  f"Activation: <b>{_activation_name(layer)}</b></font></td></tr>")
    cols = []
    if show_shapes:
        if class_name != "InputLayer":
            cols.append('<td bgcolor="white"><font point-size="14">Input shape: '
                        f"<b>{_format_shape(in_shapes)}</b></font></td>")
        cols.append('<td bgcolor="white"><font point-size="14">Output shape: '
                    f"<b>{_format_shape(out_shapes)}</b></font></td>")
    if show_dtype:
        dtype = "?" if not dtypes else (dtypes[0] if len(dtypes) == 1 else list(dtypes))
        cols.append('<td bgcolor="white"><font point-size="14">Output dtype: '
                    f"<b>{dtype}</b></font></td>")
    if show_trainable and getattr(layer, "weights", None):
        cols.append('<td bgcolor="forestgreen"><font point-size="14" color="white"><b>'
                    'Trainable</b></font></td>' if layer.trainable else
                    '<td bgcolor="firebrick"><font point-size="14" color="white"><b>'
                    'Non-trainable</b></font></td>')
    if cols:
        table += f"<tr>{''.join(cols)}</tr>"
    return table + "</table>>"


def _is_model(layer):
    from shenjing.functional import Functional
    from shenjing.sequential import Sequential
    return isinstance(layer, (Functional, Sequential))


def _graph(model):
    """(layers, edges, shapes): the layers to draw in order; edges as (source layer,
    destination layer, the destination's input position, the source's output position); per
    layer (input shapes, output shapes, output dtypes) with the batch axis."""
    from shenjing.functional import Functional
    from shenjing.sequential import Sequential
    if isinstance(model, Sequential):
        layers = model.layers
        shapes, prev = {}, (None, *model._input_shape)
        for layer in layers:
            out = tuple(layer.output_shape)
            shapes[id(layer)] = ([prev], [out], [getattr(layer, "dtype", "float32")])
            prev = out
        return layers, [(a, b, 0, 0) for a, b in zip(layers[:-1], layers[1:])], shapes
    if not isinstance(model, Functional):
        return [model], [], {}
    layers, seen, edges, shapes = [], set(), [], {}

    def add(layer):
        if id(layer) not in seen:
            seen.add(id(layer))
            layers.append(layer)
    for t in model.inputs:
        add(t._node.layer)
        shapes[id(t._node.layer)] = ([], [tuple(t.shape)], [t.dtype])
    for node in model._nodes:
        add(node.layer)
        shapes.setdefault(id(node.layer), ([tuple(t.shape) for t in node.inputs],
                                           [tuple(t.shape) for t in node.outputs],
                                           [t.dtype for t in node.outputs]))
        for position, t in enumerate(node.inputs):
            edges.append((t._node.layer, node.layer, position, t._index))
    return layers, edges, shapes


def _innermost(source, destination, input_index, output_index):
    """With expand_nested, an edge from or to a nested model joins the layer inside it that
    makes that output or takes that input (Keras's rule)."""
    from shenjing.sequential import Sequential
    while _is_model(source):
        if isinstance(source, Sequential):
            source, output_index = source.layers[-1], 0
        else:
            t = source.outputs[output_index]
            source, output_index = t._node.layer, t._index
    while _is_model(destination):
        destination = destination.layers[0] if isinstance(destination, Sequential) else \
            destination.inputs[input_index]._node.layer
    return source, destination


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                 rankdir="TB", expand_nested=False, dpi=200, subgraph=False,
                 show_layer_activations=False, show_trainable=False, splines="ortho",
                 **kwargs):
    """Keras's ``model_to_dot``: the model as a ``pydot.Dot`` graph (a ``pydot.Cluster``
    with ``subgraph=True``), one node per layer, an edge per pair of connected layers; with
    ``expand_nested``, a nested model is a cluster of its own layers."""
    if not model.built:
        raise ValueError("This model has not yet been built. Build the model first by "
                         "calling `build()` or by calling the model on a batch of data.")
    pydot = _pydot()
    if pydot is None:
        raise ImportError("You must install pydot (`pip install pydot`) for model_to_dot to "
                          "work.")
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
        dot.set("label", model.name)
        dot.set("labeljust", "l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    layers, edges, shapes = _graph(model)
    for layer in layers:
        if expand_nested and _is_model(layer):
            dot.add_subgraph(model_to_dot(
                layer, show_shapes, show_dtype, show_layer_names, rankdir, expand_nested,
                subgraph=True, show_layer_activations=show_layer_activations,
                show_trainable=show_trainable))
            continue
        in_s, out_s, dtypes = shapes.get(id(layer), (None, None, None))
        node = pydot.Node(str(id(layer)), label=_label(
            layer, in_s, out_s, dtypes, show_layer_names, show_layer_activations, show_dtype,
            show_shapes, show_trainable))
        node.set("fontname", "Helvetica")
        node.set("border", "0")
        node.set("margin", "0")
        dot.add_node(node)
    drawn = set()
    for src, dst, input_index, output_index in edges:
        if expand_nested:
            src, dst = _innermost(src, dst, input_index, output_index)
        if (id(src), id(dst)) in drawn:
            continue
        drawn.add((id(src), id(dst)))
        edge = pydot.Edge(str(id(src)), str(id(dst)))
        edge.set("penwidth", "2")
        dot.add_edge(edge)
    return dot


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, splines="ortho",
               **kwargs):
    """Keras's ``plot_model``: draws the model with Graphviz into ``to_file`` (its extension
    picks the format, png by default). Needs ``pip install pydot`` and Graphviz's ``dot``
    program (ImportError saying which is missing otherwise). Returns an IPython Image when
    IPython is installed and the format is png, jpg or gif, else None."""
    if not model.built:
        raise ValueError("This model has not yet been built. Build the model first by "
                         "calling `build()` or by calling the model on a batch of data.")
    if not check_pydot():
        raise ImportError("You must install pydot (`pip install pydot`) for `plot_model` to "
                          "work.")
    if not check_graphviz():
        raise ImportError("You must install graphviz (see instructions at "
                          "https://graphviz.gitlab.io/download/) for `plot_model` to work.")
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir,
                       expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations,
                       show_trainable=show_trainable, splines=splines, **kwargs)
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    data = dot.create(format=extension)
    atomic_write(to_file, lambda f: f.write(data))
    # IPython's Image shows raster formats only (Keras tries any but pdf, and fails on svg).
    if extension.lower() in ("png", "jpg", "jpeg", "gif"):
        try:
            from IPython import display
            return display.Image(filename=to_file)
        except ImportError:
            pass
    return None


def plot_history(history, to_file="history.png", metrics=None, dpi=100):
    """Training curves: one panel per metric (loss first), the training values per epoch
    and, when logged, the validation ones (``val_<metric>``), saved to ``to_file`` (format
    from its extension, png by default). Not in Keras; needs matplotlib.

    Args:
        history: the ``History`` that ``fit`` returns, or its ``history`` dict
            (``{name: [value per epoch]}``).
        to_file: the image file to write (atomically).
        metrics: the names to draw (without ``val_``), default all that were logged.
        dpi: resolution of the image.

    Returns:
        The list of metric names drawn, in panel order.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("plot_history needs matplotlib: `pip install matplotlib`.") from e
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(f"plot_history expects a History (what fit returns) or its history "
                        f"dict; received {type(history).__name__}.")
    names = [k for k in logs if not k.startswith("val_")]
    names += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in logs]
    names.sort(key=lambda k: k != "loss")  # stable: loss first, the rest as logged
    if metrics is not None:
        if isinstance(metrics, str):
            metrics = [metrics]
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise ValueError(f"plot_history: no values logged for {unknown}; the history "
                             f"has {names}.")
        names = list(metrics)
    if not names:
        raise ValueError("plot_history: the history is empty (no epoch was logged).")
    epoch = getattr(history, "epoch", None)
    fig = Figure(figsize=(6.0, 3.0 * len(names)), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        for key, label in ((name, "training"), ("val_" + name, "validation")):
            values = logs.get(key)
            if values is None or not len(values):
                continue
            x = [e + 1 for e in epoch] if epoch and len(epoch) == len(values) else \
                list(range(1, len(values) + 1))
            ax.plot(x, [float(v) for v in values], marker="o", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    to_file = os.fspath(to_file)
    fmt = os.path.splitext(to_file)[1][1:] or "png"
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    atomic_write(to_file, lambda f: f.write(buf.getvalue()))
    return names
