"""``shenjing.ops``: Keras 3's ``keras.ops`` (NumPy-style and nn ops).

On NumPy arrays an op computes at once and returns an array. On symbolic tensors (a layer's
``call`` being traced, or a functional model being defined) it records a node of the graph
that the C++ core runs; Python is not called again per batch.
"""
from shenjing.ops.core import (cast, convert_to_numpy, convert_to_tensor, is_tensor, shape,
                               stop_gradient)
from shenjing.ops.nn import (average_pool, binary_crossentropy, categorical_crossentropy, conv,
                             elu, gelu,
                             hard_sigmoid, leaky_relu, log_softmax, max_pool, normalize, one_hot,
                             relu,
                             relu6, selu, sigmoid, silu, softmax, softplus, softsign,
                             sparse_categorical_crossentropy, swish)
from shenjing.ops.numpy import (abs, absolute, add, all, amax, amin, any, arange, argmax, argmin,
                                broadcast_to, ceil, clip, concatenate, cos, divide, dot, equal,
                                exp, expand_dims, expm1, eye, floor, floor_divide, full,
                                greater, greater_equal, isfinite, isinf, isnan, less,
                                less_equal, log, log1p, logical_and, logical_not, logical_or,
                                logical_xor, logsumexp, matmul, max, maximum, mean, min,
                                minimum, mod, multiply, negative, not_equal, ones, ones_like,
                                power, prod, reciprocal, repeat, reshape, round, rsqrt, sign,
                                sin, split, sqrt, square, squeeze, stack, std, subtract, sum,
                                take, tanh, transpose, true_divide, var, where, zeros,
                                zeros_like)
from shenjing.ops.einsum import einsum
