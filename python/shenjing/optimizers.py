"""Optimizers with Keras 3 names, arguments and defaults; the update runs in C++."""
from shenjing import _config


class Optimizer:
    _kind = None
    _module = "keras.optimizers"
    _config_kwargs = ("clipnorm", "clipvalue", "global_clipnorm")  # taken through **kwargs
    # Written by Keras 3 into every optimizer config: accepted at the values that change nothing.
    _keras_only = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                   "loss_scale_factor": None, "gradient_accumulation_steps": None}

    def __init__(self, learning_rate, name=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, **kwargs):
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
        # Keras clips the gradients before every update (in the core, OptimizerOptions).
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        unsupported = {k for k, v in kwargs.items() if v is not None}
        if unsupported:
            raise ValueError(f"{type(self).__name__}: unsupported argument(s) "
                             f"{', '.join(sorted(unsupported))}.")
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()
        self._model = None  # the compiled core model, to read iterations

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"learning_rate must be a positive number, received {value!r}.")
        self._learning_rate = float(value)

    @property
    def iterations(self):
        return self._model.iterations if self._model is not None else 0

    def _spec(self):
        spec = dict(kind=self._kind, learning_rate=self.learning_rate, momentum=0.0,
                    nesterov=False, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                    weight_decay=0.0, rho=0.9, centered=False, initial_accumulator_value=0.1)
        spec.update({k: getattr(self, k) for k in spec if hasattr(self, k) and k != "kind"})
        spec.update({k: float(getattr(self, k) or 0.0)
                     for k in ("clipnorm", "global_clipnorm", "clipvalue")})
        return spec

    def get_config(self):
        return {**_config.init_config(self), "clipnorm": self.clipnorm,
                "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}

    @classmethod
    def from_config(cls, config):
        return _config.from_config(cls, config, cls.__name__)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum: Keras 3's update rule."""

    _kind = 0

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD: momentum must be in [0, 1], received {momentum!r}.")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)


class Adam(Optimizer):
    _kind = 1

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adam", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon, self.amsgrad = float(epsilon), bool(amsgrad)


class AdamW(Adam):
    _kind = 2

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, name="adamw", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name, **kwargs)
        self.weight_decay = float(weight_decay)


class RMSprop(Optimizer):
    _kind = 3

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, name="rmsprop", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon, self.centered = float(epsilon), bool(centered)


class Adagrad(Optimizer):
    _kind = 4

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 name="adagrad", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier):
    """An optimizer from a name ('adam', 'sgd', ...), an instance, or a Keras config dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return _config.deserialize(identifier, {c.__name__: c for c in _BY_NAME.values()},
                                   "optimizer")
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}. Known optimizers: "
                     f"{', '.join(_BY_NAME)}.")
