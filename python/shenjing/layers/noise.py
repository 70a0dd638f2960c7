"""The training-only regularization layers: GaussianNoise, GaussianDropout,
SpatialDropout1D/2D/3D and ActivityRegularization (computed in C++: layers/noise.cpp and
layers/activation_layers.cpp). The noise layers draw from a seeded stream in the core, active
in ``fit`` only; ``predict`` and ``evaluate`` pass the input through."""
import numbers

from shenjing.layers import _seeds
from shenjing.layers.base import Layer


def _rate(cls, what, v, closed):
    """v in [0, 1] (closed) or [0, 1); ValueError in Keras's words otherwise."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and \
        (0 <= v <= 1 if closed else 0 <= v < 1)
    if not ok:
        bound = "between 0 and 1" if closed else "in [0, 1)"
        raise ValueError(f"{cls}: Invalid value received for argument `{what}`. Expected a "
                         f"float value {bound}. Received: {what}={v!r}")
    return float(v)


def _seed(cls, seed):
    return _seeds.check_seed(seed, cls)


class _Seeded(Layer):
    """A layer with a random stream in the core: the seed in its config, drawn once from the
    package generator (``shenjing.utils.set_random_seed``) when None, as Dropout does."""

    supports_masking = True

    def _core_config(self):
        return _seeds.core_config(self)  # the C++ stream's seed (drawn once when None)


class GaussianNoise(_Seeded):
    """Adds N(0, stddev^2) noise in training (``stddev`` in [0, 1], as Keras)."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = _rate("GaussianNoise", "stddev", stddev, closed=True)
        self.seed = _seed("GaussianNoise", seed)


class GaussianDropout(_Seeded):
    """Multiplies by 1-centred Gaussian noise of standard deviation sqrt(rate / (1 - rate))
    in training. ``rate`` is in [0, 1): at 1 Keras divides by zero."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _rate("GaussianDropout", "rate", rate, closed=False)
        self.seed = _seed("GaussianDropout", seed)


class _SpatialDropout(_Seeded):
    """Drops whole channels (feature maps) in training: one inverted-dropout value per sample
    and channel, the same at every spatial position. ``rate`` in [0, 1)."""

    _spatial_rank = 1

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        cls = type(self).__name__
        self.rate = _rate(cls, "rate", rate, closed=False)
        self.seed = _seed(cls, seed)
        if data_format is None:
            data_format = "channels_last"
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"{cls}: data_format must be 'channels_last' or 'channels_first', "
                             f"received {data_format!r}.")
        self.data_format = data_format

    def get_config(self):  # Keras's: no 'trainable'
        config = {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": "float32"}
        if self._spatial_rank > 1:
            config["data_format"] = self.data_format
        return config


class SpatialDropout1D(_SpatialDropout):
    """Input (batch, timesteps, channels): drops whole channels."""

    _spatial_rank = 1

    def __init__(self, rate, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)


class SpatialDropout2D(_SpatialDropout):
    """Input (batch, rows, cols, channels) (channels_last) or (batch, channels, rows, cols)."""

    _spatial_rank = 2

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, data_format, seed, name, dtype)


class SpatialDropout3D(_SpatialDropout):
    """Input (batch, d1, d2, d3, channels) (channels_last) or (batch, channels, d1, d2, d3)."""

    _spatial_rank = 3

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, data_format, seed, name, dtype)


class ActivityRegularization(Layer):
    """Passes its input through and adds ``(l1 * sum|x| + l2 * sum x^2) / batch_size`` to the
    loss in ``fit`` and ``evaluate`` (Keras 3 divides the activity penalty by the batch size).
    """

    supports_masking = True

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        for what, v in (("l1", l1), ("l2", l2)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < 1e30:
                raise ValueError(f"ActivityRegularization: Invalid value for argument {what}: "
                                 f"expected a non-negative float. Received: {what}={v!r}")
        self.l1 = float(l1)
        self.l2 = float(l2)
