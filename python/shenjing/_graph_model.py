"""How a functional or subclassed model hands its graph to the C++ core (a mixin of Model):
the layers' nodes in topological order, a custom layer's traced nodes in its place, a nested
model's nodes inline, Variables once per core, then the graphs of custom losses and metrics
and the add_loss terms. What the core was given is kept for model files (core_graph)."""
import json


class GraphModel:
    def _graph(self):
        """(inputs, outputs, nodes): the graph the core runs (a subclassed model's trace)."""
        return self.inputs, self.outputs, self._nodes

    def _graph_outputs(self):
        return self._graph()[1]

    def _needs_graph_build(self):
        """Whether custom losses need the general graph build (Sequential's chain build has
        no place for them)."""
        from shenjing import _loss_graph
        return any(_loss_graph.is_custom(loss) for loss, _ in getattr(self, "_loss_plan", None)
                   or [])

    def _build_graph(self, init=True):
        """Hands the model's graph (``_graph()``: inputs, outputs, nodes) to a new C++ model
        with the graphs of custom losses and add_loss terms, and points every layer at its
        weights (a layer built before keeps them: the new core shares its buffers)."""
        from shenjing import _core, _loss_graph
        from shenjing import _dynamic
        inputs, outputs, nodes = self._graph()
        core = _core.Model()
        ids = {}
        # Axes of unknown size get the data's sizes (or a probe size until data comes).
        concrete = getattr(self, "_concrete_inputs", None) or \
            [_dynamic.probe(t.shape[1:]) for t in inputs]
        self._core_input_shapes = [list(s) for s in concrete]
        for t, shape in zip(inputs, concrete):
            ids[id(t)] = core.add_input(list(shape))
        emitted = {}  # id(layer) -> core layer index
        order = self._graph_order = []  # core layer index -> layer
        self._added_losses = []  # core tensors of add_loss() terms, in trace order
        self._source_ids = {}  # id(source node) -> core tensor (see _emit)
        self._core_graph_nodes = []  # what the core was given, for model files
        self._emit(core, nodes, ids, emitted, order, init)
        self._saved_graph = list(self._core_graph_nodes)  # model files skip the loss graphs
        self._core_graph_ids = dict(ids)
        core.set_outputs([ids[id(t)] for t in outputs])
        self._loss_tensors, self._metric_tensors = _loss_graph.emit(self, core, ids, outputs)
        self._added_losses += [ids[id(t)] for t in getattr(self, "_call_losses", [])]
        for t in self._added_losses:
            core.add_loss_term(t)
        self._set_core(core, order)

    def _unpack(self, core, node, packed, ids, order):
        """The Keras outputs of a node whose core layer packs them into one flat output (a
        recurrent layer's return_state, ``layer._unpacking``): a slice (and a reshape) op
        each, internal to the core: not layers of the model."""
        from shenjing.ops._trace import Operation
        size = core.tensor_shape(packed)[0]
        for t, (begin, end, shape) in zip(node.outputs, node.layer._unpacking(size)):
            ops = [Operation("slice", {"begin": [begin], "end": [end]},
                             name=f"{node.layer.name}/unpack")]
            if len(shape) > 1:
                ops.append(Operation("reshape", {"shape": list(shape)},
                                     name=f"{node.layer.name}/unpack"))
            out = packed
            for op in ops:
                spec = op._spec()
                made = core.add_node(spec, [out])
                self._core_graph_nodes.append({"layer": json.loads(spec), "inputs": [out],
                                               "core": len(order)})
                order.append(op)
                op._attach(core, len(order) - 1)
                out = made
            ids[id(t)] = out

    def _specialize(self, shapes):
        """For a model with axes of unknown size (_dynamic.py): rebuilds the core for these
        concrete per-sample input shapes unless it has them already, keeping the weights
        (shared buffers), the optimizer state and the random streams."""
        from shenjing import _dynamic
        if self._core is None or not _dynamic.is_dynamic(self._input_shapes_list()):
            return
        shapes = [list(s) for s in shapes]
        if shapes == getattr(self, "_core_input_shapes", None):
            return
        old = self._core
        state = self._training_state()
        opt = old.optimizer_state() if self.optimizer is not None else None

        before = [(layer, [tuple(v.shape) for _, v, _ in layer._views])
                  for layer in self._core_layers]

        def rebuild():
            self._concrete_inputs = [tuple(s) for s in shapes]
            self._build_graph(init=False)
            for layer, had in before:
                now = [tuple(v.shape) for _, v, _ in layer._views]
                if now != had:  # e.g. a Dense after Flatten of the unknown axis
                    raise ValueError(
                        f"The weights of layer '{layer.name}' ({type(layer).__name__}) depend "
                        f"on the size of an axis of unknown size (None): {had} for the "
                        f"shapes built before, {now} for input shapes "
                        f"{[(None,) + tuple(s) for s in shapes]}. Give that axis a size in "
                        f"Input(shape=...).")
            self._restore_training_state(state)
            if opt is not None:
                iterations, slots = opt
                self._core.restore_optimizer(iterations, slots if any(slots) else [])
        self._rollback_on_error(rebuild)

    def _set_core(self, core, order):
        self._core = core
        self._core_layers = order
        self._output_tail = tuple(core.output_shape)
        if self.optimizer is not None:
            self._compile_core()

    def _emit(self, core, nodes, ids, emitted, order, init):
        """Adds ``nodes`` to ``core``; ``ids`` maps symbolic tensors to core tensor ids. A
        node of a model used as a layer adds that model's own nodes in its place. Each new
        layer gets its weights as it is added (in the order a Sequential initializes them,
        so the same layers built either way start from the same weights)."""
        from shenjing.models import Model
        for node in nodes:
            layer = node.layer
            if not node.inputs and id(node) in self._source_ids:
                # A Variable's node: one per core model, whichever traces use it.
                ids[id(node.output)] = self._source_ids[id(node)]
                continue
            trace = getattr(node, "trace", None)
            if trace is not None:
                # A custom layer: its traced nodes run in its place.
                ids.update({id(p): ids[id(x)] for p, x in zip(trace.inputs, node.inputs)})
                self._emit(core, trace.nodes, ids, emitted, order, init)
                for made, traced in zip(node.outputs, trace.outputs):
                    ids[id(made)] = ids[id(traced)]
                self._added_losses.extend(ids[id(t)] for t in trace.losses)
                continue
            if isinstance(layer, Model):
                inner = layer._graph()
                sub = {id(t): ids[id(x)] for t, x in zip(inner[0], node.inputs)}
                layer._check_nested()
                self._emit(core, inner[2], sub, emitted, order, init)
                ids[id(node.output)] = sub[id(inner[1][0])]
                continue
            ins = [ids[id(t)] for t in node.inputs]
            record = self._core_graph_nodes
            if id(layer) in emitted:
                out = core.add_shared_node(emitted[id(layer)], ins)
                record.append({"shared": emitted[id(layer)], "inputs": ins})
            else:
                spec = layer._spec()
                out = core.add_node(spec, ins)
                record.append({"layer": json.loads(spec), "inputs": ins, "core": len(order)})
                emitted[id(layer)] = len(order)
                order.append(layer)
                layer._attach(core, len(order) - 1, init=init)
            if len(node.outputs) > 1:  # a recurrent layer's return_state: slice its output
                self._unpack(core, node, out, ids, order)
                continue
            ids[id(node.output)] = out
            if not node.inputs:
                self._source_ids[id(node)] = out
