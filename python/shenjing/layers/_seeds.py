"""The seeds of layers with a random stream in the core (Dropout, the noise layers, the random
image layers): checked as Keras takes them, and one drawn per layer when None."""
import numbers

from shenjing import _random


def check_seed(seed, cls):
    """None or a non-negative integer (as an int)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"{cls}: seed must be None or a non-negative integer, received "
                         f"{seed!r}.")
    return None if seed is None else int(seed)


def core_config(layer):
    """The layer's config for the core, with the seed its C++ stream starts from. One seed
    is drawn per layer (at its first build) from the package generator
    (``shenjing.utils.set_random_seed``) when ``seed`` is None, so that rebuilding a model
    draws nothing more: a Sequential (rebuilt at every add) and the same functional model get
    the same. Configs carry integers exactly up to 2^53."""
    seed = layer.seed
    if seed is None:
        if getattr(layer, "_drawn_seed", None) is None:
            layer._drawn_seed = _random.draw_seed()
        seed = layer._drawn_seed
    return {**layer.get_config(), "seed": int(seed) % 2**53}
