"""A support set's labels: the classes, unlabeled rows, the unknown label and
the sample weights, checked by scikit-learn's rules with messages that name
the parameter and the fix."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils.validation import _check_sample_weight

from ._inputs import check_labels

__all__ = [
    "check_unknown_label",
    "class_weights",
    "fixed_classes",
    "grown_classes",
    "unlabeled_rows",
]


def unlabeled_rows(y: np.ndarray, marker, active: bool) -> np.ndarray:
    """Rows of ``y`` equal to ``marker`` (or its text, for string labels),
    when ``active``; no row otherwise."""
    if not active or marker is None:
        return np.zeros(len(y), dtype=bool)
    if y.dtype.kind in "iuf":
        unlabeled = np.zeros(len(y), bool) if isinstance(marker, str) else y == marker
    else:
        unlabeled = np.array([v == marker or v == str(marker) for v in y], dtype=bool)
    if unlabeled.all():
        raise ValueError(
            f"Every row of y is marked unlabeled ({marker!r}): the prototypes need "
            "labeled examples. Give at least one labeled example of each of two "
            "classes."
        )
    return unlabeled


def fixed_classes(classes, labels: np.ndarray, owner: str) -> np.ndarray:
    """``partial_fit``'s ``classes``: all the classes there will be."""
    known = np.unique(check_labels(classes, owner))
    missing = np.setdiff1d(labels, known)
    if len(missing):
        raise ValueError(
            f"y has labels {missing.tolist()} that are not in classes; include "
            "them in classes, or pass classes=None."
        )
    return known


def grown_classes(
    current: np.ndarray, fixed: bool, y: np.ndarray, classes
) -> np.ndarray:
    """The classes after a later ``partial_fit`` call adds labels ``y``."""
    if classes is not None and not np.array_equal(
        np.unique(np.asarray(classes)), current
    ):
        raise ValueError(
            f"classes={list(np.unique(np.asarray(classes)))} is not the same as on "
            f"the first call to partial_fit ({list(current)}); pass the same "
            "classes, or None."
        )
    if (y.dtype.kind in "iufb") != (current.dtype.kind in "iufb"):
        raise ValueError(
            f"y has labels of dtype {y.dtype}, but classes_ are of dtype "
            f"{current.dtype}: give labels of the same kind (numbers or strings) "
            "in every call."
        )
    new = np.setdiff1d(y, current)
    if len(new) and fixed:
        raise ValueError(
            f"y has labels {new.tolist()} that are not in the classes given to the "
            "first call to partial_fit; fit again with all classes."
        )
    return np.union1d(current, y)


def check_unknown_label(label, known: np.ndarray) -> None:
    """The unknown label must be of the labels' kind and no class."""
    if label is None:
        return
    numeric = known.dtype.kind in "iuf"
    if numeric != (isinstance(label, Real) and not isinstance(label, bool)):
        kind = "a number" if numeric else "a string"
        raise ValueError(
            f"unknown_label={label!r} must be of the labels' kind: y holds "
            f"{known.dtype} labels, so give {kind} (e.g. "
            f"{-1 if numeric else repr('unknown')})."
        )
    if known.dtype.kind in "iu" and not float(label).is_integer():
        raise ValueError(
            f"unknown_label={label!r} must be a whole number: y holds integer "
            "labels, and classes_ keeps their dtype (e.g. unknown_label=-1)."
        )
    if np.any(known == label):
        raise ValueError(
            f"unknown_label={label!r} is also a class label in y; choose a label no "
            "class has (e.g. -1 or 'unknown')."
        )


def class_weights(
    sample_weight, X, codes: np.ndarray, known: np.ndarray, allow_empty: bool
) -> np.ndarray:
    """Checked sample weights, one per row (ones when None).

    Every class needs a positive total weight, but for classes without rows
    when ``allow_empty`` (``partial_fit``'s ``classes``).
    """
    if len(known) < 2:
        where = "classes" if allow_empty else "y"
        raise ValueError(
            f"PrototypicalClassifier needs at least 2 classes in {where} to "
            f"separate, got {len(known)} class ({known.tolist()}). Add support "
            "examples of other classes."
        )
    try:
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
    except ValueError as error:
        raise ValueError(
            f"Invalid sample_weight: {error} Pass one weight per row of X, shape "
            f"({X.shape[0]},), or None."
        ) from error
    if (weights < 0).any():
        raise ValueError(
            f"sample_weight must be non-negative, got {weights.min()}; use 0 to "
            "ignore a sample."
        )
    labeled = codes >= 0
    total = np.bincount(codes[labeled], weights=weights[labeled], minlength=len(known))
    empty = total <= 0
    if allow_empty:
        empty &= np.bincount(codes[labeled], minlength=len(known)) > 0
    if empty.any():
        raise ValueError(
            f"sample_weight sums to zero for classes {known[empty].tolist()}: their "
            "prototypes are undefined. Give each class a positive weight."
        )
    return weights
