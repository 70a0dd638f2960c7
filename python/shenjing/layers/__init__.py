"""Layers with Keras 3 names and arguments."""
from shenjing.layers.activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from shenjing.layers.base import Layer
from shenjing.layers.depthwise_conv import (DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D,
                                            SeparableConv2D)
from shenjing.layers.noise import (ActivityRegularization, GaussianDropout, GaussianNoise,
                                   SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
from shenjing.layers.rescaling_normalization import Normalization, Rescaling
from shenjing.layers.bidirectional import Bidirectional
from shenjing.layers.convolutional import Conv1D, Conv2D
from shenjing.layers.convolutional_transpose import Conv1DTranspose, Conv2DTranspose
from shenjing.layers.core import Activation, Dense, Dropout, Identity, Lambda, Masking
from shenjing.layers.embedding import Embedding
from shenjing.layers.input import Input, InputLayer
from shenjing.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply,
                                     Subtract, add, average, concatenate, dot, maximum, minimum,
                                     multiply, subtract)
from shenjing.layers.normalization import BatchNormalization, LayerNormalization
from shenjing.layers.pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D,
                                     GlobalAveragePooling1D, GlobalAveragePooling2D,
                                     GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D,
                                     GlobalMaxPool2D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                                     MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from shenjing.layers.preprocessing import (CenterCrop, RandomContrast, RandomFlip,
                                           RandomRotation, RandomTranslation, RandomZoom,
                                           Resizing)
from shenjing.layers.recurrent import GRU, LSTM, SimpleRNN
from shenjing.layers.reshaping import (Cropping1D, Cropping2D, Flatten, Permute, RepeatVector,
                                       Reshape, ZeroPadding1D, ZeroPadding2D)
from shenjing.layers.time_distributed import TimeDistributed
from shenjing.layers.upsampling import UpSampling1D, UpSampling2D

__all__ = ["Layer", "Dense", "Activation", "Dropout", "Flatten", "Reshape", "Input",
           "InputLayer", "Conv1D", "Conv2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
           "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
           "GlobalMaxPooling1D", "GlobalMaxPooling2D", "MaxPool1D", "MaxPool2D", "AvgPool1D",
           "AvgPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D",
           "GlobalMaxPool2D", "BatchNormalization", "ZeroPadding1D", "ZeroPadding2D",
           "Conv1DTranspose", "Conv2DTranspose", "UpSampling1D", "UpSampling2D", "Cropping1D",
           "Cropping2D", "RepeatVector", "Permute", "Identity", "Lambda", "Add",
           "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot", "add",
           "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
           "SimpleRNN", "LSTM", "GRU", "LayerNormalization", "Embedding", "Masking", "Bidirectional",
           "TimeDistributed", "CenterCrop", "Resizing", "RandomFlip", "RandomRotation",
           "RandomZoom", "RandomTranslation", "RandomContrast", "ReLU", "LeakyReLU", "PReLU",
           "ELU", "Softmax", "Rescaling", "ActivityRegularization", "GaussianNoise",
           "GaussianDropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
           "Normalization", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
           "SeparableConv2D"]
