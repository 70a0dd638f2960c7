"""Flatten and Reshape: new per-sample shapes over the same data (free at run time)."""
from shenjing.layers.base import Layer


class Flatten(Layer):
    """Flattens each sample to one axis: (None, 28, 28) -> (None, 784)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)

    def _add_to(self, core):
        core.add_reshape([-1], "Flatten", self.name)


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            self.target_shape = tuple(int(s) for s in target_shape)
        except TypeError:
            raise TypeError(f"Reshape: target_shape must be a tuple of integers, received "
                            f"{target_shape!r}.") from None

    def _add_to(self, core):
        core.add_reshape(list(self.target_shape), "Reshape", self.name)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}
