"""The geometry: prototypes, distances to them, and an episode's logits.

The one place where the geometry lives: the meta-trainer's loss and the
classifier's predictions both call these, so training and inference agree.
Nothing here materialises an ``n x k x d`` tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .covariance import gaussian_episode_logits

__all__ = ["METRICS", "class_prototypes", "episode_logits", "pairwise_distances"]

METRICS = ("sqeuclidean", "euclidean", "cosine")


def pairwise_distances(
    queries: torch.Tensor, prototypes: torch.Tensor, metric: str = "sqeuclidean"
) -> torch.Tensor:
    """Distances from each query to each prototype.

    Parameters
    ----------
    queries : Tensor of shape (n, d)
    prototypes : Tensor of shape (k, d)
    metric : {"sqeuclidean", "euclidean", "cosine"}, default="sqeuclidean"
        ``"sqeuclidean"`` is the paper's choice (a Bregman divergence, which
        makes the classifier linear in the embedding); ``"cosine"`` is
        ``1 - cosine similarity``.

    Returns
    -------
    Tensor of shape (n, k)
    """
    if metric == "cosine":
        return 1.0 - F.normalize(queries, dim=1) @ F.normalize(prototypes, dim=1).T
    # |q - p|^2 = |q|^2 - 2 q.p + |p|^2 as one matrix product: O(n k) memory
    # instead of the O(n k d) of broadcasting the difference.
    sq = (
        queries.square().sum(1, keepdim=True)
        - 2.0 * queries @ prototypes.T
        + prototypes.square().sum(1)
    ).clamp_min_(0.0)
    if metric == "sqeuclidean":
        return sq
    if metric == "euclidean":
        return sq.sqrt_()
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")


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
    sums = embeddings.new_zeros(n_classes, embeddings.shape[1])
    if sample_weight is None:  # skip an n x d product of ones
        sums.index_add_(0, labels, embeddings)
        totals = torch.bincount(labels, minlength=n_classes).to(embeddings)
    else:
        weights = sample_weight.to(embeddings)
        sums.index_add_(0, labels, embeddings * weights[:, None])
        totals = embeddings.new_zeros(n_classes).index_add_(0, labels, weights)
    return sums / totals[:, None]


def episode_logits(
    embeddings: torch.Tensor, target: dict, metric: str = "sqeuclidean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of an episode's queries over its prototypes (eq. 1-2).

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
    support_codes, query_codes = target["support"], target["query"]
    if metric == "gaussian":
        return gaussian_episode_logits(embeddings, support_codes), query_codes
    n_support_rows = len(support_codes)
    prototypes = class_prototypes(
        embeddings[:n_support_rows], support_codes, int(support_codes.max()) + 1
    )
    logits = -pairwise_distances(embeddings[n_support_rows:], prototypes, metric)
    return logits, query_codes
