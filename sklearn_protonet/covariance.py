"""Variance-aware prototypes: class covariances and the Mahalanobis distance.

A class mean ignores how spread out a class is. Two remedies from the
literature live here, both ending in a *precision* per class (the inverse of
its covariance) that weighs the squared differences to its prototype:

- :class:`ShrunkCovariance` estimates a (diagonal or full) covariance per
  class from the support embeddings at ``fit``, shrunk towards the pooled
  within-class covariance (or a scaled identity) so that one or two examples
  per class still give a usable metric (``PrototypicalClassifier(
  metric="mahalanobis")``);
- :class:`GaussianEncoder` makes an encoder also output a per-example
  precision, learnt at meta-training, as in Gaussian Prototypical Networks
  (Fort, 2017): prototypes are precision-weighted means and a class's
  precision is the sum of its examples' (``metric="gaussian"``).
"""

from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

__all__ = [
    "GaussianEncoder",
    "ShrunkCovariance",
    "mahalanobis_distances",
    "precision_weighted_prototypes",
    "split_gaussian",
]

# Relative ridge added to every covariance so that it stays invertible even
# with shrinkage=0 and fewer examples than dimensions.
_RIDGE = 1e-9


def precision_weighted_prototypes(
    embeddings: torch.Tensor,
    precisions: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision-weighted class means and the classes' summed precisions.

    With one precision per example and dimension (Fort, 2017, eq. 3-4):
    ``prototype_c = sum_i s_i * x_i / sum_i s_i`` and ``S_c = sum_i s_i``.
    Constant precisions give the plain means (as ``sample_weight`` does).

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
    precisions : Tensor of shape (n, d) or (n, 1)
        Positive.
    labels : LongTensor of shape (n,)
        Class codes in ``[0, n_classes)``.
    n_classes : int

    Returns
    -------
    prototypes : Tensor of shape (n_classes, d)
    class_precisions : Tensor of shape (n_classes, d)
    """
    precisions = precisions.expand_as(embeddings)
    sums = embeddings.new_zeros(n_classes, embeddings.shape[1])
    sums = sums.index_add(0, labels, embeddings * precisions)
    totals = torch.zeros_like(sums).index_add(0, labels, precisions)
    return sums / totals, totals


def mahalanobis_distances(
    queries: torch.Tensor, prototypes: torch.Tensor, precisions: torch.Tensor
) -> torch.Tensor:
    """Squared Mahalanobis distances ``(q - p_c)^T P_c (q - p_c)``.

    Parameters
    ----------
    queries : Tensor of shape (n, d)
    prototypes : Tensor of shape (k, d)
    precisions : Tensor of shape (k, d) or (k, d, d)
        Per class, the diagonal of its precision matrix, or the full matrix.

    Returns
    -------
    Tensor of shape (n, k)
    """
    if precisions.dim() == 2:
        # Expanded as three matrix products: O(n k) memory, not O(n k d).
        return (
            queries.square() @ precisions.T
            - 2.0 * queries @ (precisions * prototypes).T
            + (precisions * prototypes.square()).sum(1)
        ).clamp_min_(0.0)
    # One class at a time keeps the memory at O(n d) per class.
    columns = []
    for prototype, precision in zip(prototypes, precisions, strict=True):
        diff = queries - prototype
        columns.append(((diff @ precision) * diff).sum(1))
    return torch.stack(columns, 1).clamp_min_(0.0)


def split_gaussian(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedding and precision halves of a :class:`GaussianEncoder` output."""
    if output.shape[1] % 2:
        raise ValueError(
            "metric='gaussian' needs an encoder whose output is [embedding, "
            f"precision] (two halves), got {output.shape[1]} columns; wrap the "
            "encoder in sklearn_protonet.covariance.GaussianEncoder."
        )
    embedding, precision = output.chunk(2, dim=1)
    return embedding, precision


class GaussianEncoder(nn.Module):
    """An encoder that also outputs a precision (inverse variance) per example.

    Gaussian Prototypical Networks (Fort, 2017): the network says how sure it
    is of each embedding; uncertain examples count less in their prototype and
    a class's distance is scaled by its summed precision. Here a linear head on
    the embedding gives the raw value and ``1 + softplus`` makes it a precision
    of at least 1, as in the paper. The head starts at zero, so an untrained
    ``GaussianEncoder`` ranks classes exactly as its inner encoder does:
    meta-training from a pretrained encoder starts at the plain network.

    The output is ``[embedding, precision]``, two halves of ``embedding_dim``
    columns; use it with ``metric="gaussian"`` in
    :class:`~sklearn_protonet.EpisodicTrainer` and
    :class:`~sklearn_protonet.PrototypicalClassifier`.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps a batch to embeddings of shape (n, embedding_dim), e.g.
        :class:`~sklearn_protonet.modules.Conv4` (possibly pretrained).
    embedding_dim : int, default=64
        Width of the encoder's output (64 for the default ``Conv4``).
    covariance : {"diagonal", "radius"}, default="diagonal"
        One precision per dimension, or one per example (a sphere), the
        paper's two cheapest variants.

    Examples
    --------
    >>> import torch
    >>> from sklearn_protonet.covariance import GaussianEncoder
    >>> from sklearn_protonet.modules import Conv4
    >>> GaussianEncoder(Conv4())(torch.zeros(3, 784)).shape
    torch.Size([3, 128])
    """

    def __init__(
        self, encoder: nn.Module, embedding_dim: int = 64, covariance: str = "diagonal"
    ) -> None:
        super().__init__()
        if covariance not in ("diagonal", "radius"):
            raise ValueError(
                f"covariance must be 'diagonal' or 'radius', got {covariance!r}."
            )
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(
                f"embedding_dim must be a positive int, got {embedding_dim!r}."
            )
        self.encoder = encoder
        self.embedding_dim, self.covariance = embedding_dim, covariance
        self.head = nn.Linear(
            embedding_dim, embedding_dim if covariance == "diagonal" else 1
        )
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        embedding = self.encoder(X)
        if embedding.dim() != 2 or embedding.shape[1] != self.embedding_dim:
            raise ValueError(
                f"GaussianEncoder(embedding_dim={self.embedding_dim}) got encoder "
                f"outputs of shape {tuple(embedding.shape)}; set embedding_dim to "
                "the encoder's output width."
            )
        precision = 1.0 + F.softplus(self.head(embedding))
        return torch.cat([embedding, precision.expand_as(embedding)], 1)


class ShrunkCovariance(BaseEstimator):
    """Per-class covariances of support embeddings, shrunk for tiny classes.

    Each class's sample covariance ``S_c`` is mixed with a target ``T``:
    ``Sigma_c = (1 - a_c) S_c + a_c T``. ``T`` is the pooled within-class
    covariance, itself shrunk towards ``mu I`` (``mu`` its mean variance) by
    the Ledoit-Wolf-style rule below, or ``mu I`` directly. A class with a single
    example has no spread of its own (``a_c = 1``); when *every* class has a
    single example there is no spread at all and ``T`` is the unit matrix, so
    the metric is the plain squared Euclidean distance. This is the idea of
    scikit-learn's ``LinearDiscriminantAnalysis(shrinkage="auto")``, per class.

    ``shrinkage="auto"`` chooses both mixtures from the data. The pooled
    covariance, estimated from all classes' residuals together, is shrunk
    towards ``mu I`` by the Ledoit-Wolf intensity (in the form of Schäfer &
    Strimmer, 2005: the estimated variance of its entries over their squared
    distance to the target). A class's own covariance, from only ``n_c - 1``
    degrees of freedom, gets ``a_c = d / (d + n_c - 1)``: the target counts
    as ``d`` observations, the posterior mean under an inverse-Wishart prior
    centred on it. (A Ledoit-Wolf estimate per class is far too noisy with
    2 to 5 examples: with 2 it is always 0.)

    Parameters
    ----------
    structure : {"diag", "full"}, default="diag"
        A variance per dimension, or a full matrix (``O(k d^2)`` memory and
        a ``d x d`` solve per class: keep ``d`` in the hundreds).
    shrinkage : "auto" or float in [0, 1], default="auto"
        ``a_c`` for every class, or the automatic choice above. The pooled
        target is always shrunk automatically.
    target : {"pooled", "identity"}, default="pooled"
        Shrink towards the pooled within-class covariance or a scaled identity.

    Attributes are not set: the estimator is a parameter holder (nested
    parameters ``covariance__shrinkage`` tune in grid searches) whose
    :meth:`precisions` does the work.

    Examples
    --------
    >>> import torch
    >>> from sklearn_protonet.covariance import ShrunkCovariance
    >>> X = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0], [5.0, 6.0]])
    >>> means = torch.tensor([[1.0, 0.0], [5.0, 5.5]])
    >>> precisions, shrinkage = ShrunkCovariance().precisions(
    ...     X, torch.tensor([0, 0, 1, 1]), means)
    >>> precisions.shape, shrinkage.shape
    (torch.Size([2, 2]), torch.Size([2]))
    """

    _parameter_constraints: dict = {
        "structure": [StrOptions({"diag", "full"})],
        "shrinkage": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="both")],
        "target": [StrOptions({"pooled", "identity"})],
    }

    def __init__(
        self, structure: str = "diag", shrinkage="auto", target: str = "pooled"
    ) -> None:
        self.structure = structure
        self.shrinkage = shrinkage
        self.target = target

    def precisions(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        prototypes: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each class's precision (inverse shrunk covariance).

        Parameters
        ----------
        embeddings : Tensor of shape (n, d), float64
        labels : LongTensor of shape (n,)
            Class codes in ``[0, k)``.
        prototypes : Tensor of shape (k, d)
            The (weighted) class means.
        sample_weight : Tensor of shape (n,), default=None
            Frequency weights: a weight of 2 counts as a repeated example.

        Returns
        -------
        precisions : Tensor of shape (k, d) for "diag", (k, d, d) for "full"
        shrinkage : Tensor of shape (k,)
            The intensity ``a_c`` used for each class.
        """
        self._validate_params()
        k, d = prototypes.shape
        diag = self.structure == "diag"
        weights = (
            torch.ones_like(embeddings[:, 0])
            if sample_weight is None
            else sample_weight.to(embeddings)
        )
        residuals = embeddings - prototypes[labels]
        counts = torch.zeros_like(prototypes[:, 0]).index_add(0, labels, weights)
        dof = (counts - 1.0).clamp_min(0.0)
        # Scatter (sum of weighted residual products) and the sum of the
        # products' squares, which estimate how noisy each entry of S_c is.
        if diag:
            scatter = torch.zeros_like(prototypes).index_add(
                0, labels, weights[:, None] * residuals.square()
            )
            fourth = torch.zeros_like(counts).index_add(
                0, labels, weights * residuals.pow(4).sum(1)
            )
        else:
            outer = residuals[:, :, None] * residuals[:, None, :]
            scatter = prototypes.new_zeros(k, d, d).index_add(
                0, labels, weights[:, None, None] * outer
            )
            fourth = torch.zeros_like(counts).index_add(
                0, labels, weights * residuals.square().sum(1).square()
            )
        target = self._target(scatter.sum(0), fourth.sum(), counts.sum(), dof.sum(), d)
        covariances = scatter / dof.clamp_min(1.0).view(-1, *[1] * (scatter.dim() - 1))
        if self.shrinkage == "auto":
            # The target weighs like d observations (an inverse-Wishart prior of
            # d degrees of freedom): a Ledoit-Wolf estimate from the 0 to 4
            # degrees of freedom of a few-shot class is too noisy, and at 2-shot
            # it is 0 (benchmarks/gaussian.py and the user guide).
            intensity = d / (d + dof)
        else:
            intensity = torch.full_like(counts, float(self.shrinkage))
        intensity = torch.where(dof > 0, intensity, torch.ones_like(intensity))
        a = intensity.view(-1, *[1] * (scatter.dim() - 1))
        shrunk = (1.0 - a) * covariances + a * target
        scale = target.diagonal().mean() if not diag else target.mean()
        if diag:
            return 1.0 / (shrunk + _RIDGE * scale), intensity
        eye = torch.eye(d, dtype=shrunk.dtype, device=shrunk.device)
        factor = torch.linalg.cholesky(shrunk + _RIDGE * scale * eye)
        return torch.cholesky_inverse(factor), intensity

    def _target(self, scatter, fourth, count, dof, d: int) -> torch.Tensor:
        """The shrinkage target: pooled (shrunk) or scaled identity."""
        diag = self.structure == "diag"
        eye = torch.ones(d) if diag else torch.eye(d)
        eye = eye.to(scatter)
        if dof <= 0:  # every class has one example: no spread to estimate
            return eye
        pooled = scatter / dof
        mu = (pooled if diag else pooled.diagonal()).mean()
        if mu <= 0:
            return eye
        identity = mu * eye
        if self.target == "identity":
            return identity
        beta = _intensity(pooled, identity, scatter, fourth, count, dof)
        return (1.0 - beta) * pooled + beta * identity


def _intensity(covariance, target, scatter, fourth, count, dof) -> torch.Tensor:
    """Ledoit-Wolf intensity towards ``target`` (Schäfer & Strimmer's form).

    ``sum Var(s_ij) / sum (s_ij - t_ij)^2``, clipped to [0, 1], with
    ``Var(s_ij) ~ n / dof^3 * sum_k w_k (r_ki r_kj - mean)^2``; the sums of
    squared residual products reduce to ``fourth - |scatter|^2 / n``.
    """
    variance = (fourth - scatter.square().sum() / count) * count / dof**3
    distance = (covariance - target).square().sum()
    if distance <= 0:
        return distance.new_ones(())
    return (variance.clamp_min(0.0) / distance).clamp(0.0, 1.0)
