"""Distances, prototypes and episode logits by metric name, for custom loops.

The estimators work with the metric objects of the registry
(:mod:`sklearn_protonet._geometry`); these functions are the same geometry
for a user's own training or evaluation loop: the meta-trainer's loss and the
classifier's predictions agree with them to the last digit.
"""

from __future__ import annotations

import torch

from ._geometry import DEFAULT_METRIC, class_means, get_metric

__all__ = ["class_prototypes", "episode_logits", "pairwise_distances"]


def pairwise_distances(
    queries: torch.Tensor,
    prototypes: torch.Tensor,
    metric: str = DEFAULT_METRIC,
    precisions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distances from each query to each prototype.

    Parameters
    ----------
    queries : Tensor of shape (n, d)
    prototypes : Tensor of shape (k, d)
    metric : str, default="sqeuclidean"
        ``"sqeuclidean"`` is the paper's choice (a Bregman divergence, which
        makes the classifier linear in the embedding); ``"cosine"`` is
        ``1 - cosine similarity``; ``"euclidean"``; the variance-aware
        ``"mahalanobis"`` and ``"gaussian"`` need ``precisions``.
    precisions : Tensor of shape (k, d) or (k, d, d), default=None
        Each class's precision, for the variance-aware metrics.

    Returns
    -------
    Tensor of shape (n, k)
    """
    geometry = get_metric(metric)
    if geometry.variance_aware and precisions is None:
        raise ValueError(
            f"metric={metric!r} weighs distances by each class's precision: pass "
            "precisions."
        )
    return geometry.pairwise(queries, prototypes, precisions)


def class_prototypes(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """(Weighted) mean embedding of each class.

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
    labels : LongTensor of shape (n,)
        Class codes in ``[0, n_classes)``.
    n_classes : int
    sample_weight : Tensor of shape (n,), default=None

    Returns
    -------
    Tensor of shape (n_classes, d)
    """
    return class_means(embeddings, labels, n_classes, sample_weight)


def episode_logits(
    embeddings: torch.Tensor, target: dict, metric: str = DEFAULT_METRIC
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of an episode's queries over its prototypes (eq. 1 and 2 of
    the paper).

    Parameters
    ----------
    embeddings : Tensor of shape (n_support_rows + n_query_rows, d)
        Support rows first, then query rows, as
        :class:`~sklearn_protonet.episodes.EpisodeLoader` stacks them.
    target : dict
        ``{"support": codes, "query": codes}``, episode-local class codes
        (:func:`~sklearn_protonet.episodes.episode_target`).
    metric : str, default="sqeuclidean"
        ``"gaussian"``: the embeddings are a
        :class:`~sklearn_protonet.covariance.GaussianEncoder`'s output, and
        the prototypes are precision-weighted (Fort, 2017).

    Returns
    -------
    logits : Tensor of shape (n_query_rows, n_way)
        Negative distances.
    query_codes : LongTensor of shape (n_query_rows,)
    """
    return get_metric(metric).episode_logits(embeddings, target)
