"""Class metadata: validation, and each class's row."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_array
from sklearn.utils.validation import column_or_1d

from .._inputs import numeric_input

__all__ = ["check_metadata", "rows_for"]


def check_metadata(metadata, labels=None, *, name: str = "metadata"):
    """Validate class metadata and return its values, labels and columns.

    Parameters
    ----------
    metadata : DataFrame or array-like of shape (n_rows, n_attributes)
        One row per class (rows of the same class are averaged by the
        estimators). A DataFrame is indexed by class label unless ``labels``
        is given.
    labels : array-like of shape (n_rows,), default=None
        The class of each row; required for arrays.
    name : str, default="metadata"
        How error messages call the input.

    Returns
    -------
    values : ndarray of shape (n_rows, n_attributes), float32
    labels : ndarray of shape (n_rows,)
    columns : ndarray of str or None
        The DataFrame's column names.

    Raises
    ------
    ValueError
        For non-numeric columns, missing values (naming the classes and
        columns), missing labels, or labels and rows of different lengths.
    """
    columns = None
    if isinstance(metadata, pd.DataFrame):
        text = [c for c, dtype in metadata.dtypes.items() if not _is_numeric(dtype)]
        if text:
            raise ValueError(
                f"{name} columns {text} are not numeric; encode them first, e.g. "
                "with pandas.get_dummies or a OneHotEncoder."
            )
        if labels is None:
            labels = metadata.index.to_numpy()
        columns = np.asarray(metadata.columns, dtype=object)
        values = metadata.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        if labels is None:
            raise ValueError(
                f"Zero-shot fitting requires y to be passed, but the target y "
                f"is None and {name} is an array, so the class of each row is "
                "unknown: pass y (one label per row) or a DataFrame indexed by "
                "class label."
            )
        with numeric_input(name):
            values = check_array(
                metadata, dtype=np.float64, ensure_all_finite=False, input_name=name
            )
    labels = column_or_1d(np.asarray(labels), warn=True)
    if len(labels) != len(values):
        raise ValueError(
            f"{name} has {len(values)} rows but {len(labels)} class labels; give "
            "one label per row."
        )
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D table with at least one column.")
    missing = ~np.isfinite(values)
    if missing.any():
        rows, cols = np.nonzero(missing)
        where = sorted({str(labels[r]) for r in rows})
        what = sorted({str(columns[c] if columns is not None else c) for c in cols})
        raise ValueError(
            f"{name} has missing or infinite values for classes {where} in columns "
            f"{what}; impute them (e.g. with the column mean) or drop the columns."
        )
    return values.astype(np.float32), labels, columns


def _is_numeric(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(
        dtype
    )


def rows_for(classes: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    """Index of each class's metadata row; every class needs exactly one."""
    unique, counts = np.unique(labels, return_counts=True)
    doubled = unique[counts > 1].tolist()
    if doubled:
        raise ValueError(
            f"metadata has several rows for classes {doubled[:10]}; give one row "
            "per class."
        )
    missing = np.setdiff1d(classes, labels).tolist()
    if missing:
        raise ValueError(
            f"classes {missing[:10]} in {name} have no metadata row; add a row for "
            "each of them to the metadata (indexed by class label)."
        )
    order = np.argsort(labels)
    return order[np.searchsorted(labels[order], classes)]
