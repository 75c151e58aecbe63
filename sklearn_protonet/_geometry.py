"""The metric registry: one object per metric, owning its distances, its
prototypes and what it can do.

Every estimator asks :func:`get_metric` for the object behind a metric name
and reads its *capabilities* (exact on sparse rows, incremental, refinable
with unlabeled rows, variance-aware, bounded under int8, trainable,
adaptable) instead of branching on the name: the allowed values of each
estimator's ``metric`` parameter and the rules between parameters follow
from them (:func:`metric_names`). This is the only module that spells a
metric's name.

Nothing here materialises an ``n x k x d`` tensor.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ._numerics import stable_prototypes
from .covariance import (
    ShrunkCovariance,
    mahalanobis_distances,
    precision_weighted_prototypes,
    split_gaussian,
)

__all__ = [
    "DEFAULT_METRIC",
    "Metric",
    "check_capabilities",
    "get_metric",
    "metric_names",
]

#: The paper's metric, every estimator's default.
DEFAULT_METRIC = "sqeuclidean"

_EPS = 1e-12  # torch.nn.functional.normalize's: a zero row stays zero


def _squared(queries: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    # |q - p|^2 = |q|^2 - 2 q.p + |p|^2 as one matrix product: O(n k) memory
    # instead of the O(n k d) of broadcasting the difference.
    return (
        queries.square().sum(1, keepdim=True)
        - 2.0 * queries @ prototypes.T
        + prototypes.square().sum(1)
    ).clamp_min_(0.0)


def class_means(
    embeddings: torch.Tensor,
    codes: torch.Tensor,
    n_classes: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """(Weighted) mean embedding of each class, shape (n_classes, d)."""
    sums = embeddings.new_zeros(n_classes, embeddings.shape[1])
    if weights is None:  # skip an n x d product of ones
        sums.index_add_(0, codes, embeddings)
        totals = torch.bincount(codes, minlength=n_classes).to(embeddings)
    else:
        weights = weights.to(embeddings)
        sums.index_add_(0, codes, embeddings * weights[:, None])
        totals = embeddings.new_zeros(n_classes).index_add_(0, codes, weights)
    return sums / totals[:, None]


def _unit_max(rows: torch.Tensor) -> torch.Tensor:
    """Rows divided by their largest magnitude, so that the norms that cosine
    computes neither overflow (1e300) nor underflow (1e-300)."""
    largest = rows.abs().amax(1, keepdim=True)
    return rows / torch.where(largest > 0, largest, 1.0)


class Metric:
    """A distance between embeddings and prototypes, with its capabilities.

    Subclasses set :attr:`name` and the capability flags, and implement
    ``pairwise(queries, prototypes, precisions=None)``, the distances from
    each query (n, d) to each prototype (k, d) as an (n, k) tensor, and
    ``rowwise(points, prototypes, precisions=None)``, ``d(points[i],
    prototypes[i])`` for each row i; the mean-based defaults of the other
    methods serve every metric whose prototypes are class means.
    """

    name: ClassVar[str]
    #: The identity encoder computes it on sparse rows without densifying.
    sparse_exact: ClassVar[bool] = False
    #: Prototypes are running sums: ``partial_fit`` can add rows.
    incremental: ClassVar[bool] = True
    #: Unlabeled rows can refine the prototypes (soft k-means).
    refinable: ClassVar[bool] = True
    #: A precision (inverse covariance) per class weighs the differences.
    variance_aware: ClassVar[bool] = False
    #: int8 embeddings have a bound on how far they move a decision.
    int8_bound: ClassVar[bool] = True
    #: Usable as the meta-training loss's distance.
    trainable: ClassVar[bool] = True
    #: Compares two embeddings without class statistics: usable in the
    #: all-pairs (``episode_loss="nca"``) meta-training loss.
    pair_trainable: ClassVar[bool] = True
    #: Usable in support-set fine-tuning's pseudo-episodes.
    adaptable: ClassVar[bool] = True
    #: Depends on directions only (scale-free); compares unit vectors.
    angular: ClassVar[bool] = False
    #: ``d(s q, s p) = s ** scale_power * d(q, p)``.
    scale_power: ClassVar[int] = 2
    #: The encoder outputs ``[embedding, precision]``, two halves.
    precision_in_output: ClassVar[bool] = False
    #: Embeddings may be centred on the support mean (a centred precision
    #: half would turn negative).
    centrable: ClassVar[bool] = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- distances ---------------------------------------------------------

    def from_products(
        self, dots: np.ndarray, sq_norms: np.ndarray, proto_sq: np.ndarray
    ) -> np.ndarray:
        """Distances from the products ``q . p``, ``|q|^2`` and ``|p|^2``
        (the sparse path, :mod:`sklearn_protonet._sparse`)."""
        raise NotImplementedError

    def scaled_pairwise(
        self,
        queries: torch.Tensor,
        prototypes: torch.Tensor,
        precisions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, float]:
        """Distances ``d`` and a factor: the true distances are ``d * factor``.

        ``factor`` is 1 unless the distances overflow (inputs near float64's
        limit); the inputs are then divided by their largest magnitude ``s``
        and ``factor`` is ``s ** scale_power``, possibly ``inf``:
        :func:`~sklearn_protonet._numerics.logits` uses it without
        overflowing into NaN.
        """
        if self.angular:  # scale-free: each row to a largest value of 1
            queries, prototypes = _unit_max(queries), _unit_max(prototypes)
        distances = self.pairwise(queries, prototypes, precisions)
        if bool(torch.isfinite(distances).all()):
            return distances, 1.0
        if precisions is not None:
            raise ValueError(
                f"metric={self.name!r} gives non-finite distances: the embeddings "
                "are too large for float64 arithmetic. Scale the inputs (e.g. "
                "StandardScaler) before the classifier."
            )
        scale = float(max(queries.abs().max(), prototypes.abs().max()))
        if not math.isfinite(scale) or scale == 0:
            return distances, 1.0
        distances = self.pairwise(queries / scale, prototypes / scale)
        factor = 1.0
        for _ in range(self.scale_power):  # inf, not OverflowError, past 1e308
            factor *= scale
        return distances, factor

    # -- prototypes --------------------------------------------------------

    def points(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The part of an encoder's output that distances compare."""
        return embeddings

    def row_terms(
        self, embeddings: torch.Tensor, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each row's point, its term in its class's sums and in its totals:
        a prototype is ``sums[c] / totals[c]`` (``w x`` over ``w`` here)."""
        if weights is None:
            weights = torch.ones_like(embeddings[:, 0])
        weights = weights.to(embeddings)
        return embeddings, embeddings * weights[:, None], weights

    def support_prototypes(
        self,
        embeddings: torch.Tensor,
        codes: torch.Tensor,
        n_classes: int,
        weights: torch.Tensor | None = None,
        covariance: ShrunkCovariance | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Prototypes, precisions and shrinkage of a support set's classes
        (the last two None for the mean-based metrics)."""
        # Rescaled if the class sums overflow (inputs near float64's limit).
        prototypes = stable_prototypes(
            class_means, embeddings, codes, n_classes, weights
        )
        return prototypes, None, None

    def episode_logits(
        self, embeddings: torch.Tensor, target: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of an episode's queries over its prototypes (eq. 1-2)."""
        support_codes, query_codes = target["support"], target["query"]
        n_support_rows = len(support_codes)
        prototypes = class_means(
            embeddings[:n_support_rows], support_codes, int(support_codes.max()) + 1
        )
        return -self.pairwise(embeddings[n_support_rows:], prototypes), query_codes

    def between_rows(self, points: torch.Tensor) -> torch.Tensor:
        """Distances between every two rows of ``points``, (n, n), with
        finite gradients (the diagonal's included)."""
        return self.pairwise(points, points)

    def neighbour_logits(
        self, embeddings: torch.Tensor, target: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of every row of an episode over its classes, from the
        other rows: ``logits[i, c] = log sum_j exp(-d(x_i, x_j))`` over the
        rows ``j != i`` of class ``c``, so their softmax is the neighbourhood
        component analysis probability that ``x_i``'s neighbour is of class
        ``c`` (Goldberger et al., 2004). Every pair of rows contributes,
        where the prototypical loss compares queries with support means."""
        codes = torch.cat([target["support"], target["query"]])
        logits = -self.between_rows(self.points(embeddings))
        logits = logits.masked_fill(
            torch.eye(len(codes), dtype=torch.bool, device=logits.device), -math.inf
        )
        # A log-sum-exp per class, each shifted by its largest logit (a
        # constant: the result does not depend on it) so that no class's sum
        # underflows to 0, whose log would give NaN gradients.
        columns = codes.expand(len(codes), -1)
        n_classes = int(codes.max()) + 1
        largest = logits.new_full((len(codes), n_classes), -math.inf)
        largest = largest.scatter_reduce(1, columns, logits, "amax").detach()
        largest = torch.where(largest.isfinite(), largest, 0.0)
        sums = logits.new_zeros(len(codes), n_classes)
        sums.scatter_add_(1, columns, (logits - largest.gather(1, columns)).exp())
        return sums.log() + largest, codes


class SquaredEuclidean(Metric):
    """``|q - p|^2``, the paper's choice (a Bregman divergence, which makes
    the classifier linear in the embedding)."""

    name = "sqeuclidean"
    sparse_exact = True

    def pairwise(self, queries, prototypes, precisions=None):
        return _squared(queries, prototypes)

    def rowwise(self, points, prototypes, precisions=None):
        return (points - prototypes).square().sum(1)

    def from_products(self, dots, sq_norms, proto_sq):
        return np.clip(sq_norms[:, None] - 2.0 * dots + proto_sq, 0.0, None)


class Euclidean(SquaredEuclidean):
    """``|q - p|``."""

    name = "euclidean"
    scale_power = 1

    def pairwise(self, queries, prototypes, precisions=None):
        return _squared(queries, prototypes).sqrt_()

    def between_rows(self, points):
        # sqrt's gradient at 0 (the diagonal, duplicate rows) is infinite.
        return _squared(points, points).clamp_min_(1e-30).sqrt_()

    def rowwise(self, points, prototypes, precisions=None):
        return super().rowwise(points, prototypes).sqrt()

    def from_products(self, dots, sq_norms, proto_sq):
        return np.sqrt(super().from_products(dots, sq_norms, proto_sq))


class Cosine(Metric):
    """``1 - cosine similarity``."""

    name = "cosine"
    sparse_exact = True
    angular = True
    scale_power = 0

    def pairwise(self, queries, prototypes, precisions=None):
        return 1.0 - F.normalize(queries, dim=1) @ F.normalize(prototypes, dim=1).T

    def rowwise(self, points, prototypes, precisions=None):
        return 1.0 - (F.normalize(points, dim=1) * F.normalize(prototypes, dim=1)).sum(
            1
        )

    def from_products(self, dots, sq_norms, proto_sq):
        norms = np.maximum(np.sqrt(sq_norms), _EPS)[:, None]
        return 1.0 - dots / norms / np.maximum(np.sqrt(proto_sq), _EPS)


def _weight_column(embeddings: torch.Tensor, weights) -> torch.Tensor:
    """The rows' weights as an (n, 1) column (ones when None)."""
    if weights is None:
        return torch.ones_like(embeddings[:, :1])
    return weights.to(embeddings)[:, None]


class _VarianceAware(Metric):
    """Squared Mahalanobis distances under a precision per class."""

    variance_aware = True
    refinable = False
    int8_bound = False
    adaptable = False
    pair_trainable = False  # distances need a class's precision

    def pairwise(self, queries, prototypes, precisions=None):
        return mahalanobis_distances(self.points(queries), prototypes, precisions)

    def rowwise(self, points, prototypes, precisions=None):
        diff = points - prototypes
        if precisions.dim() == 2:  # diagonal precisions, one row per point
            return (diff.square() * precisions).sum(1)
        return torch.einsum("ni,nij,nj->n", diff, precisions, diff)

    def scaled_pairwise(self, queries, prototypes, precisions=None):
        distances = self.pairwise(queries, prototypes, precisions)
        if bool(torch.isnan(distances).any()):
            raise ValueError(
                f"metric={self.name!r} gives NaN distances: the embeddings are too "
                "large for float64 arithmetic. Scale the inputs (e.g. "
                "StandardScaler) before the classifier."
            )
        return distances, 1.0


class Mahalanobis(_VarianceAware):
    """Each class's shrunk covariance, estimated from the support set by a
    :class:`~sklearn_protonet.covariance.ShrunkCovariance`."""

    name = "mahalanobis"
    incremental = False
    trainable = False

    def support_prototypes(
        self, embeddings, codes, n_classes, weights=None, covariance=None
    ):
        column = _weight_column(embeddings, weights)
        prototypes, _ = precision_weighted_prototypes(
            embeddings, column, codes, n_classes
        )
        estimator = ShrunkCovariance() if covariance is None else covariance
        precisions, shrinkage = estimator.precisions(
            embeddings, codes, prototypes, weights
        )
        return prototypes, precisions, shrinkage


class Gaussian(_VarianceAware):
    """Gaussian Prototypical Networks (Fort, 2017): the encoder outputs
    ``[embedding, precision]`` (a
    :class:`~sklearn_protonet.covariance.GaussianEncoder`); prototypes are
    precision-weighted means and a class's precision is the sum of its
    examples'."""

    name = "gaussian"
    precision_in_output = True
    centrable = False

    def points(self, embeddings):
        return split_gaussian(embeddings)[0]

    def row_terms(self, embeddings, weights=None):
        if weights is None:
            weights = torch.ones_like(embeddings[:, 0])
        points, precision = split_gaussian(embeddings)
        totals = precision * weights.to(embeddings)[:, None]
        return points, points * totals, totals

    def support_prototypes(
        self, embeddings, codes, n_classes, weights=None, covariance=None
    ):
        column = _weight_column(embeddings, weights)
        embedding, precision = split_gaussian(embeddings)
        prototypes, precisions = precision_weighted_prototypes(
            embedding, precision * column, codes, n_classes
        )
        return prototypes, precisions, None

    def episode_logits(self, embeddings, target):
        support_codes = target["support"]
        embedding, precision = split_gaussian(embeddings)
        n_rows = len(support_codes)
        prototypes, precisions = precision_weighted_prototypes(
            embedding[:n_rows],
            precision[:n_rows],
            support_codes,
            int(support_codes.max()) + 1,
        )
        logits = -mahalanobis_distances(embedding[n_rows:], prototypes, precisions)
        return logits, target["query"]


_REGISTRY: dict[str, Metric] = {
    metric.name: metric
    for metric in (SquaredEuclidean(), Euclidean(), Cosine(), Mahalanobis(), Gaussian())
}


def get_metric(name: str) -> Metric:
    """The metric object registered under ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"metric must be one of {sorted(_REGISTRY)}, got {name!r}."
        ) from None


def metric_names(**capabilities: bool) -> tuple[str, ...]:
    """Names of the metrics with the given capabilities, in registry order,
    e.g. ``metric_names(trainable=True)``."""
    return tuple(
        name
        for name, metric in _REGISTRY.items()
        if all(getattr(metric, flag) == value for flag, value in capabilities.items())
    )


def check_capabilities(estimator, metric: Metric, needs) -> None:
    """Refuse parameters of ``estimator`` that need a capability ``metric``
    lacks, naming both parameters.

    ``needs`` holds ``(parameter, is_active(value), capability, meaning)``
    rows: the rules between an estimator's parameters, declared once.
    """
    for name, active, capability, meaning in needs:
        value = getattr(estimator, name)
        if active(value) and not getattr(metric, capability):
            allowed = list(metric_names(**{capability: True}))
            raise ValueError(
                f"{name}={value!r} {meaning}, which metric={metric.name!r} cannot "
                f"serve; use the default {name}, or metric in {allowed}."
            )
