"""Layers with Keras 3 names and arguments."""
from shenjing.layers.base import Layer
from shenjing.layers.core import Activation, Dense, Dropout
from shenjing.layers.input import Input, InputLayer
from shenjing.layers.reshaping import Flatten, Reshape

__all__ = ["Layer", "Dense", "Activation", "Dropout", "Flatten", "Reshape", "Input",
           "InputLayer"]
