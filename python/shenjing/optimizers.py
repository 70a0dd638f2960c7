"""Optimizers with Keras 3 names, arguments and defaults; the update runs in C++."""
from shenjing import _config


class Optimizer:
    _kind = None
    _module = "keras.optimizers"

    def __init__(self, learning_rate, name=None, **kwargs):
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
        return spec

    def get_config(self):
        return _config.init_config(self)

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
