"""BatchNormalization with Keras 3 arguments, defaults and weight order."""
import numbers

from shenjing import initializers
from shenjing.layers.base import Layer


class BatchNormalization(Layer):
    """Normalizes each channel (the last axis) to zero mean and unit variance, then scales by
    ``gamma`` and shifts by ``beta``.

    During ``fit`` it uses the statistics of the batch (mean and biased variance over every
    axis but the last) and updates ``moving_mean`` / ``moving_variance`` as
    ``moving = moving * momentum + batch * (1 - momentum)``; ``predict`` and ``evaluate`` use
    the moving statistics. Weights, in Keras order: gamma (if ``scale``), beta (if ``center``),
    moving_mean, moving_variance; the moving statistics are non-trainable.

    Args:
        axis: the normalized axis; only the last (-1, the default) is supported.
        momentum: float in [0, 1], 0.99 by default.
        epsilon: small positive float added to the variance, 1e-3 by default.
        center: learn the offset ``beta`` (True by default).
        scale: learn the factor ``gamma`` (True by default).
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: 'zeros', 'ones', 'zeros', 'ones' by default.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        cls = "BatchNormalization"
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"{cls}: axis must be an integer, received {axis!r}.")
        for what, v in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"{cls}: {what} must be a number, received {v!r}.")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{cls}: momentum must be in [0, 1], received {momentum!r}.")
        if not epsilon > 0:
            raise ValueError(f"{cls}: epsilon must be positive, received {epsilon!r}.")
        for what, v in (("beta_regularizer", beta_regularizer),
                        ("gamma_regularizer", gamma_regularizer),
                        ("beta_constraint", beta_constraint),
                        ("gamma_constraint", gamma_constraint)):
            if v is not None:
                raise ValueError(f"{cls}: {what} is not supported.")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.synchronized = bool(synchronized)
        self._inits = {"gamma": initializers.get(gamma_initializer),
                       "beta": initializers.get(beta_initializer),
                       "moving_mean": initializers.get(moving_mean_initializer),
                       "moving_variance": initializers.get(moving_variance_initializer)}

    def _add_to(self, core):
        rank = len(core.output_shape)  # per-sample rank of this layer's input
        if self.axis not in (-1, rank):
            raise ValueError(
                f"Layer '{self.name}' (BatchNormalization): only the last axis can be "
                f"normalized (axis=-1 or {rank} for this input of rank {rank + 1}), received "
                f"axis={self.axis}.")
        core.add_batch_norm(self.momentum, self.epsilon, self.center, self.scale, self.name)

    def _initial_values(self, name, shape):
        return self._inits[name](shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale}
