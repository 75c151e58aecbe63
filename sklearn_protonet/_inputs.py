"""Input coercion: user data (arrays, DataFrames) to checked arrays and tensors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import check_array

__all__ = ["as_tensor", "check_samples", "numeric_input"]


@contextmanager
def numeric_input(name: str = "X") -> Iterator[None]:
    """Re-raise NumPy's "could not convert string to float" naming the input
    and the fix."""
    try:
        yield
    except ValueError as error:
        if "could not convert" not in str(error):
            raise
        raise ValueError(
            f"{name} must be numeric, but {error}. Encode text and categorical "
            "columns first, e.g. with a ColumnTransformer and OneHotEncoder in "
            "a Pipeline before this estimator."
        ) from error


def check_samples(X, dtype=np.float32) -> np.ndarray:
    """``X`` as a finite numeric array of ``dtype`` (N-D allowed), with the
    package's message for non-numeric input.

    For estimators that do not record ``n_features_in_`` (the trainer); the
    classifier uses ``validate_data`` inside :func:`numeric_input`.
    """
    with numeric_input("X"):
        return check_array(X, dtype=dtype, allow_nd=True, input_name="X")


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """A tensor view of a NumPy array (no copy when it is contiguous).

    Read-only arrays (memory maps) are viewed too: the package only reads its
    inputs, so torch's warning about non-writable arrays is silenced.
    """
    X = np.ascontiguousarray(X)
    if X.flags.writeable:
        return torch.from_numpy(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(X)
