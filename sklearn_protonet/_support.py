"""The support state: what a fitted classifier knows of its classes.

One immutable object holds the prototypes and the running terms behind them
(``prototypes = sums / totals``: the (weighted) sum of a class's embeddings
over its summed weight, which makes them incremental), the precisions of the
variance-aware metrics, the normalisation's centring mean and the rejection
threshold. Every way of getting prototypes goes through it: ``fit``
(:meth:`SupportState.from_support`), ``partial_fit`` (:meth:`~SupportState.add`),
semi-supervised refinement (:meth:`~SupportState.refine`), open-set
calibration (:meth:`~SupportState.calibrate_rejection`), zero-shot blending
and loading (:meth:`~SupportState.from_tensors`). Each returns a new state,
so a reader holding the old one never sees a half-updated mix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from ._geometry import Metric, get_metric
from ._inference import uncertain_rows
from ._inputs import as_tensor
from ._normalization import CENTRED, normalize, support_mean
from ._sparse import sparse_distances, sparse_embeddings, sparse_prototypes
from .refinement import soft_kmeans

__all__ = ["SupportState", "as_prototypes", "class_sums"]


def as_prototypes(sums: torch.Tensor, totals: torch.Tensor) -> torch.Tensor:
    """``sums / totals``, totals of shape (k,) or (k, d)."""
    return sums / (totals[:, None] if totals.dim() == 1 else totals)


def class_sums(
    metric: Metric | str,
    embeddings: torch.Tensor,
    codes: torch.Tensor,
    n_classes: int,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sums of the metric's row terms: ``prototypes = sums /
    totals``."""
    if isinstance(metric, str):
        metric = get_metric(metric)
    _, row_sums, row_totals = metric.row_terms(embeddings, weights)
    sums = row_sums.new_zeros(n_classes, row_sums.shape[1]).index_add_(
        0, codes, row_sums
    )
    totals = row_totals.new_zeros(n_classes, *row_totals.shape[1:]).index_add_(
        0, codes, row_totals
    )
    return sums, totals


def _codes_tensor(codes: np.ndarray, device) -> torch.Tensor:
    return as_tensor(np.asarray(codes).astype(np.int64)).to(device)


@dataclass(frozen=True)
class SupportState:
    """Prototypes of a support set, and everything needed to extend them.

    Attributes
    ----------
    metric : Metric
    normalization : {None, "l2", "cl2n"}
    prototypes : ndarray of shape (n_classes, d)
    sums : ndarray of shape (n_classes, d)
    totals : ndarray of shape (n_classes,) or (n_classes, d)
    precisions : ndarray or None
        Each class's precision, for the variance-aware metrics.
    shrinkage : ndarray of shape (n_classes,) or None
        The covariance shrinkage of each class (``ShrunkCovariance``).
    mean : ndarray of shape (d,) or None
        The centring mean of the ``"cl2n"`` normalisation.
    threshold : float or None
        The rejection threshold, once calibrated.
    """

    metric: Metric
    normalization: str | None
    prototypes: np.ndarray
    sums: np.ndarray
    totals: np.ndarray
    precisions: np.ndarray | None = None
    shrinkage: np.ndarray | None = None
    mean: np.ndarray | None = None
    threshold: float | None = None

    # -- building --------------------------------------------------------

    @classmethod
    def from_support(
        cls,
        embeddings: torch.Tensor,
        codes: np.ndarray,
        n_classes: int,
        weights: np.ndarray | None = None,
        *,
        metric: Metric,
        normalization: str | None,
        covariance=None,
    ) -> SupportState:
        """The state of embedded support rows (float64, shape (n, d)).

        Rows of code -1 are unlabeled: they count in the normalisation's
        centring mean only (:meth:`refine` adds them to the prototypes).
        """
        device = embeddings.device
        w = None if weights is None else as_tensor(weights).to(device)
        mean = support_mean(normalization, embeddings, w)
        rows = normalize(normalization, embeddings, mean)
        labeled = codes >= 0
        if not labeled.all():  # (indexing copies: only when there is a split)
            mask = as_tensor(labeled).to(device)
            rows, w = rows[mask], None if w is None else w[mask]
            codes = codes[labeled]
        codes_t = _codes_tensor(codes, device)
        prototypes, precisions, shrinkage = metric.support_prototypes(
            rows, codes_t, n_classes, w, covariance
        )
        sums, totals = class_sums(metric, rows, codes_t, n_classes, w)
        # Classes without rows yet (partial_fit's classes) have no prototype.
        present = (totals if totals.dim() == 1 else totals.sum(1)) > 0
        if not bool(torch.isfinite(prototypes[present]).all()):
            raise ValueError(
                f"The prototypes of metric={metric.name!r} are not finite: the "
                "support set's embeddings are too large for float64 arithmetic. "
                "Scale the inputs (e.g. StandardScaler) before the classifier."
            )
        return cls(
            metric=metric,
            normalization=normalization,
            prototypes=prototypes.cpu().numpy(),
            sums=sums.cpu().numpy(),
            totals=totals.cpu().numpy(),
            precisions=None if precisions is None else precisions.cpu().numpy(),
            shrinkage=None if shrinkage is None else shrinkage.cpu().numpy(),
            mean=None if mean is None else mean.cpu().numpy(),
        )

    @classmethod
    def from_sparse(
        cls,
        X: sp.csr_matrix,
        codes: np.ndarray,
        n_classes: int,
        weights: np.ndarray | None,
        *,
        metric: Metric,
        normalization: str | None,
    ) -> SupportState:
        """The state of sparse rows taken as their own embeddings, computed
        without densifying them (:mod:`sklearn_protonet._sparse`)."""
        prototypes, mean = sparse_prototypes(
            X, codes, n_classes, weights, normalization
        )
        w = np.ones(X.shape[0]) if weights is None else weights
        totals = np.bincount(codes, w, minlength=n_classes)
        return cls.from_prototypes(
            prototypes, totals, metric, normalization=normalization, mean=mean
        )

    @classmethod
    def from_prototypes(
        cls,
        prototypes: np.ndarray,
        totals: np.ndarray,
        metric: Metric,
        *,
        normalization: str | None = None,
        mean: np.ndarray | None = None,
    ) -> SupportState:
        """Prototypes given directly (zero-shot: from class metadata), each
        class weighing ``totals`` examples when support rows are added."""
        return cls(
            metric=metric,
            normalization=normalization,
            prototypes=prototypes,
            sums=prototypes * totals[:, None],
            totals=totals,
            mean=mean,
        )

    # -- updating ---------------------------------------------------------

    def add(
        self,
        embeddings: torch.Tensor,
        codes: np.ndarray,
        n_classes: int,
        positions: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> SupportState:
        """A state with more support rows, possibly of new classes.

        ``codes`` index the ``n_classes`` classes after the update and
        ``positions`` says where each current class goes among them.
        """
        device = embeddings.device
        w = None if weights is None else as_tensor(weights).to(device)
        sums, totals = class_sums(
            self.metric,
            self.normalize(embeddings),
            _codes_tensor(codes, device),
            n_classes,
            w,
        )
        sums, totals = sums.cpu().numpy(), totals.cpu().numpy()
        sums[positions] += self.sums
        totals[positions] += self.totals
        with np.errstate(invalid="ignore", divide="ignore"):
            prototypes = sums / (totals[:, None] if totals.ndim == 1 else totals)
        precisions = totals if self.metric.variance_aware else None
        return dataclasses.replace(
            self, prototypes=prototypes, sums=sums, totals=totals, precisions=precisions
        )

    def refine(
        self,
        embeddings: torch.Tensor,
        weights: np.ndarray | None,
        steps: int,
        method: str,
    ) -> SupportState:
        """Prototypes refined by unlabeled rows (semi-supervised)."""
        if steps == 0 or len(embeddings) == 0:
            return self
        device = embeddings.device
        sums, totals = soft_kmeans(
            as_tensor(self.sums).to(device),
            as_tensor(self.totals).to(device),
            self.normalize(embeddings),
            steps,
            metric=self.metric.name,
            weights=None if weights is None else as_tensor(weights).to(device),
            refinement=method,
        )
        return dataclasses.replace(
            self,
            prototypes=as_prototypes(sums, totals).cpu().numpy(),
            sums=sums.cpu().numpy(),
            totals=totals.cpu().numpy(),
        )

    def calibrate_rejection(
        self,
        embeddings: torch.Tensor,
        codes: np.ndarray,
        weights: np.ndarray | None,
        quantile: float,
    ) -> SupportState | None:
        """A state whose threshold is the ``quantile`` of the support rows'
        leave-one-out distances: each row's distance to its class's prototype
        computed without it, the distance of a fresh example of a known
        class. None when no class has two examples to leave one out."""
        distances = self._leave_one_out(embeddings, codes, weights)
        if len(distances) == 0:
            return None
        threshold = float(np.quantile(distances.cpu().numpy(), quantile))
        return dataclasses.replace(self, threshold=threshold)

    def _leave_one_out(self, embeddings, codes, weights) -> torch.Tensor:
        device = embeddings.device
        w = None if weights is None else as_tensor(weights).to(device)
        codes_t = _codes_tensor(codes, device)
        sums = as_tensor(self.sums).to(device)
        totals = as_tensor(self.totals).to(device)
        points, row_sums, row_totals = self.metric.row_terms(
            self.normalize(embeddings), w
        )
        rest_totals = totals[codes_t] - row_totals
        positive = rest_totals > 1e-12 * totals[codes_t].abs().clamp_min(1e-300)
        keep = positive if positive.dim() == 1 else positive.all(1)
        # Zero-weight rows are not examples; they have nothing to calibrate.
        keep &= (row_totals if row_totals.dim() == 1 else row_totals.sum(1)) > 0
        loo = as_prototypes(sums[codes_t][keep] - row_sums[keep], rest_totals[keep])
        precisions = None
        if self.precisions is not None:
            precisions = as_tensor(self.precisions).to(device)[codes_t][keep]
        return self.metric.rowwise(points[keep], loo, precisions)

    # -- using ------------------------------------------------------------

    @property
    def present(self) -> np.ndarray:
        """Which classes have support weight (``partial_fit``'s ``classes``
        may name classes before their first example)."""
        totals = self.totals if self.totals.ndim == 1 else self.totals.sum(1)
        return totals > 0

    def normalize(self, embeddings):
        """Embeddings normalised as the support rows were (sparse rows stay
        sparse where they can)."""
        if sp.issparse(embeddings):
            return sparse_embeddings(embeddings, self.mean, self.normalization)
        mean = None if self.mean is None else as_tensor(self.mean)
        return normalize(self.normalization, embeddings, mean)

    def prepare(self, embeddings):
        """What :meth:`distances` takes: dense embeddings normalised, sparse
        rows as they are (their distances normalise them exactly)."""
        return embeddings if sp.issparse(embeddings) else self.normalize(embeddings)

    def distances(self, embeddings) -> tuple[torch.Tensor, float]:
        """Distances of :meth:`prepare`'d embeddings to the prototypes, as
        ``(d, factor)``: the true distances are ``d * factor`` (factor 1
        unless they overflow float64). Classes without support weight are
        infinitely far."""
        if sp.issparse(embeddings):
            d = sparse_distances(
                embeddings, self.prototypes, self.mean, self.normalization, self.metric
            )
            return d, 1.0
        queries = embeddings.double()
        prototypes = as_tensor(self.prototypes).to(queries.device)
        precisions = None
        if self.precisions is not None:
            precisions = as_tensor(self.precisions).to(queries.device)
        present = self.present
        if present.all():
            return self.metric.scaled_pairwise(queries, prototypes, precisions)
        mask = as_tensor(present).to(queries.device)
        d, factor = self.metric.scaled_pairwise(
            queries,
            prototypes[mask],
            None if precisions is None else precisions[mask],
        )
        full = d.new_full((len(queries), len(present)), torch.inf)
        full[:, mask] = d
        return full, factor

    def uncertain(
        self, embeddings: torch.Tensor, normalized: torch.Tensor, error: float
    ) -> torch.Tensor:
        """Rows whose nearest prototype an int8 error could change."""
        mean = None if self.mean is None else as_tensor(self.mean)
        return uncertain_rows(
            embeddings,
            normalized,
            as_tensor(self.prototypes).to(embeddings.device),
            angular=self.metric.angular,
            normalization=self.normalization,
            mean=None if mean is None else mean.to(embeddings.device),
            error=error,
        )

    # -- saving -----------------------------------------------------------

    _ARRAYS = {
        "prototypes": "prototypes",
        "sums": "prototype_sums",
        "totals": "prototype_totals",
        "precisions": "precisions",
        "shrinkage": "shrinkage",
        "mean": "embedding_mean",
    }

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The state's arrays, by their saved names, for a safetensors file."""
        return {
            saved: torch.from_numpy(np.ascontiguousarray(getattr(self, field)))
            for field, saved in self._ARRAYS.items()
            if getattr(self, field) is not None
        }

    def to_dict(self) -> dict:
        """The state as plain data (arrays, names, numbers): what pickles and
        skops files hold."""
        arrays = {saved: getattr(self, field) for field, saved in self._ARRAYS.items()}
        return {
            **arrays,
            "metric": self.metric.name,
            "normalization": self.normalization,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: dict) -> SupportState:
        """The state written by :meth:`to_dict`, checked."""
        tensors = {}
        for saved in cls._ARRAYS.values():
            value = data.get(saved)
            if value is None:
                continue
            array = np.asarray(value) if not isinstance(value, np.ndarray) else value
            if array.dtype != np.float64:
                raise ValueError(f"{saved} must be float64, got {array.dtype}")
            tensors[saved] = torch.from_numpy(np.ascontiguousarray(array))
        return cls.from_tensors(
            tensors,
            metric=get_metric(data["metric"]),
            normalization=data["normalization"],
            threshold=data["threshold"],
        )

    @classmethod
    def from_tensors(
        cls,
        tensors: dict[str, torch.Tensor],
        *,
        metric: Metric,
        normalization: str | None,
        threshold: float | None,
    ) -> SupportState:
        """The state saved by :meth:`to_tensors`, checked for consistency
        (:meth:`check`)."""
        unknown = sorted(set(tensors) - set(cls._ARRAYS.values()))
        if unknown:
            raise ValueError(f"unknown fitted arrays {unknown}")
        fields = {
            field: tensors[saved].numpy() if saved in tensors else None
            for field, saved in cls._ARRAYS.items()
        }
        state = cls(
            metric=metric, normalization=normalization, threshold=threshold, **fields
        )
        state.check()
        return state

    def check(self) -> None:
        """Raise ``ValueError`` naming the field when the arrays do not fit
        together (shapes, dtypes, finiteness, what the metric and the
        normalisation need)."""
        for field in ("prototypes", "sums", "totals"):
            if getattr(self, field) is None:
                raise ValueError(f"{self._ARRAYS[field]} is missing")
        prototypes = self.prototypes
        if prototypes.dtype != np.float64 or prototypes.ndim != 2:
            raise ValueError(
                f"prototypes must be 2-D float64, got {prototypes.ndim}-D "
                f"{prototypes.dtype}"
            )
        k, d = prototypes.shape
        if k < 2 or d < 1:
            raise ValueError(f"prototypes of shape {prototypes.shape}")
        expected = {
            "sums": {(k, d)},
            "totals": {(k,), (k, d)},
            "precisions": {(k, d), (k, d, d)},
            "shrinkage": {(k,)},
            "mean": {(d,)},
        }
        for field, shapes in expected.items():
            array = getattr(self, field)
            if array is None:
                continue
            if array.dtype != np.float64 or array.shape not in shapes:
                raise ValueError(
                    f"{self._ARRAYS[field]} must be float64 of shape "
                    f"{' or '.join(map(str, sorted(shapes)))}, got {array.dtype} "
                    f"{array.shape}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"{self._ARRAYS[field]} holds NaN or inf")
        if not np.isfinite(prototypes[self.present]).all():
            raise ValueError("prototypes hold NaN or inf")
        if (self.totals < 0).any():
            raise ValueError("prototype_totals must not be negative")
        if (self.precisions is not None) != self.metric.variance_aware:
            raise ValueError(
                f"metric {self.metric.name!r} "
                f"{'needs' if self.metric.variance_aware else 'has no'} precisions"
            )
        if (self.mean is not None) != (self.normalization in CENTRED):
            raise ValueError(
                f"normalization {self.normalization!r} and embedding_mean disagree"
            )
        threshold = self.threshold
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not np.isfinite(threshold)
            or threshold < 0
        ):
            raise ValueError(f"threshold must be a finite distance, got {threshold!r}")
