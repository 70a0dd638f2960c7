"""Learning-rate schedules with Keras 3's names, arguments, defaults and configs
(``keras.optimizers.schedules``).

The built-in schedules are evaluated by the core inside every optimizer step, from the step
count (``_spec()`` describes them to it), so a scheduled ``fit`` runs no Python per batch;
``schedule(step)`` asks the same C++ code. A user subclass of ``LearningRateSchedule`` runs in
Python: ``fit`` evaluates it before every batch (see ``Optimizer.learning_rate``).
"""
import math
import numbers

from shenjing import _config, _core

_MODULE = "keras.optimizers.schedules"


class LearningRateSchedule:
    """Base class of learning-rate schedules: ``__call__(step)`` returns the rate at a step
    (the optimizer's iterations before the update), ``get_config()`` its constructor args."""

    _module = _MODULE
    _kind = None  # the core's ScheduleKind for the built-in schedules

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _spec(self):
        """The dict the core evaluates (None: a Python schedule)."""
        return None


def _number(cls, what, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value):
        raise ValueError(f"{cls}: argument `{what}` must be a finite number. Received: "
                         f"{what}={value!r}")
    if positive and not value > 0:
        raise ValueError(f"Argument `{what}` must be > 0. Received: {what}={value}")
    return value


class _BuiltIn(LearningRateSchedule):
    def __call__(self, step):
        try:
            step = float(step)
        except (TypeError, ValueError):
            raise ValueError(f"{type(self).__name__}: step must be a number, received "
                             f"{step!r}.") from None
        return _core._schedule_value(self._spec(), step)

    def get_config(self):
        return _config.init_config(self)

    def _spec(self):
        return {"kind": self._kind, **self._core_args()}

    def _core_args(self):
        return {k: v for k, v in self.get_config().items() if k != "name"}


class ExponentialDecay(_BuiltIn):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (the exponent floored
    with ``staircase``)."""

    _kind = 1

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        n = type(self).__name__
        self.initial_learning_rate = _number(n, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number(n, "decay_steps", decay_steps, positive=True)
        self.decay_rate = _number(n, "decay_rate", decay_rate)
        self.staircase, self.name = bool(staircase), name


class PiecewiseConstantDecay(_BuiltIn):
    """``values[0]`` up to ``boundaries[0]`` (inclusive), ``values[i]`` for steps in
    ``(boundaries[i-1], boundaries[i]]``, ``values[-1]`` after the last boundary."""

    _kind = 2

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise ValueError(f"PiecewiseConstantDecay: boundaries and values must be lists. "
                             f"Received: boundaries={boundaries!r}, values={values!r}")
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length {len(values)}.")
        if not boundaries:
            raise ValueError("PiecewiseConstantDecay: at least one boundary is needed.")
        n = type(self).__name__
        self.boundaries = [_number(n, "boundaries", b) for b in boundaries]
        self.values = [_number(n, "values", v) for v in values]
        self.name = name

    def __call__(self, step):
        # Keras casts the boundaries to the step's dtype: an integer step compares with
        # boundaries truncated to integers.
        integer = isinstance(step, numbers.Integral) or (
            hasattr(step, "dtype") and getattr(step.dtype, "kind", "f") in "iu")
        return _core._schedule_value(self._spec(integer), float(step))

    def _spec(self, integer_step=True):
        b = [float(math.trunc(x)) if integer_step else float(x) for x in self.boundaries]
        return {"kind": self._kind, "boundaries": b, "values": [float(v) for v in self.values]}


class PolynomialDecay(_BuiltIn):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``, the step held at
    decay_steps, or with ``cycle`` decay_steps stretched to the next multiple past the step."""

    _kind = 3

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        n = type(self).__name__
        self.initial_learning_rate = _number(n, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number(n, "decay_steps", decay_steps, positive=True)
        self.end_learning_rate = _number(n, "end_learning_rate", end_learning_rate)
        self.power = _number(n, "power", power)
        self.cycle, self.name = bool(cycle), name


class InverseTimeDecay(_BuiltIn):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floored ratio with
    ``staircase``)."""

    _kind = 4

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        n = type(self).__name__
        self.initial_learning_rate = _number(n, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number(n, "decay_steps", decay_steps, positive=True)
        self.decay_rate = _number(n, "decay_rate", decay_rate)
        self.staircase, self.name = bool(staircase), name


class CosineDecay(_BuiltIn):
    """Cosine decay from initial_learning_rate (or, after a linear warmup of warmup_steps to
    warmup_target, from warmup_target) to ``alpha`` times it over decay_steps."""

    _kind = 5

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        n = type(self).__name__
        self.initial_learning_rate = _number(n, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number(n, "decay_steps", decay_steps, positive=True)
        self.alpha = _number(n, "alpha", alpha)
        self.name = name
        self.warmup_target = (None if warmup_target is None
                              else _number(n, "warmup_target", warmup_target))
        self.warmup_steps = _number(n, "warmup_steps", warmup_steps)
        # Keras divides by warmup_steps only while the step is below it: with 0 the decay
        # simply starts from warmup_target.
        if self.warmup_steps < 0:
            raise ValueError(f"CosineDecay: warmup_steps must be >= 0. Received: "
                             f"warmup_steps={warmup_steps}")

    def _core_args(self):
        args = super()._core_args()
        args["warmup"] = args.pop("warmup_target") is not None
        args["warmup_target"] = self.warmup_target or 0.0
        return args


class CosineDecayRestarts(_BuiltIn):
    """SGDR: cosine decay over first_decay_steps, restarting with periods multiplied by t_mul
    and rates by m_mul."""

    _kind = 6

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        n = type(self).__name__
        self.initial_learning_rate = _number(n, "initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _number(n, "first_decay_steps", first_decay_steps,
                                         positive=True)
        self.t_mul = _number(n, "t_mul", t_mul)
        self.m_mul = _number(n, "m_mul", m_mul)
        self.alpha = _number(n, "alpha", alpha)
        self.name = name

    def _core_args(self):
        args = super()._core_args()
        args["decay_steps"] = args.pop("first_decay_steps")
        return args


_BUILT_IN = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay,
                                      PolynomialDecay, InverseTimeDecay, CosineDecay,
                                      CosineDecayRestarts)}


def serialize(learning_rate_schedule):
    """The Keras dict of a schedule: module, class_name, config, registered_name."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise ValueError("serialize: expected a LearningRateSchedule, received "
                         f"{learning_rate_schedule!r:.100}.")
    return _config.serialize(learning_rate_schedule)


def deserialize(config, custom_objects=None):
    """A schedule from its Keras dict (``{"module": "keras.optimizers.schedules",
    "class_name": "ExponentialDecay", "config": {...}}``); user subclasses come from
    custom_objects or the registry."""
    from shenjing import _registry
    with _registry.custom_object_scope(custom_objects):
        out = _config.deserialize(config, _BUILT_IN, "decay")
    if not isinstance(out, LearningRateSchedule):
        raise ValueError(f"decay: {config.get('class_name')!r:.80} is not a "
                         "LearningRateSchedule.")
    return out
