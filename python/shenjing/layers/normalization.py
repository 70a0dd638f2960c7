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

    # Written by Keras 3.15 into every config; batch renormalization is not implemented.
    _keras_only = {"renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99}

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
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_initializer = initializers.get(beta_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def _initial_values(self, name, shape):
        # The C++ core checks the axis: only the last one can be normalized.
        return getattr(self, name + "_initializer")(shape)
