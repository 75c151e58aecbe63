"""Unknown classes: typicality scores and a rejection threshold from the support set.

``score_samples`` is the negative distance to the nearest prototype (higher =
more typical, as scikit-learn's outlier detectors). The threshold that turns
it into a reject option is calibrated on the support set alone, by
leave-one-out: each support example's distance to its own class's prototype
computed *without* it is the distance of a fresh example of a known class.
The ``quantile`` of those distances is the largest distance still accepted.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .prototypes import as_prototypes, row_terms

__all__ = ["calibrate_threshold", "leave_one_out_distances", "reject_labels"]


def _rowwise_distances(metric, points, prototypes, precisions) -> torch.Tensor:
    """``d(points[i], prototypes[i])`` for each row i."""
    if metric == "cosine":
        return 1.0 - (F.normalize(points, dim=1) * F.normalize(prototypes, dim=1)).sum(
            1
        )
    diff = points - prototypes
    if precisions is None:
        sq = diff.square().sum(1)
        return sq.sqrt() if metric == "euclidean" else sq
    if precisions.dim() == 2:  # diagonal precisions, one row per point
        return (diff.square() * precisions).sum(1)
    return torch.einsum("ni,nij,nj->n", diff, precisions, diff)


def leave_one_out_distances(
    metric: str,
    embeddings: torch.Tensor,
    codes: torch.Tensor,
    sums: torch.Tensor,
    totals: torch.Tensor,
    weights: torch.Tensor | None = None,
    precisions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each support row's distance to its class's prototype computed without it.

    Parameters
    ----------
    metric : str
    embeddings : Tensor of shape (n, d), or (n, 2 d) for "gaussian"
        The (normalised) support embeddings.
    codes : LongTensor of shape (n,)
    sums, totals : Tensor
        The classes' terms (:func:`~sklearn_protonet.prototypes.class_sums`).
    weights : Tensor of shape (n,), default=None
    precisions : Tensor, default=None
        The classes' precisions, for the variance-aware metrics (kept fixed:
        only the mean leaves the row out).

    Returns
    -------
    Tensor of shape (n_kept,)
        For the rows whose class keeps a positive weight without them (a
        class of a single example has no leave-one-out prototype).
    """
    points, row_sums, row_totals = row_terms(metric, embeddings, weights)
    rest_totals = totals[codes] - row_totals
    positive = rest_totals > 1e-12 * totals[codes].abs().clamp_min(1e-300)
    keep = positive if positive.dim() == 1 else positive.all(1)
    # Zero-weight rows are not examples; they have nothing to calibrate.
    keep &= (row_totals if row_totals.dim() == 1 else row_totals.sum(1)) > 0
    loo = as_prototypes(sums[codes][keep] - row_sums[keep], rest_totals[keep])
    row_precisions = None if precisions is None else precisions[codes][keep]
    return _rowwise_distances(metric, points[keep], loo, row_precisions)


def calibrate_threshold(distances: torch.Tensor, quantile: float) -> float:
    """The ``quantile`` of the leave-one-out distances: the largest accepted."""
    return float(np.quantile(distances.cpu().numpy(), quantile))


def reject_labels(labels: np.ndarray, reject: np.ndarray, unknown_label) -> np.ndarray:
    """``labels`` with ``unknown_label`` where ``reject``; the dtype holds both.

    The dtype depends on the labels and ``unknown_label`` only, never on
    whether a row was rejected: object when one is a number and the other a
    string.
    """
    numeric = labels.dtype.kind in "iuf" and isinstance(
        unknown_label, (int, float, np.integer, np.floating)
    )
    text = labels.dtype.kind == "U" and isinstance(unknown_label, str)
    if numeric or text:
        return np.where(reject, np.asarray(unknown_label), labels)
    out = labels.astype(object)
    out[reject] = unknown_label
    return out
