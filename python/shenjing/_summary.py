"""``model.summary()``: Keras 3's table (keras/src/utils/summary_utils.py) as it prints when
the output is not a terminal (76 columns), without rich.

A Sequential model, and a functional one whose graph is a plain chain, get three columns
(Layer (type) | Output Shape | Param #); any other functional model gets a fourth, Connected
to, listing each call's inputs as ``layer[node][tensor]``. A cell too long for its column
wraps at spaces; a word longer than the column is cut with an ellipsis, as rich does.
"""
from shenjing.layers.node import node_position

_NARROW = (33, 24, 15)  # column widths with borders and padding, as rich lays them out
_WIDE = (21, 19, 12, 19)


def _wrap(text, width):
    lines, line = [], ""
    for word in text.split():
        if len(word) > width:
            word = word[:width - 1] + "…"
        if line and len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            if line:
                lines.append(line)
            line = word
    return lines + [line] if line or not lines else lines


def _row(cells, widths, align):
    wrapped = [_wrap(c, w - 2) for c, w in zip(cells, widths)]
    lines = []
    for k in range(max(len(c) for c in wrapped)):
        parts = [c[k] if k < len(c) else "" for c in wrapped]
        lines.append("│" + "│".join(f" {c:{a}{w - 2}} " for c, w, a in
                                     zip(parts, widths, align)) + "│")
    return lines


def _rule(widths, left, mid, right, ch):
    return left + mid.join(ch * w for w in widths) + right


def _const(node):
    """A constant op's node: Keras passes numbers to ops as arguments, not tensors, so the
    summary shows neither the node nor the connection."""
    return getattr(node.layer, "_is_constant", False)


def _tensor_inputs(node):
    return [t for t in node.inputs if not _const(t._node)]


def _chain_like(model):
    """Keras's test: one node per depth, each reading one tensor, no layer called twice."""
    nodes = set()
    for level in model._nodes_by_depth.values():
        level = [n for n in level if not _const(n)]
        if len(level) > 1 or (level and len(_tensor_inputs(level[0])) > 1):
            return False
        nodes.update(id(n) for n in level)
    return all(sum(id(n) in nodes for n in layer._inbound_nodes) <= 1 for layer in model.layers)


def _size(n):
    b = n * 4
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:.2f} {unit}"
        b /= 1024


def print_summary(model, print_fn=None):
    from shenjing.functional import Functional
    out = print_fn or print
    functional = isinstance(model, Functional)
    connected = functional and not _chain_like(model)
    widths = _WIDE if connected else _NARROW
    align = ("<", "<", ">", "<")[:len(widths)]
    relevant = {id(n) for level in model._nodes_by_depth.values() for n in level} \
        if functional else set()

    def connections(layer):
        refs = [f"{t._node.layer.name}[{node_position(t._node)}][{t._index}]"
                for node in layer._inbound_nodes if id(node) in relevant
                for t in _tensor_inputs(node)]
        return ", ".join(refs) or "-"

    def shape(layer):
        if functional:  # Keras shows the output of the layer's last call
            outs = layer._inbound_nodes[-1].outputs
            return str(outs[0].shape) if len(outs) == 1 else str([t.shape for t in outs])
        return str(layer.output_shape)

    lines = [f'Model: "{model.name}"', _rule(widths, "┏", "┳", "┓", "━")]
    header = ["Layer (type)", "Output Shape", "Param #", "Connected to"][:len(widths)]
    lines += [ln.replace("│", "┃") for ln in _row(header, widths, align)]
    lines.append(_rule(widths, "┡", "╇", "┩", "━"))
    # Keras lists the ops a functional model calls (not its constants) among the layers.
    layers = [la for la in getattr(model, "_config_layers", model.layers)
              if not getattr(la, "_is_constant", False)]
    for i, layer in enumerate(layers):
        kind = getattr(layer, "_keras_type", type(layer).__name__)
        cells = [f"{layer.name} ({kind})", shape(layer),
                 f"{layer.count_params():,}"]
        if connected:
            cells.append(connections(layer))
        lines += _row(cells, widths, align)
        if i < len(layers) - 1:
            lines.append(_rule(widths, "├", "┼", "┤", "─"))
    lines.append(_rule(widths, "└", "┴", "┘", "─"))
    total = model.count_params()
    trainable = int(sum(w.size for w in model.trainable_weights))
    lines += [f" Total params: {total:,} ({_size(total)})",
              f" Trainable params: {trainable:,} ({_size(trainable)})",
              f" Non-trainable params: {total - trainable:,} ({_size(total - trainable)})"]
    for line in lines:
        out(line)
