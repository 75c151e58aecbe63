"""Embedding normalisation, applied alike to prototypes and queries."""

from __future__ import annotations

import torch

__all__ = ["NORMALIZATIONS", "normalize", "support_mean"]

#: Accepted values of ``PrototypicalClassifier(normalization=...)``:
#: ``"l2"`` scales each embedding to unit length; ``"cl2n"`` first subtracts
#: the support set's mean embedding (SimpleShot's centring then L2
#: normalisation; Wang et al., 2019).
NORMALIZATIONS = ("l2", "cl2n")


def support_mean(
    kind: str | None, embeddings: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor | None:
    """The centring statistic of ``kind`` from the support embeddings.

    Only ``"cl2n"`` centres: it returns the (sample-weighted) mean support
    embedding, of shape (d,); other kinds need no statistic (``None``).
    """
    if kind != "cl2n":
        return None
    if weights is None:
        return embeddings.mean(dim=0)
    weights = weights.to(embeddings.dtype)
    return (weights[:, None] * embeddings).sum(dim=0) / weights.sum()


def normalize(
    kind: str | None, embeddings: torch.Tensor, mean: torch.Tensor | None = None
) -> torch.Tensor:
    """Normalise embeddings (n, d); ``mean`` comes from :func:`support_mean`.

    A zero vector stays zero (it has no direction).
    """
    if kind is None:
        return embeddings
    if kind == "cl2n":
        embeddings = embeddings - mean.to(embeddings)
    return torch.nn.functional.normalize(embeddings, dim=1)
