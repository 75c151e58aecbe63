"""Prototype estimation: running class sums, unlabeled rows, soft k-means refinement.

A prototype is ``sums[c] / totals[c]``: the (weighted) sum of a class's
embeddings over its summed weight. Keeping the two terms instead of their
ratio makes prototypes *incremental* (``partial_fit`` adds the new rows'
terms; one ``fit`` on the union gives the same ratio) and lets unlabeled
rows join with soft weights: the soft k-means refinement of Ren et al.
(ICLR 2018, "Meta-Learning for Semi-Supervised Few-Shot Classification").
"""

from __future__ import annotations

import numpy as np
import torch

from . import refinement
from .covariance import split_gaussian
from .refinement import MASK_SLOPE, MASK_THRESHOLD

__all__ = [
    "MASK_SLOPE",
    "MASK_THRESHOLD",
    "REFINEMENTS",
    "UNLABELED",
    "as_prototypes",
    "class_sums",
    "row_terms",
    "soft_kmeans",
    "unlabeled_mask",
]

#: The marker of an unlabeled row in ``y``: ``-1`` for numeric labels (as
#: :mod:`sklearn.semi_supervised`), the string ``"-1"`` for string labels.
UNLABELED = -1

#: Accepted values of ``PrototypicalClassifier(refinement=...)`` today; the
#: refinements themselves are :data:`sklearn_protonet.refinement.REFINEMENTS`.
REFINEMENTS = ("soft_kmeans", "masked")


def unlabeled_mask(y: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``y`` marked unlabeled (``-1`` or ``"-1"``)."""
    y = np.asarray(y)
    if y.dtype.kind in "iuf":
        return y == UNLABELED
    # Strings (or objects): "-1"; an int -1 in an object array counts too.
    return np.array([v == "-1" or (_is_number(v) and v == -1) for v in y], dtype=bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )


def row_terms(
    metric: str, embeddings: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's point, its term in its class's sums and in its class's totals.

    ``"gaussian"``: the rows are ``[embedding, precision]`` (a
    :class:`~sklearn_protonet.covariance.GaussianEncoder`'s output); the terms
    are ``w s x`` and ``w s`` per dimension (precision-weighted means, Fort
    2017). Every other metric: ``w x`` and ``w``.

    Returns
    -------
    points : Tensor of shape (n, d)
    sums : Tensor of shape (n, d)
    totals : Tensor of shape (n,), or (n, d) for "gaussian"
    """
    if weights is None:
        weights = torch.ones_like(embeddings[:, 0])
    weights = weights.to(embeddings)
    if metric == "gaussian":
        points, precision = split_gaussian(embeddings)
        totals = precision * weights[:, None]
        return points, points * totals, totals
    return embeddings, embeddings * weights[:, None], weights


def class_sums(
    metric: str,
    embeddings: torch.Tensor,
    codes: torch.Tensor,
    n_classes: int,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sums of :func:`row_terms`: ``prototypes = sums / totals``.

    Parameters
    ----------
    metric : str
    embeddings : Tensor of shape (n, d), or (n, 2 d) for "gaussian"
    codes : LongTensor of shape (n,)
        Class codes in ``[0, n_classes)``.
    n_classes : int
    weights : Tensor of shape (n,), default=None

    Returns
    -------
    sums : Tensor of shape (n_classes, d)
    totals : Tensor of shape (n_classes,), or (n_classes, d) for "gaussian"
    """
    _, row_sums, row_totals = row_terms(metric, embeddings, weights)
    sums = row_sums.new_zeros(n_classes, row_sums.shape[1]).index_add_(
        0, codes, row_sums
    )
    totals = row_totals.new_zeros(n_classes, *row_totals.shape[1:]).index_add_(
        0, codes, row_totals
    )
    return sums, totals


def as_prototypes(sums: torch.Tensor, totals: torch.Tensor) -> torch.Tensor:
    """``sums / totals``, totals of shape (k,) or (k, d)."""
    return sums / (totals[:, None] if totals.dim() == 1 else totals)


def soft_kmeans(
    sums: torch.Tensor,
    totals: torch.Tensor,
    unlabeled: torch.Tensor,
    steps: int,
    *,
    metric: str = "sqeuclidean",
    weights: torch.Tensor | None = None,
    masked: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sklearn_protonet.refinement.soft_kmeans` with ``refinement="masked"``
    (``masked=True``) or ``"soft_kmeans"``: the classifier's call until it
    passes its ``refinement`` through."""
    return refinement.soft_kmeans(
        sums,
        totals,
        unlabeled,
        steps,
        metric=metric,
        weights=weights,
        refinement="masked" if masked else "soft_kmeans",
    )
