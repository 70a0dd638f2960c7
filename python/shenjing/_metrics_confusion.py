"""Keras 3's confusion metrics (keras/src/metrics/confusion_metrics.py): Precision, Recall, AUC
and the counts TruePositives, FalsePositives, TrueNegatives, FalseNegatives. The core counts
tp, fp, tn, fn per threshold (pred > threshold, y_true cast to bool; AUC's evenly spaced
thresholds bucket each prediction once, as Keras's optimized update does); result() follows
Keras's formulas on the accumulated counts."""
import numbers

import numpy as np

from shenjing._metrics_state import (EPSILON, StateMetric, _CONFUSION, _f32, divide_no_nan,
                                     _int_arg)

NEG_INF = -1e10  # Keras's metrics_utils.NEG_INF: what top_k filtering leaves outside the top k
_TP, _FP, _TN, _FN = range(4)


def _to_list(x):
    return list(x) if isinstance(x, (list, tuple, np.ndarray)) else [x]


def parse_thresholds(thresholds, default):
    """Keras's parse_init_thresholds: a list of thresholds in [0, 1]."""
    if thresholds is None:
        return [default]
    values = _to_list(thresholds)
    bad = [t for t in values if t is None or isinstance(t, bool) or
           not isinstance(t, numbers.Real) or not 0 <= t <= 1]
    if bad or not values:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad or values}")
    return [float(t) for t in values]


def evenly_distributed(thresholds):
    """Keras's is_evenly_distributed_thresholds."""
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=EPSILON))


class _Confusion(StateMetric):
    """Counts per threshold (and per label with multi_label): [tp, fp, tn, fn], each
    thresholds x labels."""

    _kind = _CONFUSION
    top_k = None
    class_id = None
    multi_label = False

    def _set_thresholds(self, thresholds):
        self._thr = list(thresholds)
        self._evenly = evenly_distributed(self._thr)

    def _labels(self, width):
        return width if self.multi_label and self.class_id is None else 1

    def _spec(self):
        return {"kind": self._kind, "thresholds": [float(t) for t in self._thr],
                "evenly": self._evenly,
                "with_epsilon": self._evenly and (self._thr[0] < 0 or self._thr[-1] > 1),
                "top_k": self.top_k or 0,
                "class_id": -1 if self.class_id is None else self.class_id,
                "multi_label": bool(self.multi_label)}

    def _state_size(self, width):
        return 4 * len(self._thr) * self._labels(width)

    def _check_width(self, width):
        if self.class_id is not None and self.class_id >= width:
            raise ValueError(f"{type(self).__name__}: class_id={self.class_id} is out of "
                             f"range for predictions of {width} classes.")

    def _counts(self, state, width):
        counts = np.asarray(state, np.float64).reshape(4, len(self._thr), -1)
        return counts if self.multi_label else counts[..., 0]

    def _one(self, values):
        return _f32(values[0] if len(self._thr) == 1 else values)


class _Count(_Confusion):
    _cond = None

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = parse_thresholds(thresholds, 0.5)
        self._set_thresholds(self.thresholds)

    def _result_from(self, state, width):
        return self._one(self._counts(state, width)[self._cond])

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds}


class TruePositives(_Count):
    """Weighted count of positives predicted above the threshold(s)."""
    _cond = _TP


class FalsePositives(_Count):
    """Weighted count of negatives predicted above the threshold(s)."""
    _cond = _FP


class TrueNegatives(_Count):
    """Weighted count of negatives predicted at or below the threshold(s)."""
    _cond = _TN


class FalseNegatives(_Count):
    """Weighted count of positives predicted at or below the threshold(s)."""
    _cond = _FN


class Precision(_Confusion):
    """tp / (tp + fp) per threshold; with top_k only the row's top_k predictions count as
    positive, with class_id only that class."""

    _pair = _FP

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.top_k = None if top_k is None else _int_arg(top_k, "top_k", 1)
        self.class_id = None if class_id is None else _int_arg(class_id, "class_id", 0)
        self.thresholds = parse_thresholds(thresholds, 0.5 if top_k is None else NEG_INF)
        self._set_thresholds(self.thresholds)

    def _result_from(self, state, width):
        c = self._counts(state, width)
        return self._one(divide_no_nan(c[_TP], c[_TP] + c[self._pair]))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


class Recall(Precision):
    """tp / (tp + fn) per threshold (top_k and class_id as Precision)."""

    _pair = _FN


_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = ("interpolation", "majoring", "minoring")


class AUC(_Confusion):
    """Keras's AUC: confusion counts at num_thresholds thresholds (-eps, 1/(n-1), ..., 1+eps)
    and the Riemann sum (or Davis & Goadrich's PR interpolation) of the curve they give."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        if not isinstance(curve, str) or curve not in \
                [*_CURVES, *_CURVES.values()]:
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are '
                             f'["PR", "ROC", "PRGAIN"]')
        if summation_method not in [*_SUMMATIONS, *(s.capitalize() for s in _SUMMATIONS)]:
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". '
                             f'Expected values are ["interpolation", "majoring", "minoring"]')
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(float(t) for t in _to_list(thresholds))
            self.num_thresholds = len(inner) + 2
            evenly = evenly_distributed(np.array([0.0] + inner + [1.0]))
        else:
            if isinstance(num_thresholds, bool) or \
                    not isinstance(num_thresholds, numbers.Integral) or num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            evenly = True
        super().__init__(name=name, dtype=dtype)
        self.curve = _CURVES[curve.lower()]
        self.summation_method = summation_method.lower()
        if num_labels is not None and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        if num_labels is not None:
            num_labels = _int_arg(num_labels, "num_labels", 1)
        self.multi_label, self.num_labels = bool(multi_label), num_labels
        if label_weights is not None:
            label_weights = [float(w) for w in np.asarray(label_weights, np.float64).ravel()]
            if any(not np.isfinite(w) or w < 0 for w in label_weights):
                raise ValueError(f"label_weights must be finite and non-negative, received "
                                 f"{label_weights}.")
        self.label_weights = label_weights
        self._from_logits = bool(from_logits)
        self._thr = [0.0 - EPSILON] + inner + [1.0 + EPSILON]
        self._evenly = evenly

    @property
    def thresholds(self):
        return list(self._thr)

    def _spec(self):
        spec = super()._spec()
        spec["with_epsilon"] = self._evenly  # the first and last thresholds are -eps, 1+eps
        spec["from_logits"] = self._from_logits
        if self.label_weights is not None and not self.multi_label:
            spec["label_weights"] = self.label_weights
        return spec

    def _check_width(self, width):
        if self.num_labels is not None and width != self.num_labels:
            raise ValueError(f"AUC was built for num_labels={self.num_labels}; received "
                             f"predictions of {width} labels.")
        if self.label_weights is not None and len(self.label_weights) != width:
            raise ValueError(f"AUC: label_weights has {len(self.label_weights)} values for "
                             f"predictions of {width} labels.")

    def _check_targets(self, y_true_shape, y_pred_shape):
        if self.multi_label and len(y_pred_shape) != 2:
            raise ValueError(f"`y_pred` must have rank 2 when `multi_label=True`. Found rank "
                             f"{len(y_pred_shape)}. Full shape received for `y_pred`: "
                             f"{tuple(y_pred_shape)}")
        super()._check_targets(y_true_shape, y_pred_shape)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.multi_label and np.ndim(y_pred) != 2:
            raise ValueError(f"`y_pred` must have rank 2 when `multi_label=True`. Found rank "
                             f"{np.ndim(y_pred)}. Full shape received for `y_pred`: "
                             f"{np.shape(y_pred)}")
        super().update_state(y_true, y_pred, sample_weight=sample_weight)

    def result(self):
        width = self._width or self.num_labels or 1
        state = self._total if self._total is not None else np.zeros(self._state_size(width))
        return self._result_from(state, width)

    def _result_from(self, state, width):
        tp, fp, tn, fn = self._counts(state, width)
        n = self.num_thresholds
        if self.curve == "PR" and self.summation_method == "interpolation":
            per = self._interpolate_pr(tp, fp, fn, n)
        else:
            recall = divide_no_nan(tp, tp + fn)
            if self.curve == "ROC":
                x, y = divide_no_nan(fp, fp + tn), recall
            elif self.curve == "PR":
                x, y = recall, divide_no_nan(tp, tp + fp)
            else:  # PRGAIN
                scale = divide_no_nan(tp + fn, tn + fp)
                recall_gain = np.where(tp == 0, 0.0, 1.0 - scale * divide_no_nan(fn, tp))
                precision_gain = np.where(tp == 0, 1.0, 1.0 - scale * divide_no_nan(fp, tp))
                x, y = np.maximum(recall_gain, 0.0), precision_gain
            if self.summation_method == "interpolation":
                heights = (y[:n - 1] + y[1:]) / 2.0
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:n - 1], y[1:])
            else:
                heights = np.maximum(y[:n - 1], y[1:])
            per = np.sum((x[:n - 1] - x[1:]) * heights, axis=0)
        if self.multi_label:
            if self.label_weights is None:
                return _f32(np.mean(per))
            lw = np.asarray(self.label_weights, np.float64)
            return _f32(divide_no_nan(np.sum(per * lw), np.sum(lw)))
        return _f32(per)

    @staticmethod
    def _interpolate_pr(tp, fp, fn, n):
        """Davis & Goadrich's interpolation of the PR curve, in Keras's closed form."""
        dtp = tp[:n - 1] - tp[1:]
        p = tp + fp
        dp = p[:n - 1] - p[1:]
        slope = divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:n - 1] > 0) & (p[1:] > 0)
        ratio = np.where(both, divide_no_nan(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore"):
            logs = np.log(np.where(both, ratio, 1.0))
        inc = divide_no_nan(slope * (dtp + intercept * logs), np.maximum(tp[1:] + fn[1:], 0))
        return np.sum(inc, axis=0)

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype,
                  "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels, "label_weights": self.label_weights,
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
