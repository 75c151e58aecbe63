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

from .covariance import split_gaussian
from .distances import pairwise_distances

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

#: Accepted values of ``PrototypicalClassifier(refinement=...)``.
REFINEMENTS = ("soft_kmeans", "masked")

#: The masked refinement's distance-ratio threshold and slope (soft_kmeans),
#: chosen on Omniglot's validation classes with distractors.
MASK_THRESHOLD, MASK_SLOPE = 0.8, 20.0


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
    mask_threshold: float = MASK_THRESHOLD,
    mask_slope: float = MASK_SLOPE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine prototypes with soft k-means over unlabeled embeddings.

    Each step assigns every unlabeled row ``j`` to every class ``c`` softly,
    ``z[j, c] = softmax_c(-d(x_j, p_c))``, and recomputes each prototype as
    ``(sums[c] + sum_j w_j z[j, c] m[j, c] x_j) / (totals[c] + sum_j w_j z[j,
    c] m[j, c])``: the labeled rows with weight 1 (or their sample weight),
    the unlabeled ones with their soft assignment (Ren et al. 2018, eq. 3-4).
    ``m = 1`` without masking.

    The masked variant keeps distractors (unlabeled rows of classes outside
    the support set) out of the prototypes: ``m[j, c] = sigmoid(-slope (r[j,
    c] - threshold))`` where ``r[j, c]`` is ``d(x_j, p_c)`` over the distance
    from ``x_j`` to its *second* nearest prototype, both to the *labeled*
    prototypes (the mask is computed once, before the first step, so that
    distractors cannot drag the prototypes and then pass the mask). A row of
    class ``c`` lies much nearer ``p_c`` than any other prototype (``r``
    well below 1); a distractor lies about as far from all of them (``r``
    near 1). Ren et al. learn the thresholds with a small network; the ratio
    is scale-free, so one fixed threshold serves different embeddings (the
    defaults were chosen on Omniglot's validation classes).

    Parameters
    ----------
    sums, totals : Tensor
        The labeled rows' class sums (:func:`class_sums`, not "gaussian").
    unlabeled : Tensor of shape (m, d)
        Unlabeled embeddings, normalised as the labeled ones.
    steps : int
        Refinement steps; 0 returns ``sums, totals`` unchanged.
    metric : {"sqeuclidean", "euclidean", "cosine"}
    weights : Tensor of shape (m,), default=None
        The unlabeled rows' sample weights.
    masked : bool, default=False
    mask_threshold : float, default=MASK_THRESHOLD
        ``threshold`` above.
    mask_slope : float, default=MASK_SLOPE
        ``slope`` above (how hard the mask is).

    Returns
    -------
    sums, totals : Tensor
        The refined terms: ``sums / totals`` are the refined prototypes.
    """
    if steps == 0 or len(unlabeled) == 0:
        return sums, totals
    w = torch.ones_like(unlabeled[:, 0]) if weights is None else weights.to(unlabeled)
    if masked:
        labeled = pairwise_distances(unlabeled, as_prototypes(sums, totals), metric)
        w = w[:, None] * _mask(labeled, mask_threshold, mask_slope)
    else:
        w = w[:, None]
    refined_sums, refined_totals = sums, totals
    for _ in range(steps):
        prototypes = as_prototypes(refined_sums, refined_totals)
        d = pairwise_distances(unlabeled, prototypes, metric)
        z = torch.softmax(-d, dim=1) * w
        refined_sums = sums + z.T @ unlabeled
        refined_totals = totals + z.sum(0)
    return refined_sums, refined_totals


def _mask(d: torch.Tensor, threshold: float, slope: float) -> torch.Tensor:
    """Soft membership of each unlabeled row in each class (see soft_kmeans)."""
    if d.shape[1] < 2:
        return torch.ones_like(d)
    second = d.topk(2, dim=1, largest=False).values[:, 1:2]
    ratio = d / second.clamp_min(torch.finfo(d.dtype).tiny)
    return torch.sigmoid(-slope * (ratio - threshold))
