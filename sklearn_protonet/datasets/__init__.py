"""Data set loaders for few-shot learning."""

from ._base import get_cache_home, get_data_home
from ._digit_attributes import load_digit_attributes
from ._digits import load_rotated_digits
from ._omniglot import load_omniglot
from ._omniglot_sample import load_omniglot_sample

__all__ = [
    "get_cache_home",
    "get_data_home",
    "load_digit_attributes",
    "load_omniglot",
    "load_omniglot_sample",
    "load_rotated_digits",
]
