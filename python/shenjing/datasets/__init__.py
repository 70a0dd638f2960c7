"""Small datasets with Keras's `load_data()` API.

Submodules: `mnist`, `fashion_mnist`, `boston_housing` (files found in
`$SHENJING_DATA`, the cache `~/.shenjing/datasets`, or downloaded) and
`digits` (shipped with shenjing, always available offline).
"""

from shenjing.datasets import boston_housing, digits, fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist", "boston_housing", "digits"]
