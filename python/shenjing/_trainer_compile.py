"""What compile() sets up in the core: the losses, metrics and optimizer of each output, the
metrics resolved from the first data seen, and the traced graphs of custom losses and metric
functions (which need the core model rebuilt with them, see _loss_graph.py)."""
from shenjing import _compile_utils as cu, _loss_graph, metrics as metrics_mod
from shenjing import _metric_eager, _weighted_metrics as wm


class TrainerCompile:
    """Trainer's compile state (a mixin of Trainer)."""

    def _compile_core(self):
        for t in self._graph_outputs():
            if t._keras_mask is not None:
                # Keras leaves masked steps out of the loss and metrics of such an output.
                raise ValueError(
                    f"Model output {t.name!r} carries a mask (from Embedding(mask_zero=True) "
                    f"or Masking, passed on by the layers after it). Keras would leave the "
                    f"masked steps out of its loss and metrics, which shenjing does not do "
                    f"yet. Reduce the sequence first (e.g. an LSTM without return_sequences, "
                    f"or GlobalAveragePooling1D).")
        # Frozen layers (layer.trainable = False) take effect here, at compile, as in Keras.
        for i, layer in enumerate(self._core_layers):
            self._core.set_trainable(i, bool(getattr(layer, "_core_trainable", layer.trainable)))
        metrics = self._metrics or [[] for _ in self._loss_plan]
        traced = getattr(self, "_loss_tensors", {})
        if any(_loss_graph.is_custom(loss) and k not in traced
               for k, (loss, _) in enumerate(self._loss_plan)):
            return self._build_graph(init=False)  # a custom loss joins the graph (and compiles)
        want = [len(ms) for ms in _loss_graph.traced_metrics(self)]
        have = getattr(self, "_metric_tensors", {})
        if any(n != len(have.get(k, [])) for k, n in enumerate(want)):
            return self._build_graph(init=False)  # traced metrics join the graph
        traced_state = getattr(self, "_metric_increments", {})
        if any(id(m) not in traced_state for ms in _loss_graph.stateful_metrics(self)
               for m in ms):
            return self._build_graph(init=False)  # custom stateful metrics join it too
        specs = []
        shapes = self._output_shapes()
        for k, ((loss, w), ms) in enumerate(zip(self._loss_plan, metrics)):
            codes = [m._code for m in ms if m._code is not None]
            spec = (6, False, 1.0) if k in traced else loss._spec()
            # Options (label smoothing, ...) are checked against the output's shape here.
            opts = {} if k in traced else loss._options(shapes[k] if k < len(shapes) else None)
            # A traced custom loss is the mean of its graph's values; traced metrics report
            # theirs after the built-in ones (the order _resolve_metrics gives them).
            specs.append(spec + (w, codes, traced.get(k, -1), have.get(k, []), opts,
                                 self._state_specs(k, ms),
                                 getattr(self, "_state_tensors", {}).get(k, [])))
        self._core.compile(specs, self.optimizer._spec())
        wm.apply(self)  # compile cleared the core's weighted metrics
        self.optimizer._attach(self._core, self)

    def _resolve_metrics(self, ys):
        """The metrics of each output for targets ``ys`` ('accuracy' becomes binary, sparse
        or categorical accuracy by the shapes, as Keras); the core counts them from here."""
        if getattr(self, "_deferred_loss_error", None):
            raise ValueError(self._deferred_loss_error)
        if all(isinstance(loss, _loss_graph.NoLoss) for loss, _ in self._loss_plan) and \
                not self._has_added_losses():
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        self._retrace_losses_for(ys)
        shapes = self._output_shapes()
        names = self._out.names
        metrics = []
        for k, ids in enumerate(self._metric_ids):
            ms = [self._metric_object(m, ys[k].shape, shapes[k]) for m in ids]
            for m in ms:
                try:
                    metrics_mod.check_targets(m, ys[k].shape, shapes[k])
                except ValueError as e:
                    if len(names) == 1:
                        raise
                    raise ValueError(f"Output '{names[k]}': {e}") from None
            # In the user's order (Keras's metrics_names); _metric_slices finds each one's
            # values in the core's order.
            metrics.append(ms)
        _metric_eager.decide(self, metrics, ys, shapes)  # custom metrics that cannot trace
        codes = [[m._code for m in ms if m._code is not None] for ms in metrics]
        old = self._metrics
        self._metrics = metrics
        def graphed(ms):  # the metrics traced into the graph
            return [id(m) for m in ms if getattr(m, "_traced", False) or
                    metrics_mod._stateful(m) and not _metric_eager.is_eager(m)]
        # Traced metrics see y_true shaped as the data (sparse labels, say), not the output.
        current = _loss_graph.target_shapes(self)
        wanted = [tuple(y.shape[1:]) if graphed(ms) else s
                  for y, ms, s in zip(ys, metrics, current)]
        if old is None or [graphed(ms) for ms in metrics] != [graphed(ms) for ms in old] or \
                wanted != current:
            if any(graphed(ms) for ms in metrics) or (old and any(graphed(ms) for ms in old)):
                def rebuild():
                    self._target_shapes = wanted
                    self._build_graph(init=False)
                self._rollback_on_error(rebuild)
        if old is None or codes != [[m._code for m in ms if m._code is not None]
                                    for ms in old]:
            self._core.set_metrics(codes)
        # The batch sums: the mean metrics, the weighted metrics' sums, then the states.
        weighted = wm.resolve(self, ys, shapes)
        self._core.set_state_metrics([self._state_specs(k, ms) for k, ms in enumerate(metrics)])
        n_mean = sum(1 for ms in metrics for m in ms  # custom stateful ones: not means
                     if not getattr(m, "_state", False) and not metrics_mod._stateful(m))
        mean_slices, block = wm.slices(weighted, n_mean)
        self._metric_slices, state_slices, self._n_sums = _metric_slices(
            metrics, shapes, getattr(self, "_metric_increments", {}), n_mean + block, weighted)
        means = iter(mean_slices)  # weighted metrics in log order, each from its part
        self._weighted_slices = [state_slices[k, id(m)] if wm.is_state(m) else next(means)
                                 for k, ws in enumerate(weighted) for m in ws]
        self._log_names = cu.metric_names(names, metrics) + [
            name for _, name in wm.weighted_names(names, metrics, weighted)]
        trackers = cu.loss_names(names, self._loss_order)
        self._trackers = list(zip(trackers, self._loss_order))
        keys = dict.fromkeys(["loss"] + self._log_names + trackers)
        self._eval_keys = wm.eval_keys(keys, metrics, weighted, trackers) if any(weighted) \
            else cu.flatten_in_order(keys, metrics, trackers)

    def _state_specs(self, k, metrics):
        """Output k's state metrics for the core: its metrics' and then its weighted metrics'
        (which weigh each row by its sample weight)."""
        weighted = (getattr(self, "_weighted", None) or [])
        return [m._spec() for m in metrics if wm.is_state(m)] + [
            {**m._spec(), "weighted": True}
            for m in (weighted[k] if k < len(weighted) else []) if wm.is_state(m)]

    def _has_added_losses(self):
        """Whether the graph has add_loss() terms (a model may then compile with no loss)."""
        return bool(getattr(self, "_added_losses", None))

    def _metric_object(self, m, y_shape, out_shape):
        """metrics_mod.get, with one wrapper per metric function for the model's life (its
        traced graph is then made once)."""
        metric = metrics_mod.get(m, y_shape, out_shape)
        if (getattr(metric, "_traced", False) or metrics_mod._stateful(metric)) and \
                metric is not m:
            cache = self.__dict__.setdefault("_metric_wrappers", {})
            metric = cache.setdefault(id(m), (m, metric))[1]
        return metric

    def _retrace_losses_for(self, ys):
        """Traces custom losses again when the targets' shape differs from the one their
        y_true was traced for (the output's, until data says otherwise)."""
        traced = getattr(self, "_loss_tensors", {})
        if not traced:
            return
        shapes = _loss_graph.target_shapes(self)
        wanted = [tuple(y.shape[1:]) if k in traced and not isinstance(
            self._loss_plan[k][0], _loss_graph.NoLoss) else shapes[k] for k, y in enumerate(ys)]
        if wanted != shapes:
            def rebuild():
                self._target_shapes = wanted
                self._build_graph(init=False)
            self._rollback_on_error(rebuild)

    @property
    def metrics_names(self):
        """The names of ``evaluate``'s values, in its order (after the first fit/evaluate):
        'loss', then with one output its metrics; with several, Keras 3's order: the
        ``<output>_loss`` values, then the ``<output>_<metric>`` names sorted."""
        if getattr(self, "_metrics", None) is None:
            return ["loss"]
        return list(self._eval_keys)

    def _compile_config(self):
        """Keras 3's compile config (see ``_compile_utils.compile_config``)."""
        config = cu.compile_config(self.optimizer, *self._compile_args)
        config["weighted_metrics"] = cu.serialize_arg(getattr(self, "_weighted_arg", None))
        return config


def _metric_slices(metrics, shapes, increments, states_at, weighted):
    """Where each metric's values sit in the sums a batch call returns: (start, stop, state
    metric or None, output width) per metric in log order, and the sums' length. The core
    returns one sum per mean metric (outputs in order), the weighted metrics' sums, then from
    ``states_at`` per output the custom stateful metrics' variable increments and the state
    metrics' states, then its weighted state metrics' (returned as {(output, id): slice})."""
    from shenjing import _metric_custom
    pos, weighted_states = states_at, {}
    mean, where = 0, {}
    for k, (ms, shape) in enumerate(zip(metrics, shapes)):
        width = int(shape[-1]) if len(shape) > 1 else 1
        custom = [j for j, m in enumerate(ms) if metrics_mod._stateful(m)
                  and not _metric_eager.is_eager(m)]
        for j, m in enumerate(ms):
            if _metric_eager.is_eager(m):  # updated in Python: nothing in the core's sums
                where[k, j] = (0, 0, m, width)
        for j in custom + [j for j, m in enumerate(ms) if getattr(m, "_state", False)]:
            m = ms[j]
            size = sum(_metric_custom.sizes(increments[id(m)])) if j in custom else \
                m._state_size(width)
            where[k, j] = (pos, pos + size, m, width)
            pos += size
        for m in weighted[k] if k < len(weighted) else []:
            if getattr(m, "_state", False):
                size = m._state_size(width)
                weighted_states[k, id(m)] = (pos, pos + size, m, width)
                pos += size
        # The core's mean metrics of an output: the built-in ones, then the traced functions.
        means = [j for j in range(len(ms)) if (k, j) not in where]
        for j in sorted(means, key=lambda j: bool(getattr(ms[j], "_traced", False))):
            where[k, j] = (mean, mean + 1, None, width)
            mean += 1
    return ([where[k, j] for k, ms in enumerate(metrics) for j in range(len(ms))],
            weighted_states, pos)
