"""The data half of the trainer: x and y checked and converted once per call of fit/evaluate/
predict, per input and per output, each error naming the input or output it is about."""
import numpy as np

from shenjing import _checks as checks, _dynamic, _multi_io as mio, losses
from shenjing._loss_graph import NoLoss
from shenjing.data import DataLoader, Dataset

_SPARSE_CE = losses.SparseCategoricalCrossentropy._kind
_CATEGORICAL_CE = losses.CategoricalCrossentropy._kind


class TrainerData:
    """Mixed into ``Trainer``: needs the model's core, input shapes and compiled losses."""

    def _input_shapes_list(self):
        return getattr(self, "_input_shapes", None) or [self._input_shape]

    def _output_shapes(self):
        return [(None,) + tuple(s) for s in self._core.output_shapes]

    def _as_input(self, x, k=0, what="x", name=None):
        """Input k as a C-contiguous array of that input's shape, in a dtype the core reads
        (converted once). A Sequential without an input shape takes it from x."""
        x = checks.numeric(x, what)
        if self._input_shape is None:
            def infer():  # a build that fails leaves no inferred input shape behind
                self._input_shape = tuple(x.shape[1:])
                self._build()
            self._rollback_on_error(infer)
        elif self._core is None:
            self._build()
        expected = tuple(self._input_shapes_list()[k])
        if not _dynamic.matches(expected, x.shape[1:]):
            adjusted = mio.adjust_rank(x, expected)
            if adjusted is None:
                if name is None:
                    first = self._layers[0] if self._layers else None
                    where = f'layer "{first.name}"' if first else f'model "{self.name}"'
                    tail = ""
                else:
                    where, tail = f'layer "{self.name}"', f" (input '{name}')"
                raise ValueError(
                    f"Input {k} of {where} is incompatible with the layer: expected shape "
                    f"{(None,) + expected}, but received input with shape {x.shape}{tail}.")
            x = adjusted
        return mio.as_core_input(x, what)

    def _inputs(self, x, prefix=""):
        """(xs in model order, input labels) for x in any form Keras takes."""
        names, is_dict = mio.input_structure(self)
        raw = mio.flatten(x, names, is_dict, "x", "input")
        if len(raw) == 1:
            xs, labels = [self._as_input(raw[0])], [prefix + "x"]
        else:
            labels = [f"{prefix}input '{n}'" for n in names]
            xs = [self._as_input(a, k, lab, n) for k, (a, lab, n) in
                  enumerate(zip(raw, labels, names))]
            mio.check_cardinality(xs, [], names, [])
        # Axes of unknown size: the core for these sequence lengths (_dynamic.py).
        self._specialize([a.shape[1:] for a in xs])
        return xs, labels

    def _as_target(self, y, n, k=0, what="y"):
        """Targets of output k as float32, checked against its shape the way Keras checks
        them: shaped like the output (a trailing axis of 1 may be added or dropped), or for
        sparse_categorical_crossentropy one integer label per position of the output but its
        last axis (``(batch,)`` for ``(None, 10)``, ``(batch, time)`` for ``(None, time, 10)``)."""
        if not self._reads_targets(k):
            return np.zeros((n, 0), np.float32)  # no loss: its targets, if any, are unused
        y = checks.numeric(y, what)
        if y.shape[0] != n:
            raise ValueError(f"x and y must have the same number of samples: x has {n}, "
                             f"y has {y.shape[0]}.")
        checks.check_finite(y, what)
        full = self._output_shapes()[k]
        out, shape = tuple(full[1:]), tuple(y.shape[1:])
        single = what == "y"
        name = "" if single else f" (output '{self._out.names[k]}')"
        kind = self._loss_plan[k][0]._kind
        if kind == _SPARSE_CE:
            if shape not in (out[:-1], out[:-1] + (1,)):
                where = "sample" if len(out) == 1 else \
                    f"position of the output {full} but its last axis"
                raise ValueError(
                    f"sparse_categorical_crossentropy{name} expects one integer class label "
                    f"per {where}, i.e. y of shape {(None,) + out[:-1]}; received y with shape "
                    f"{y.shape}. For one-hot targets use categorical_crossentropy.")
            if y.dtype.kind == "f" and np.any(y != np.round(y)):
                raise ValueError(f"sparse_categorical_crossentropy{name} expects integer class "
                                 f"labels, received non-integer values.")
            ignored = getattr(self._loss_plan[k][0], "ignore_class", None)  # left out
            kept = y if ignored is None else y[y != ignored]
            (lo, hi), width = ((kept.min(), kept.max()) if kept.size else (0, 0)), out[-1]
            if lo < 0 or hi >= width:
                bad = lo if lo < 0 else hi
                raise ValueError(f"Received a label value of {bad}{name} which is outside the "
                                 f"valid range of [0, {width - 1}] for a model with {width} "
                                 f"outputs.")
        elif shape not in (out, out + (1,)) and shape + (1,) != out:
            hint = (" For integer class labels use loss='sparse_categorical_crossentropy' or "
                    "shenjing.utils.to_categorical.") if kind == _CATEGORICAL_CE else ""
            where = f"the model output shape {full}" if single else \
                f"the shape {full} of output '{self._out.names[k]}'"
            raise ValueError(f"Target {what} has shape {y.shape}, which does not match "
                             f"{where}.{hint}")
        return np.ascontiguousarray(y, dtype=np.float32)  # checked above

    def _reads_targets(self, k):
        """Whether output k's targets are used: by its loss, or by its metrics when compile
        gave it none."""
        if not isinstance(self._loss_plan[k][0], NoLoss):
            return True
        weighted = getattr(self, "_weighted_ids", None) or []
        return bool(self._metric_ids[k] or (k < len(weighted) and weighted[k]))

    def _arrays(self, x, y, what, prefix=""):
        """x and y converted and checked (``mio.Prepared``: lists in model order)."""
        if isinstance(x, mio.Prepared):  # checked before: only the core's shapes to set
            self._specialize([a.shape[1:] for a in x.xs])
            return x
        xs, xlabels = self._inputs(x, prefix)
        outs = self._out
        unused = [name for k, name in enumerate(outs.names) if not self._reads_targets(k)]
        if y is None and len(unused) == len(outs.names):
            y = {name: None for name in outs.names}  # only add_loss terms: no targets
        elif isinstance(y, dict) and unused:
            y = {**{name: None for name in unused}, **y}
        if y is None:
            raise ValueError(f"{what} needs targets y.")
        raw = mio.flatten(y, outs.names, outs.is_dict, "y", "output")
        n = len(xs[0])
        # Outputs without a loss take no targets (any given are not read).
        raw = [np.zeros((n, 0), np.float32) if name in unused else a
               for a, name in zip(raw, outs.names)]
        if len(raw) == 1:
            ylabels = ["y"]
        else:
            ylabels = [f"y for output '{n}'" for n in outs.names]
            raw = [checks.numeric(a, lab) for a, lab in zip(raw, ylabels)]
            mio.check_cardinality(xs, raw, mio.input_structure(self)[0], outs.names)
        ys = [self._as_target(a, n, k, lab) for k, (a, lab) in enumerate(zip(raw, ylabels))]
        for a, lab in zip(xs, xlabels):
            checks.check_finite(a, lab)
        return mio.Prepared(xs, ys, n)

    def _data(self, x, y, batch_size, what, shuffle=False):
        """(Prepared, batch_size, order_fn, steps) for arrays or a DataLoader/Dataset."""
        drop_last = False
        order = None
        if isinstance(x, (Dataset, DataLoader)):
            self._single_io_only(what)
        if isinstance(x, Dataset):
            x = DataLoader(x, batch_size=checks.check_batch_size(batch_size))
        if isinstance(x, DataLoader):
            if y is not None:
                raise ValueError(f"{what}: pass y inside the DataLoader, not separately.")
            loader = x
            x, y = loader.dataset.x, loader.dataset.y
            batch_size, drop_last, order = loader.batch_size, loader.drop_last, loader.order
        else:
            batch_size = checks.check_batch_size(batch_size)
        p = self._arrays(x, y, what)
        n = p.n
        if order is None:
            order = (lambda: self._shuffle_generator().permutation(n).astype(np.int64)) \
                if shuffle else (lambda: None)
        steps = n // batch_size if drop_last else -(-n // batch_size)
        if steps == 0:
            raise ValueError(f"{what}: no complete batch of {batch_size} samples in "
                             f"{n} samples with drop_last=True.")
        return p, batch_size, order, steps

    def _single_io_only(self, what):
        n_in = len(mio.input_structure(self)[0])
        n_out = len(mio.output_structure(self).names)
        if n_in > 1 or n_out > 1:
            raise ValueError(
                f"{what}: a DataLoader/Dataset holds one x and one y array, but model "
                f"'{self.name}' has {n_in} input(s) and {n_out} output(s). Pass x and y as "
                f"lists (or dicts keyed by name) of arrays instead.")

    def _split(self, x, y, validation_split):
        """fit's validation_split: the last samples of every array held out (before
        shuffling), as Keras's ``train_validation_split``."""
        if isinstance(x, (DataLoader, Dataset)):
            raise ValueError("validation_split needs arrays x and y, not a DataLoader.")
        if y is None:
            raise ValueError("fit needs targets y (validation_split splits x and y).")
        p = self._arrays(x, y, "fit")
        at = int(p.n * (1 - validation_split))
        if at == 0 or at == p.n:
            raise ValueError(f"validation_split={validation_split} leaves no samples for "
                             f"training or validation with {p.n} samples.")
        (tx, vx), (ty, vy) = mio.split(p.xs, at), mio.split(p.ys, at)
        return mio.Prepared(tx, ty, at), mio.Prepared(vx, vy, p.n - at)
