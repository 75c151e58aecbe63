"""Embedding normalisation, applied alike to prototypes and queries."""

from __future__ import annotations

import torch

__all__ = ["CENTRED", "NORMALIZATIONS", "normalize", "support_mean"]

#: Accepted values of ``PrototypicalClassifier(normalization=...)``:
#: ``"l2"`` scales each embedding to unit length; ``"cl2n"`` first subtracts
#: the support set's mean embedding (SimpleShot's centring then L2
#: normalisation; Wang et al., 2019).
NORMALIZATIONS = ("l2", "cl2n")
#: The normalisations that centre on the support set's mean first.
CENTRED = ("cl2n",)


def support_mean(
    kind: str | None, embeddings: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor | None:
    """The centring statistic of ``kind`` from the support embeddings.

    Only ``"cl2n"`` centres: it returns the (sample-weighted) mean support
    embedding, of shape (d,); other kinds need no statistic (``None``).
    """
    if kind not in CENTRED:
        return None
    mean = _mean(embeddings, weights)
    if bool(torch.isfinite(mean).all()):
        return mean
    # The sums overflow (embeddings near float64's limit): a mean is never
    # larger than the largest value, so compute it on rescaled values.
    scale = embeddings.abs().max()
    largest = None if weights is None else weights.max()
    return (
        _mean(embeddings / scale, None if weights is None else weights / largest)
        * scale
    )


def _mean(embeddings: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
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
    if kind in CENTRED:
        embeddings = embeddings - mean.to(embeddings)
    largest = embeddings.abs().amax(1, keepdim=True)
    if bool(((largest > 1e150) | ((largest > 0) & (largest < 1e-150))).any()):
        # Norms that would overflow (or underflow to 0): scale each row to a
        # largest value of 1 first, which keeps its direction.
        embeddings = embeddings / torch.where(largest > 0, largest, 1.0)
    return torch.nn.functional.normalize(embeddings, dim=1)
