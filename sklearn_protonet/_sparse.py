"""Sparse input (TF-IDF text, one-hot tables): exact sparse arithmetic for the
identity encoder, dense chunks of bounded size for everything else.

The identity encoder never densifies: a row's normalised embedding is
``(x - c) * s`` (``c`` the support mean for ``"cl2n"``, else 0; ``s`` the
inverse norm for ``"l2"``/``"cl2n"``, else 1), so prototypes and distances
follow from sparse-dense products, ``x . p``, ``x . c`` and ``|x|^2``: the same
expansion ``|q|^2 - 2 q.p + |p|^2`` as the dense path
(the metrics of :mod:`sklearn_protonet._geometry`). Modules and the
variance-aware metrics take dense rows, ``batch_size`` at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "dense_rows",
    "iter_dense",
    "sparse_distances",
    "sparse_embeddings",
    "sparse_prototypes",
]

_EPS = 1e-12  # torch.nn.functional.normalize's: a zero row stays zero


def dense_rows(X, dtype=None) -> np.ndarray:
    """``X`` as a dense array (a no-op for dense ``X``)."""
    X = X.toarray() if sp.issparse(X) else X
    return X if dtype is None else X.astype(dtype, copy=False)


def iter_dense(X, batch_size: int, dtype=None) -> Iterator[np.ndarray]:
    """Dense blocks of ``batch_size`` rows of a sparse ``X``: memory bounded
    by one block, whatever the number of rows."""
    for start in range(0, X.shape[0], batch_size):
        yield dense_rows(X[start : start + batch_size], dtype)


def _scales(X, center: np.ndarray | None, normalization: str | None) -> np.ndarray:
    """``s`` per row: 1 / |x - c| for the normalisations, else 1."""
    if normalization is None:
        return np.ones(X.shape[0])
    sq = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    if center is not None:
        sq = sq - 2.0 * (X @ center) + center @ center
    return 1.0 / np.maximum(np.sqrt(np.clip(sq, 0.0, None)), _EPS)


def sparse_prototypes(
    X: sp.csr_matrix,
    codes: np.ndarray,
    n_classes: int,
    weights: np.ndarray | None,
    normalization: str | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The (weighted) class means of the normalised rows, and the centring
    mean (``"cl2n"``), both dense float64; ``X`` stays sparse."""
    w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, np.float64)
    center = None
    if normalization == "cl2n":
        center = np.asarray(X.T @ w).ravel() / w.sum()
    s = _scales(X, center, normalization)
    rows = sp.csr_matrix(
        (w * s, (codes, np.arange(X.shape[0]))), (n_classes, X.shape[0])
    )
    sums = np.asarray((rows @ X).todense())
    if center is not None:
        sums -= np.outer(np.asarray(rows.sum(axis=1)).ravel(), center)
    totals = np.bincount(codes, weights=w, minlength=n_classes)
    return sums / totals[:, None], center


def sparse_embeddings(X, center, normalization: str | None):
    """The normalised rows: sparse without centring, dense with it."""
    s = _scales(X, center, normalization)
    if center is None:
        return sp.csr_matrix(sp.diags(s) @ X)
    return (dense_rows(X) - center) * s[:, None]


def sparse_distances(
    X: sp.csr_matrix,
    prototypes: np.ndarray,
    center: np.ndarray | None,
    normalization: str | None,
    metric,
) -> torch.Tensor:
    """Distances of the normalised rows of ``X`` to the prototypes, (n, k),
    for a metric computed from products (its ``from_products``)."""
    s = _scales(X, center, normalization)
    dots = np.asarray(X @ prototypes.T)  # x . p
    sq_norms = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    if center is not None:
        dots = dots - center @ prototypes.T
        sq_norms = sq_norms - 2.0 * (X @ center) + center @ center
    dots *= s[:, None]
    sq_norms = np.clip(sq_norms, 0.0, None) * s**2
    proto_sq = np.square(prototypes).sum(1)
    return torch.from_numpy(metric.from_products(dots, sq_norms, proto_sq))
