"""Weight initializers with Keras names and formulas, drawn from shenjing's seeded generator."""
import numpy as np

from shenjing import _config, _random


def _fans(shape):
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    _module = "keras.initializers"

    def __init__(self, seed=None):
        self.seed = seed

    def _rng(self):
        return np.random.default_rng(self.seed) if self.seed is not None else _random.generator()

    def __call__(self, shape, dtype=None):
        return self.sample(tuple(int(s) for s in shape)).astype(np.float32)

    def get_config(self):
        return _config.init_config(self)


class _Constant(Initializer):
    """Initializers that draw nothing: Keras's take no seed and write an empty config."""

    def __init__(self):
        super().__init__(seed=None)

    def get_config(self):
        return {}


class Zeros(_Constant):
    def sample(self, shape):
        return np.zeros(shape)


class Ones(_Constant):
    def sample(self, shape):
        return np.ones(shape)


class GlorotUniform(Initializer):
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out))."""

    def sample(self, shape):
        fan_in, fan_out = _fans(shape)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return self._rng().uniform(-limit, limit, shape)


class HeUniform(Initializer):
    """Uniform in [-limit, limit], limit = sqrt(6 / fan_in)."""

    def sample(self, shape):
        limit = np.sqrt(6.0 / _fans(shape)[0])
        return self._rng().uniform(-limit, limit, shape)


class HeNormal(Initializer):
    """Truncated normal (cut at 2 stddev), stddev = sqrt(2 / fan_in), as Keras."""

    def sample(self, shape):
        std = np.sqrt(2.0 / _fans(shape)[0])
        return _truncated(self._rng(), shape) * std


class Constant(Initializer):
    """Every value ``value``."""

    def __init__(self, value=0.0):
        super().__init__(seed=None)
        self.value = float(value)

    def get_config(self):
        return {"value": self.value}

    def sample(self, shape):
        return np.full(shape, self.value)


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape):
        return self._rng().normal(self.mean, self.stddev, shape)


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape):
        return self._rng().uniform(self.minval, self.maxval, shape)


def _truncated(rng, shape):
    """Standard normal values redrawn until within 2 standard deviations."""
    out = rng.normal(0.0, 1.0, shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(out) > 2
    return out


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape):
        return self.mean + self.stddev * _truncated(self._rng(), shape)


class GlorotNormal(Initializer):
    """Truncated normal, stddev sqrt(2 / (fan_in + fan_out)) / 0.8796 (Keras's variance
    scaling corrects for the truncation)."""

    def sample(self, shape):
        fan_in, fan_out = _fans(shape)
        std = np.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
        return std * _truncated(self._rng(), shape)


class Orthogonal(Initializer):
    """A random orthogonal matrix (Keras's formula: the Q of a QR decomposition of a normal
    matrix, signs fixed by R's diagonal), times ``gain``; over the last axis and the product
    of the others. Keras's default for recurrent kernels."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def sample(self, shape):
        if len(shape) < 2:
            raise ValueError(f"The Orthogonal initializer needs a shape of rank 2 or more, "
                             f"received {shape}.")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = self._rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


zeros, ones = Zeros, Ones
constant, random_normal, random_uniform = Constant, RandomNormal, RandomUniform
truncated_normal, glorot_normal = TruncatedNormal, GlorotNormal
glorot_uniform, he_uniform, he_normal = GlorotUniform, HeUniform, HeNormal
orthogonal = Orthogonal
_BY_NAME = {"zeros": Zeros, "ones": Ones, "glorot_uniform": GlorotUniform,
            "he_uniform": HeUniform, "he_normal": HeNormal, "constant": Constant,
            "random_normal": RandomNormal, "random_uniform": RandomUniform,
            "truncated_normal": TruncatedNormal, "glorot_normal": GlorotNormal,
            "orthogonal": Orthogonal,
            # Keras's aliases ("uniform" is Embedding's default)
            "uniform": RandomUniform, "normal": RandomNormal, "zero": Zeros, "one": Ones}


def get(identifier):
    """An initializer from a name ('glorot_uniform', ...), a class, an instance, or a Keras
    config dict."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return _config.deserialize(identifier, {c.__name__: c for c in _BY_NAME.values()},
                                   "initializer")
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(f"Unknown initializer {identifier!r}. Known initializers: "
                     f"{', '.join(_BY_NAME)}.")
