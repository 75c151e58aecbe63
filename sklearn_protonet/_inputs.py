"""Input coercion: user data (arrays, DataFrames) to checked arrays and tensors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import check_classification_targets

__all__ = [
    "as_samples",
    "as_tensor",
    "check_image_shape",
    "check_labels",
    "check_samples",
    "numeric_input",
]

#: File name endings that mark a column of image paths.
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")


@contextmanager
def numeric_input(name: str = "X") -> Iterator[None]:
    """Re-raise NumPy's "could not convert string to float" naming the input
    and the fix."""
    try:
        yield
    except ValueError as error:
        if "could not convert" not in str(error):
            raise
        text = str(error).lower()
        if any(suffix in text for suffix in _IMAGE_SUFFIXES) or "/" in text:
            raise ValueError(
                f"{name} must be numeric, but {error}. These look like image file "
                "paths: read them with sklearn_protonet.preprocessing.ImageReader "
                "(e.g. ImageReader.from_encoder(encoder)) in a Pipeline before "
                "this estimator."
            ) from error
        raise ValueError(
            f"{name} must be numeric, but {error}. Encode text and categorical "
            "columns first, e.g. with a ColumnTransformer and OneHotEncoder in "
            "a Pipeline before this estimator."
        ) from error


def as_samples(X):
    """``X`` with a list of PIL images stacked into one array (else as it is),
    so that ``fit`` and ``predict`` read images alike."""
    if isinstance(X, (list, tuple)) and X and hasattr(X[0], "getbands"):
        return np.stack([np.asarray(image) for image in X])
    return X


def check_samples(X, dtype=np.float32, accept_sparse=False) -> np.ndarray:
    """``X`` as a finite numeric array of ``dtype`` (N-D allowed), with the
    package's message for non-numeric input.

    For estimators that do not record ``n_features_in_`` (the trainer); the
    classifier uses ``validate_data`` inside :func:`numeric_input`.
    """
    with numeric_input("X"):
        return check_array(
            X, dtype=dtype, allow_nd=True, input_name="X", accept_sparse=accept_sparse
        )


def _is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


def check_labels(y, estimator: str) -> np.ndarray:
    """``y`` as a 1-D array of class labels, refusing what cannot be a class.

    Missing labels (``None``, NaN, ``pd.NA``) would otherwise become a class
    of their own in one estimator and a ``TypeError`` from sorting in
    another; continuous or multi-output targets are refused with
    scikit-learn's own message. Both estimators call this, so they accept
    the same labels.
    """
    y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)  # scikit-learn's DataConversionWarning
    if y.ndim != 1:
        raise ValueError(
            f"y should be a 1d array of class labels, got an array of shape "
            f"{y.shape} instead. {estimator} takes one label per row of X."
        )
    if y.dtype.kind == "f":
        missing = np.isnan(y)
    elif y.dtype.kind == "O":
        missing = np.fromiter((_is_missing(v) for v in y), bool, len(y))
    else:
        missing = np.zeros(len(y), bool)
    if missing.any():
        rows = np.flatnonzero(missing)
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise ValueError(
            f"y contains {len(rows)} missing label(s) (None or NaN) at rows "
            f"[{shown}]; {estimator} needs the class of every row. Drop the "
            "unlabelled rows, or give them a class."
        )
    if y.dtype.kind == "O":
        is_str = np.fromiter((isinstance(v, str) for v in y), bool, len(y))
        if is_str.any() and not is_str.all():
            kinds = sorted({type(v).__name__ for v in y[~is_str]})
            raise ValueError(
                f"y mixes strings with {kinds} labels; {estimator} "
                "needs labels of one kind to sort the classes. Convert them "
                "all to strings, e.g. y.astype(str)."
            )
    with warnings.catch_warnings():
        # Few-shot sets have many classes for their size by design.
        warnings.filterwarnings(
            "ignore", "The number of unique classes is greater than 50%"
        )
        check_classification_targets(y)
    return y


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


def check_image_shape(shape: tuple, contract, owner: str) -> None:
    """Refuse samples that cannot be the contract's images, in scikit-learn's
    words for widths, with what the encoder takes."""
    channels, height, width = contract.shape
    size = channels * height * width
    accepted = {tuple(contract.shape), (size,)}
    if channels == 1:
        accepted.add((height, width))
    if tuple(shape) in accepted:
        return
    what = (
        f"X has {shape[0]} features, but {owner} is expecting {size} features as input"
        if len(shape) == 1
        else f"X has samples of shape {tuple(shape)}, but {owner} is expecting "
        f"images of shape {tuple(contract.shape)}"
    )
    raise ValueError(
        f"{what}: its encoder takes images of shape {tuple(contract.shape)} "
        "(channels, height, width; its input contract), or flat rows of "
        f"{size} values. Resize and convert the images, e.g. with "
        "sklearn_protonet.preprocessing.ImageReader.from_encoder(encoder) in a "
        "Pipeline before the classifier."
    )
