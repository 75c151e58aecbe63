"""Data set loaders for few-shot learning."""

from ._base import get_cache_home, get_data_home
from ._digit_attributes import load_digit_attributes
from ._digits import load_rotated_digits
from ._images import load_image_folder
from ._omniglot import load_omniglot
from ._omniglot_sample import load_omniglot_sample
from ._unicode_symbols import load_unicode_symbols

__all__ = [
    "get_cache_home",
    "get_data_home",
    "load_digit_attributes",
    "load_image_folder",
    "load_omniglot",
    "load_omniglot_sample",
    "load_rotated_digits",
    "load_unicode_symbols",
]
