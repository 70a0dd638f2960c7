"""BatchNormalization and LayerNormalization with Keras 3 arguments, defaults and weight
order."""
import numbers
import warnings

from shenjing import initializers, regularizers
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


class LayerNormalization(Layer):
    """Normalizes each sample over ``axis`` to zero mean and unit variance (biased, per
    sample, in float32), then scales by ``gamma`` and shifts by ``beta`` (Ba et al., 2016);
    the same in ``fit`` and ``predict``.

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``; with the deprecated
    ``rms_scaling=True`` (Keras's), ``y = x / sqrt(var + epsilon) * gamma`` and no beta.
    Weights, in Keras order: gamma (if ``scale`` or ``rms_scaling``), beta (if ``center`` and
    not ``rms_scaling``), shaped as the normalized axes.

    Args:
        axis: an int or a list/tuple of ints counting the batch axis (-1, the last, by
            default). The normalized axes must be the input's last ones: -1, [-2, -1],
            [1, 2, 3] on a rank-4 input.
        epsilon: small positive float added to the variance, 1e-3 by default.
        center: learn the offset ``beta`` (True by default).
        scale: learn the factor ``gamma`` (True by default).
        beta_initializer, gamma_initializer: 'zeros' and 'ones' by default.
        beta_regularizer, gamma_regularizer: None, 'l1', 'l2', 'l1_l2' or a
            ``shenjing.regularizers`` instance.
        beta_constraint, gamma_constraint: only None (constraints are not supported).
        rms_scaling: Keras's deprecated variant, False by default.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        cls = "LayerNormalization"

        def is_int(v):
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)
        if isinstance(axis, (list, tuple)) and all(is_int(a) for a in axis):
            if not 1 <= len(axis) <= 8:
                raise ValueError(f"{cls}: axis must name 1 to 8 axes, received {axis!r}.")
            self.axis = [int(a) for a in axis]
        elif is_int(axis):
            self.axis = int(axis)
        else:  # Keras's TypeError
            raise TypeError(f"{cls}: Expected an int or a list/tuple of ints for the argument "
                            f"'axis', but received: {axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or \
                not 0 < epsilon < float("inf"):
            raise ValueError(f"{cls}: epsilon must be a positive number, received "
                             f"{epsilon!r}.")
        for what, v in (("beta_constraint", beta_constraint),
                        ("gamma_constraint", gamma_constraint)):
            if v is not None:
                raise ValueError(f"{cls}: {what} is not supported (constraints are not "
                                 f"implemented); received {v!r:.80}.")
        if rms_scaling:
            warnings.warn("You passed `rms_scaling=True`, which is deprecated. This argument "
                          "incorrectly scales the input by the variance, not the root mean "
                          "square. To correctly use RMS Normalization, please use "
                          "`keras.layers.RMSNormalization` instead.")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = self.gamma_constraint = None

    def _initial_values(self, name, shape):
        # The C++ core checks the axes against the input (trailing axes only).
        return getattr(self, name + "_initializer")(shape)


LayerNormalization.supports_masking = True  # per step: a mask changes nothing


def _refuse_masked_statistics(self, inputs, mask=None):
    if mask is not None:  # Keras takes the batch moments over the unmasked steps only
        raise ValueError(f"BatchNormalization '{self.name}': its input carries a mask (from "
                         f"Embedding(mask_zero=True) or Masking); Keras computes the batch "
                         f"statistics over the unmasked steps, which shenjing does not do yet.")
    return None


BatchNormalization.supports_masking = True
BatchNormalization.compute_mask = _refuse_masked_statistics
