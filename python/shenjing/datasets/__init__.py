"""Small datasets with Keras's `load_data()` API.

Submodules: `mnist`, `fashion_mnist`, `boston_housing`, `cifar10`, `cifar100`, `imdb`,
`reuters` (files found in
`$SHENJING_DATA`, the cache `~/.shenjing/datasets`, or downloaded) and
`digits` (shipped with shenjing, always available offline).
"""

from shenjing.datasets import (boston_housing, cifar10, cifar100, digits, fashion_mnist, imdb,
                               mnist, reuters)

__all__ = ["mnist", "fashion_mnist", "boston_housing", "digits", "cifar10", "cifar100", "imdb",
           "reuters"]
