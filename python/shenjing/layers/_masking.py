"""Keras masks on symbolic tensors, as Keras 3.15 propagates them.

A mask is an ordinary bool tensor of the graph, (batch, timesteps), made by primitive ops when
a layer computes it (``Embedding(mask_zero=True)``: ``not_equal(ids, 0)``; ``Masking``:
``any(not_equal(x, mask_value), axis=-1)``), so the core runs and saves it like any op (Keras's
summary lists those ops too). A tensor carries its mask as ``tensor._keras_mask``:

- layers with ``supports_masking`` (Dense, Activation, Dropout, the normalizations, ...) pass
  their input's mask on unchanged; other layers drop it with Keras's warning;
- layers whose ``call`` takes ``mask`` (recurrent layers, GlobalAveragePooling1D) read it: the
  mask becomes their node's second input (the core layer's ``optional_mask``) and the
  config's ``"kwargs": {"mask": ...}``, as Keras writes it;
- ``compute_mask`` gives the output's mask (a recurrent layer's is its input's mask when it
  returns sequences, else none).
Layers that Keras gives a mask rule shenjing does not implement yet (merge layers) refuse a
masked input with a ValueError rather than computing something else.
"""
import warnings


def call_mask(layer, tensors, explicit):
    """The mask a call of ``layer`` on ``tensors`` reads: ``mask=`` when given, else the
    single input's mask."""
    if explicit is not None:
        return explicit
    if len(tensors) != 1:
        if any(t._keras_mask is not None for t in tensors):
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) received an input that carries "
                f"a mask (from Embedding(mask_zero=True) or Masking). Keras combines the "
                f"masks of several inputs here, which shenjing does not do yet.")
        return None
    return tensors[0]._keras_mask


def output_mask(layer, inputs, mask):
    """The output's mask: ``layer.compute_mask`` where the layer supports masking; a mask
    that reaches a layer without support is dropped with Keras's warning."""
    from shenjing.layers.base import Layer
    # Keras: a layer supports masking when it says so or defines its own compute_mask.
    if not (layer.supports_masking or type(layer).compute_mask is not Layer.compute_mask):
        if mask is not None:
            warnings.warn(
                f"Layer '{layer.name}' (of type {type(layer).__name__}) was passed an input "
                f"with a mask attached to it. However, this layer does not support masking and "
                f"will therefore destroy the mask information. Downstream layers will not see "
                f"the mask.", stacklevel=3)
        return None
    return layer.compute_mask(inputs, mask)
