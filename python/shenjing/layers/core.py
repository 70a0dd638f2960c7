"""Dense, Activation, Dropout and Identity layers."""
import numbers

from shenjing import activations, initializers, regularizers
from shenjing.layers import _seeds
from shenjing.layers.base import Layer


class Dense(Layer):
    """Densely connected layer: ``output = activation(dot(input, kernel) + bias)``.

    Applied to the last axis of its input, as in Keras.

    Args:
        units: positive integer, size of the output.
        activation: name or function from ``shenjing.activations``; None means linear.
        use_bias: whether to add a bias vector (True by default).
        kernel_initializer: 'glorot_uniform' by default.
        bias_initializer: 'zeros' by default.
        kernel_regularizer: None, 'l1', 'l2', or a ``shenjing.regularizers`` instance.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
            raise ValueError(f"Dense: units must be a positive integer, received {units!r}.")
        self.units = int(units)
        self.activation = activations.get_name(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def _initial_values(self, name, shape):
        init = self.kernel_initializer if name == "kernel" else self.bias_initializer
        return init(shape)


class Activation(Layer):
    """Applies an activation function (a name or a ``shenjing.activations`` function)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get_name(activation)


class Dropout(Layer):
    """Randomly sets inputs to 0 with frequency ``rate`` during training, scaling the rest by
    ``1 / (1 - rate)``; does nothing in ``predict``/``evaluate``.

    Args:
        rate: float in [0, 1), fraction of the inputs to drop.
        seed: integer seed for the dropout masks; drawn from the package generator (see
            ``shenjing.utils.set_random_seed``) when None.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be a float in [0, 1), received {rate!r}.")
        if noise_shape is not None:
            raise ValueError("Dropout: noise_shape is not supported.")
        self.rate = float(rate)
        self.seed = seed

    def _core_config(self):
        return _seeds.core_config(self)  # the C++ stream's seed (drawn once when None)


class Identity(Layer):
    """Returns its input unchanged (a placeholder); costs nothing at run time."""

    def __init__(self, **kwargs):  # only the common arguments (name, trainable, dtype)
        super().__init__(**kwargs)


class Lambda(Layer):
    """Keras's ``Lambda``: ``function(inputs, **arguments)``, written with ``shenjing.ops``,
    traced once into the graph like a custom layer's ``call`` (Python is not called per
    batch). ``output_shape`` and ``mask`` are accepted for Keras compatibility; the output
    shape comes from the trace."""

    def __init__(self, function=None, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda expects a function, received {function!r:.100}.")
        if mask is not None:
            raise ValueError("Lambda(mask=...) is not supported: shenjing has no masks yet.")
        self.function = function
        self.output_shape_arg = output_shape
        self.arguments = dict(arguments or {})

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def get_config(self):
        raise ValueError(f"Lambda layer '{self.name}' cannot be saved as a config: its function "
                         f"is Python code, and shenjing never loads code from files. Write it "
                         f"as a custom Layer subclass registered with "
                         f"shenjing.saving.register_keras_serializable.")


class Masking(Layer):
    """Masks a sequence: a timestep whose every feature equals ``mask_value`` is set to 0
    and skipped by the layers after it that honour masks (recurrent layers,
    GlobalAveragePooling1D; Dense and the like pass the mask on).

    Input (batch, timesteps, features); the output has the same shape.
    """

    supports_masking = True
    _makes_mask = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
            raise TypeError(f"Masking: mask_value must be a number, received {mask_value!r}.")
        self.mask_value = float(mask_value)

    def compute_mask(self, inputs, mask=None):
        from shenjing import ops
        return ops.any(ops.not_equal(inputs, self.mask_value), axis=-1)


# Layers that pass a Keras mask on unchanged (as their Keras classes do).
Dense.supports_masking = Activation.supports_masking = Dropout.supports_masking = True
Identity.supports_masking = True
