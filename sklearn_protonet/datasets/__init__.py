"""Data set loaders for few-shot learning."""

from ._base import get_cache_home, get_data_home
from ._digits import load_rotated_digits
from ._images import load_image_folder
from ._omniglot import load_omniglot

__all__ = [
    "get_cache_home",
    "get_data_home",
    "load_image_folder",
    "load_omniglot",
    "load_rotated_digits",
]
