"""Weight regularizers: the penalty is added to the loss and its gradient applied in C++."""
from shenjing import _config


class Regularizer:
    _module = "keras.regularizers"
    l1 = 0.0
    l2 = 0.0

    def __call__(self, x):
        import numpy as np
        x = np.asarray(x, dtype=np.float64)
        return self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum()

    def get_config(self):
        return _config.init_config(self)


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = float(l1)


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = float(l2)


l1, l2, l1_l2 = L1, L2, L1L2


def get(identifier):
    """A regularizer from None, 'l1', 'l2', 'l1_l2', an instance, or a Keras config dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return _config.deserialize(identifier, {"L1": L1, "L2": L2, "L1L2": L1L2},
                                   "regularizer")
    by_name = {"l1": L1, "l2": L2, "l1_l2": L1L2}
    if isinstance(identifier, str) and identifier in by_name:
        return by_name[identifier]()
    raise ValueError(f"Unknown regularizer {identifier!r}. Known: l1, l2, l1_l2.")
