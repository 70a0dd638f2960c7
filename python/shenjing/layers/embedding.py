"""Embedding: Keras 3's lookup of integer ids in a trainable table."""
import numbers
import warnings

import numpy as np

from shenjing import _config, initializers, regularizers
from shenjing.layers.base import Layer

# Ids reach the core as float32, exact up to 2^24: a larger table could not tell ids apart.
MAX_INPUT_DIM = 2 ** 24


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{what}` must be a positive integer. Received: {what}={value} "
                         f"(of type {type(value).__name__}).")
    return int(value)


class Embedding(Layer):
    """Turns non-negative integer ids into dense vectors: ``output[..., :] =
    embeddings[id]``, the output shape being the input shape plus ``(output_dim,)``.

    Ids of any dtype are accepted; non-integer ids are truncated toward zero (Keras casts them
    to int32). An id outside ``[0, input_dim)`` (or NaN) is a ValueError naming the layer and
    the id, raised before the batch changes anything.

    Args:
        input_dim: vocabulary size (largest id + 1), at most 2^24.
        output_dim: size of each embedding vector.
        embeddings_initializer: 'uniform' (RandomUniform(-0.05, 0.05)) by default.
        embeddings_regularizer: None, 'l1', 'l2', or a ``shenjing.regularizers`` instance.
        weights: initial table, an array of shape ``(input_dim, output_dim)`` (or a list
            holding it), used instead of the initializer, as in Keras.

    Training with plain SGD (momentum 0) and no regularizer updates only the rows the batch
    used; other optimizers update the whole table, as Keras does.
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, lora_rank=None, lora_alpha=None, quantization_config=None,
                 **kwargs):
        input_dim = _positive_int(input_dim, "input_dim")
        output_dim = _positive_int(output_dim, "output_dim")
        if input_dim > MAX_INPUT_DIM:
            raise ValueError(f"Embedding: input_dim must be at most 2^24 = {MAX_INPUT_DIM} (ids "
                             f"travel as exact float32), received {input_dim}.")
        if kwargs.pop("input_length", None) is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.")
        super().__init__(**kwargs)
        if embeddings_constraint is not None:
            raise ValueError("Embedding: embeddings_constraint is not supported.")
        if lora_rank is not None:
            raise ValueError("Embedding: lora_rank is not supported (LoRA is not implemented).")
        if quantization_config is not None:
            raise ValueError("Embedding: quantization_config is not supported.")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = None
        self.mask_zero = bool(mask_zero)
        self._initial_table = None if weights is None else self._check_weights(weights)

    supports_masking = True

    @property
    def _makes_mask(self):
        return self.mask_zero

    def compute_mask(self, inputs, mask=None):
        """With ``mask_zero``, the steps whose id is 0 (padding) are masked: a bool tensor of
        the ids' shape, made by ``ops.not_equal`` as Keras does."""
        if not self.mask_zero:
            return None
        from shenjing import ops
        return ops.not_equal(inputs, 0)

    def _check_weights(self, weights):
        # Keras: a list of one array is the weight list, anything else is the array itself.
        if not (isinstance(weights, list) and len(weights) == 1):
            weights = [weights]
        table = np.asarray(weights[0], dtype=np.float32)
        shape = (self.input_dim, self.output_dim)
        if table.shape != shape:
            raise ValueError(f"Layer {self.name} weight shape {shape} is not compatible with "
                             f"provided weight shape {table.shape}.")
        if not np.all(np.isfinite(table)):
            raise ValueError(f"Layer '{self.name}' weight 'embeddings' contains NaN or inf.")
        return table.copy()

    def _initial_values(self, name, shape):
        if self._initial_table is not None:
            return self._initial_table
        return self.embeddings_initializer(shape)

    def get_config(self):
        # Keras 3.15's keys, in its order (the table itself is not part of the config).
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32",
                "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": _config.plain(self.embeddings_initializer),
                "embeddings_regularizer": _config.plain(self.embeddings_regularizer),
                "activity_regularizer": None, "embeddings_constraint": None,
                "mask_zero": self.mask_zero, "quantization_config": None}
