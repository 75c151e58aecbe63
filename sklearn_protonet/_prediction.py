"""What every prototype classifier does once fitted: scores, labels,
probabilities and embeddings from the distances to its prototypes.

A fitted classifier holds one :class:`Fitted` snapshot (classes, embedder,
support state, sample shape), replaced whole by each ``fit`` or
``partial_fit``. Every prediction reads the snapshot once, so a thread
predicting while another adds classes sees the old state or the new one,
never a mix. The mixin is shared by the few-shot and zero-shot classifiers,
in the spirit of scikit-learn's ``DiscriminantAnalysisPredictionMixin``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError

from ._embedder import Embedder, fill_rows
from ._numerics import decision, logits
from ._support import SupportState

__all__ = ["Fitted", "PrototypePredictionMixin", "fitted_attribute"]


def fitted_attribute(path: str, *, optional: str | None = None) -> property:
    """A fitted attribute read from the snapshot at ``path`` (e.g.
    ``"support.sums"``): AttributeError before ``fit``, and when the value is
    None and ``optional`` says when it exists."""
    first, _, rest = path.partition(".")

    def read(self):
        value = getattr(self._fitted_value(path), first)
        value = getattr(value, rest) if rest else value
        if value is None and optional is not None:
            raise AttributeError(f"This attribute exists {optional}.")
        return value

    return property(read)


@dataclass(frozen=True)
class Fitted:
    """Everything a fitted classifier predicts from.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        The labels of the prototypes, in their order.
    embedder : Embedder
    support : SupportState
    input_shape : tuple of int or None
        The shape of one sample, when known.
    unknown_label : object or None
        The label of the *unknown* column (open-set rejection): a virtual
        prototype at distance ``support.threshold`` from every query.
    fixed_classes : bool
        ``partial_fit``'s ``classes`` fixed ``classes`` on the first call.
    """

    classes: np.ndarray
    embedder: Embedder
    support: SupportState
    input_shape: tuple | None = None
    unknown_label: object = None
    fixed_classes: bool = False

    def to_dict(self) -> dict:
        """The snapshot as plain data: what pickles and skops files hold."""
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        data["embedder"] = self.embedder.to_dict()
        data["support"] = self.support.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Fitted:
        """The snapshot written by :meth:`to_dict`, checked."""
        unknown = sorted(set(data) - {field.name for field in fields(cls)})
        if unknown:
            raise ValueError(f"unknown fitted fields {unknown}")
        data = dict(data)
        data["embedder"] = Embedder.from_dict(data["embedder"])
        data["support"] = SupportState.from_dict(data["support"])
        fitted = cls(**data)
        fitted.check()
        return fitted

    def check(self) -> None:
        """Raise ``ValueError`` when the parts do not fit together."""
        classes, support = np.asarray(self.classes), self.support
        if classes.ndim != 1 or len(classes) != len(support.prototypes):
            raise ValueError(
                f"{len(support.prototypes)} prototypes for classes of shape "
                f"{classes.shape}"
            )
        if len(np.unique(classes)) != len(classes):
            raise ValueError("classes repeat")
        if classes.dtype.kind == "f" and np.isnan(classes).any():
            raise ValueError("classes hold NaN")
        if (support.threshold is None) != (self.unknown_label is None):
            raise ValueError(
                f"threshold {support.threshold!r} does not go with unknown label "
                f"{self.unknown_label!r}"
            )
        if self.embedder.is_identity and self.input_shape is not None:
            width = int(np.prod(self.input_shape))
            if support.prototypes.shape[1] != width:
                raise ValueError(
                    f"identity prototypes of {support.prototypes.shape[1]} features "
                    f"for samples of shape {self.input_shape}"
                )

    @property
    def labels(self) -> np.ndarray:
        """The labels of the output columns (``classes_``): the classes, then
        the unknown label when rejecting."""
        if self.unknown_label is None:
            return self.classes
        return np.append(self.classes, np.asarray([self.unknown_label]))


class PrototypePredictionMixin:
    """Predictions of a classifier whose decision is the nearest prototype.

    The estimator defines ``_check_predict_input(X, fitted)`` and the
    parameters ``temperature``; fitting sets ``self._fitted``.
    """

    def __sklearn_is_fitted__(self) -> bool:
        return "_fitted" in vars(self)

    def __getstate__(self) -> dict:
        # The fitted snapshot as plain data (arrays, names, numbers, the
        # encoder): pickles and skops files hold no private class of ours,
        # and a tampered file is checked when it is read.
        state = dict(super().__getstate__())  # object's is __dict__ itself
        fitted = state.pop("_fitted", None)
        if fitted is not None:
            state["_fitted_data"] = fitted.to_dict()
            state["_fitted_kind"] = type(fitted).__name__
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        data = state.pop("_fitted_data", None)
        kind = state.pop("_fitted_kind", None)
        super().__setstate__(state)
        if data is not None:
            self._fitted = self._fitted_class(kind).from_dict(data)

    def _fitted_class(self, kind) -> type[Fitted]:
        if kind != Fitted.__name__:
            raise ValueError(f"unknown fitted state {kind!r}")
        return Fitted

    def _snapshot(self) -> Fitted:
        fitted = vars(self).get("_fitted")
        if fitted is None:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "'fit' with appropriate arguments before using this estimator."
            )
        return fitted

    def _fitted_value(self, name: str):
        # Fitted attributes read the snapshot; AttributeError before fit, so
        # hasattr(clf, "prototypes_") is False, as for any scikit-learn
        # estimator.
        fitted = vars(self).get("_fitted")
        if fitted is None:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} before fit."
            )
        return fitted

    # -- fitted attributes --------------------------------------------------

    classes_ = fitted_attribute("labels")
    prototypes_ = fitted_attribute("support.prototypes")
    encoder_ = fitted_attribute("embedder.encoder")
    input_shape_ = fitted_attribute("input_shape")

    @property
    def _n_features_out(self) -> int:
        # Columns of transform, named <estimator>0, ... by
        # get_feature_names_out; set_output(transform="pandas") uses them.
        return self._fitted_value("_n_features_out").support.prototypes.shape[1]

    # -- predictions --------------------------------------------------------

    def _per_chunk(
        self, X, reduce: Callable[[torch.Tensor, float, Fitted], torch.Tensor]
    ) -> tuple[np.ndarray, Fitted]:
        """``reduce(d, factor, fitted)`` of each chunk's distances in one array
        (the true distances are ``d * factor``), and the snapshot used."""
        fitted = self._snapshot()
        X = self._check_predict_input(X, fitted)
        support, embedder = fitted.support, fitted.embedder
        with embedder.threads():
            chunks = (
                reduce(*support.distances(rows), fitted).cpu().numpy()
                for rows in embedder.iter_normalized(
                    X, support.prepare, support.uncertain
                )
            )
            return fill_rows(chunks, X.shape[0]), fitted

    @staticmethod
    def _with_unknown(d: torch.Tensor, factor: float, fitted: Fitted):
        """Distances with the unknown column appended when rejecting."""
        if fitted.unknown_label is None:
            return d, factor
        threshold = fitted.support.threshold / factor if factor else 0.0
        return torch.cat([d, d.new_full((len(d), 1), threshold)], 1), factor

    def _over_logits(self, X, function: Callable) -> np.ndarray:
        """``function(logits, 1)`` of each chunk; the logits are stable for
        any temperature > 0 (1e-310 included): see ``_numerics.logits``."""
        return self._per_chunk(
            X,
            lambda d, f, fitted: function(
                logits(*self._with_unknown(d, f, fitted), self.temperature), 1
            ),
        )[0]

    def decision_function(self, X) -> np.ndarray:
        """Negative distances to the prototypes, divided by ``temperature``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score against every class.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            The score of each class, in the order of ``classes_``. With two
            classes, one column as scikit-learn's binary classifiers return
            it: the score of ``classes_[1]`` minus that of ``classes_[0]``.
        """
        # Never NaN: -inf at worst, for any temperature and input (_numerics).
        return self._per_chunk(
            X,
            lambda d, f, fitted: decision(
                *self._with_unknown(d, f, fitted), self.temperature
            ),
        )[0]

    def predict(self, X) -> np.ndarray:
        """The class of the nearest prototype.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to classify.

        Returns
        -------
        ndarray of shape (n_samples,)
            Always the ``classes_`` column that :meth:`predict_proba` and
            :meth:`decision_function` rank first.
        """
        nearest, fitted = self._per_chunk(
            X, lambda d, f, fitted: self._with_unknown(d, f, fitted)[0].argmin(1)
        )
        return fitted.labels[nearest]

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose class log-probabilities to compute.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return self._over_logits(X, torch.log_softmax)

    def predict_proba(self, X) -> np.ndarray:
        """Softmax over negative distances to the prototypes (eq. 2 of the
        paper).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose class probabilities to compute.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        return self._over_logits(X, torch.softmax)

    def score_samples(self, X) -> np.ndarray:
        """Typicality: the negative distance to the nearest prototype.

        Higher is more typical of the known classes, as for scikit-learn's
        outlier detectors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose typicality to measure.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        # d * f: the true distances (f rescales distances beyond float64).
        return -self._per_chunk(X, lambda d, f, fitted: d.min(1).values * f)[0]

    def transform(self, X) -> np.ndarray:
        """Embed samples with the encoder (the classifier as a feature
        extractor).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to embed.

        Returns
        -------
        ndarray of shape (n_samples, embedding_dim)
            Normalised as the prototypes are.
        """
        fitted = self._snapshot()
        X = self._check_predict_input(X, fitted)
        support, embedder = fitted.support, fitted.embedder
        if embedder.keep_sparse and sp.issparse(X):  # sparse in, sparse out
            return support.normalize(X)
        with embedder.threads():
            chunks = embedder.iter_normalized(X, support.normalize)
            return fill_rows((c.cpu().numpy() for c in chunks), X.shape[0])
