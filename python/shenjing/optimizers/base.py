"""The Optimizer base class: Keras 3's arguments (learning rate or schedule, weight decay,
clipping, EMA), its config, and what compile hands the core. The update runs in C++."""
import math
import numbers
import re

import numpy as np

from shenjing import _config
from shenjing.optimizers import schedules as schedules_mod


def _lr_value(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value) or value < 0:
        raise ValueError("Argument `learning_rate` should be a non-negative float, or an "
                         "instance of LearningRateSchedule, or a callable (that takes in the "
                         "current iteration value and returns the corresponding learning rate "
                         f"value). Received instead: learning_rate={value!r}")
    return float(value)


class Optimizer:
    _kind = None
    _module = "keras.optimizers"
    _config_kwargs = ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay", "use_ema",
                      "ema_momentum", "ema_overwrite_frequency")  # taken through **kwargs
    # Written by Keras 3 into every optimizer config: accepted at the values that change nothing.
    _keras_only = {"loss_scale_factor": None, "gradient_accumulation_steps": None}
    _default_weight_decay = None

    def __init__(self, learning_rate, name=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, weight_decay=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, **kwargs):
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(v is not None for v in clips.values()) > 1:
            raise ValueError(f"Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             f"set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        for what, v in clips.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or
                                  not v > 0):
                raise ValueError(f"{type(self).__name__}: {what} must be a positive number or "
                                 f"None, received {v!r}.")
        if weight_decay is not None and (
                isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real)
                or not math.isfinite(weight_decay) or weight_decay < 0):
            raise ValueError(f"{type(self).__name__}: weight_decay must be a non-negative "
                             f"number or None, received {weight_decay!r}.")
        if use_ema:
            if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, numbers.Real) \
                    or not 0 <= ema_momentum <= 1:
                raise ValueError("`ema_momentum` must be in the range [0, 1]. "
                                 f"Received: ema_momentum={ema_momentum}")
            if ema_overwrite_frequency and (
                    not isinstance(ema_overwrite_frequency, int) or
                    isinstance(ema_overwrite_frequency, bool) or ema_overwrite_frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                                 f"Received: ema_overwrite_frequency={ema_overwrite_frequency}")
        unsupported = {k for k, v in kwargs.items() if v is not None}
        if unsupported:
            raise ValueError(f"{type(self).__name__}: unsupported argument(s) "
                             f"{', '.join(sorted(unsupported))}.")
        # Keras clips the gradients before every update (in the core, OptimizerOptions).
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.use_ema, self.ema_momentum = bool(use_ema), ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self._model = None  # the compiled core model, to read iterations
        self._exclude_ids, self._exclude_pattern = (), None
        self._learning_rate = None
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()

    # -- learning rate: a number, a schedule, or a callable ------------------------------------
    @property
    def learning_rate(self):
        """The rate the next step uses: a schedule evaluated at ``iterations``, a callable
        called (no arguments, as Keras), or the number."""
        lr = self._learning_rate
        if isinstance(lr, schedules_mod.LearningRateSchedule):
            return float(lr(self.iterations))
        if callable(lr):
            return float(lr())
        return lr

    @learning_rate.setter
    def learning_rate(self, value):
        if not (isinstance(value, schedules_mod.LearningRateSchedule) or callable(value)):
            if isinstance(self._learning_rate, schedules_mod.LearningRateSchedule):
                raise TypeError("This optimizer was created with a `LearningRateSchedule` "
                                "object as its `learning_rate` constructor argument, hence its "
                                "learning rate is not settable. If you need the learning rate "
                                "to be settable, you should instantiate the optimizer with a "
                                "float `learning_rate` argument.")
            value = _lr_value(value)
        if self._model is not None:  # takes effect at the next step, as Keras's variable
            self._push_learning_rate(self._model, value)  # first: a failure changes nothing
        self._learning_rate = value

    def _python_learning_rate(self):
        """True when the rate comes from Python code (a user schedule or a callable): then
        ``fit`` sets the core's rate before every batch, the one per-batch Python cost."""
        lr = self._learning_rate
        return callable(lr) and not isinstance(lr, schedules_mod._BuiltIn)

    def _push_learning_rate(self, core, lr=None):
        """Hands the core the rate ``lr`` (default: the optimizer's): a built-in schedule
        as its description, anything else as the number it gives at ``iterations``."""
        lr = self._learning_rate if lr is None else lr
        if isinstance(lr, schedules_mod._BuiltIn):
            core.set_schedule(lr._spec())
        elif isinstance(lr, schedules_mod.LearningRateSchedule):
            core.learning_rate = float(lr(core.iterations))
        elif callable(lr):
            core.learning_rate = float(lr())
        else:
            core.learning_rate = lr

    @property
    def iterations(self):
        return self._model.iterations if self._model is not None else 0

    # -- weight decay exclusions ---------------------------------------------------------------
    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Leaves variables out of weight decay: those of ``var_list`` (weight arrays such as
        ``layer.kernel``) and those whose name contains a match of any of ``var_names``
        (``re.search``, e.g. ``["bias"]``). Call it before compile (the optimizer's build)."""
        if self._model is not None:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before "
                             "the optimizer is built.")
        self._exclude_ids = tuple(v for v in (var_list or ()))
        self._exclude_pattern = (re.compile("|".join(set(var_names))) if var_names else None)

    def _decay_mask(self, core, core_layers):
        """For each parameter the core trains: whether weight decay applies to it. A var_list
        entry is found by its memory (a weight array or Variable of this model, not a copy)."""
        from shenjing.variables import Variable
        arrays = []
        for v in self._exclude_ids:
            a = v._value if isinstance(v, Variable) else v
            if not isinstance(a, np.ndarray):
                raise ValueError(f"exclude_from_weight_decay: var_list holds {type(v).__name__}"
                                 "; expected the model's weights (e.g. layer.kernel).")
            if not any(a.shape == value.shape and np.shares_memory(a, value)
                       for layer in core_layers for _, value, _ in layer._views):
                raise ValueError(f"exclude_from_weight_decay: a var_list entry of shape "
                                 f"{a.shape} is not a weight of this model (a copy, such as "
                                 "get_weights() returns, cannot be matched).")
            arrays.append(a)
        mask = []
        for i, k in core.trained_params():
            pname, value, _ = core_layers[i]._views[k]
            excluded = any(a.shape == value.shape and np.shares_memory(a, value)
                           for a in arrays)
            if self._exclude_pattern is not None and self._exclude_pattern.search(pname):
                excluded = True
            mask.append(not excluded)
        return mask

    def _attach(self, core, model):
        """After the core's compile: links the core, its decay mask, its learning rate."""
        self._model = core
        if self.weight_decay and (self._exclude_ids or self._exclude_pattern is not None):
            core.set_decay_mask(self._decay_mask(core, model._core_layers))
        self._push_learning_rate(core)

    def finalize_variable_values(self, var_list=None):
        """Keras's end of fit: with ``use_ema``, the trained weights take their averages."""
        if self._model is not None and self.use_ema:
            self._model.finalize_optimizer()

    # -- the core's view, configs ----------------------------------------------------------------
    def _spec(self):
        lr = self._learning_rate
        spec = dict(kind=self._kind, momentum=0.0,
                    nesterov=False, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                    rho=0.9, centered=False, initial_accumulator_value=0.1)
        spec.update({k: getattr(self, k) for k in spec if hasattr(self, k) and k != "kind"})
        spec["learning_rate"] = 0.0 if callable(lr) else lr
        spec["schedule"] = lr._spec() if isinstance(lr, schedules_mod._BuiltIn) else None
        spec["weight_decay"] = float(self.weight_decay or 0.0)
        spec.update({k: float(getattr(self, k) or 0.0)
                     for k in ("clipnorm", "global_clipnorm", "clipvalue")})
        spec.update(use_ema=self.use_ema, ema_momentum=float(self.ema_momentum),
                    ema_overwrite_frequency=int(self.ema_overwrite_frequency or 0))
        return spec

    def _learning_rate_config(self):
        lr = self._learning_rate
        if isinstance(lr, schedules_mod.LearningRateSchedule):
            return schedules_mod.serialize(lr)
        if callable(lr):
            from shenjing import _registry
            # Keras's form for a function; loading finds it by name among the registered
            # functions or custom_objects, never by importing code.
            return {"module": "builtins", "class_name": "function",
                    "config": _registry.get_registered_name(lr), "registered_name": "function"}
        return lr

    def get_config(self):
        config = _config.init_config(self, skip=("learning_rate",))
        return {"name": config.pop("name"), "learning_rate": self._learning_rate_config(),
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": None, "gradient_accumulation_steps": None, **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = _learning_rate_from_config(lr, custom_objects)
        return _config.from_config(cls, config, cls.__name__)


def _learning_rate_from_config(spec, custom_objects=None):
    from shenjing import _registry
    if spec.get("class_name") == "function":
        fn = _registry.get_registered_object(str(spec.get("config")), custom_objects)
        if fn is None or not callable(fn):
            raise ValueError(f"learning_rate: the function {spec.get('config')!r:.80} is not "
                             "registered; pass it in custom_objects.")
        return fn
    return schedules_mod.deserialize(spec, custom_objects)
