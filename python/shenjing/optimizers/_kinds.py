"""The optimizers, with Keras 3's names, arguments, defaults and checks; each update rule is
in C++ (cpp/src/optimizers.cpp, kernels/optimizer.inc)."""
from shenjing.optimizers.base import Optimizer


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
    """Adam with decoupled weight decay (Keras's default 0.004; None is refused, as Keras)."""

    _kind = 2

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name,
                         weight_decay=weight_decay, **kwargs)


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


class Nadam(Optimizer):
    """Adam with Nesterov momentum and Keras's momentum schedule
    u_t = beta_1 * (1 - 0.5 * 0.96 ** t) (torch.optim.NAdam with momentum_decay=1)."""

    _kind = 5

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="nadam", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)


class Adamax(Optimizer):
    """Adam's infinity-norm variant: u = max(beta_2 * u, |g|)."""

    _kind = 6

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="adamax", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)


class Lion(Optimizer):
    """Sign of an interpolated momentum: w -= lr * sign(beta_1 * m + (1 - beta_1) * g)."""

    _kind = 7

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name="lion", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if isinstance(beta_1, bool) or not isinstance(beta_1, (int, float)) or \
                beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the "
                             f"optimizer degenerates to SignSGD. Received: beta_1={beta_1}.")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
