"""The zero-shot classifier: prototypes from class metadata (and a few examples)."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    column_or_1d,
)
from torch import nn

from .._embedder import Embedder
from .._encoders import DeviceName, encoder_module
from .._geometry import DEFAULT_METRIC, get_metric, metric_names
from .._inputs import as_samples, check_labels, numeric_input
from .._prediction import Fitted, PrototypePredictionMixin
from .._sklearn_contract import first_layer_width
from .._support import SupportState
from ._metadata import check_metadata
from ._pair import embed_metadata
from ._trainer import ZeroShotTrainer

__all__ = ["ZeroShotPrototypicalClassifier"]

_UNFITTED = (
    "This ZeroShotTrainer is not fitted yet: meta-train it first with "
    "trainer.fit(X, y, metadata=...), then pass it as the encoder."
)


@dataclass(frozen=True)
class _ZeroShotFitted(Fitted):
    """The fitted state, with the metadata's own points."""

    metadata_prototypes: np.ndarray | None = None


class ZeroShotPrototypicalClassifier(
    PrototypePredictionMixin,
    ClassNamePrefixFeaturesOutMixin,
    ClassifierMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Classifies samples of classes known only by their metadata.

    ``fit`` takes class metadata (a DataFrame indexed by class label: one row
    of attributes per class) and maps it into the embedding space: those
    points are the prototypes. ``predict`` embeds samples and returns the
    class of the nearest prototype, as
    :class:`~sklearn_protonet.PrototypicalClassifier` does, so the classes
    need no example at all. Given a few examples too (``X_support``,
    ``y_support``), each prototype blends the metadata's point with the
    examples' mean.

    ``fit`` takes one row per *class*, not samples: cross-validating it on the
    metadata table would split classes, not samples. Evaluate it on held-out
    samples of classes it was fitted on, e.g. with
    :func:`~sklearn_protonet.model_selection.episodic_score` or a loop over
    class splits.

    Parameters
    ----------
    encoder : None, ZeroShotEncoders or fitted ZeroShotTrainer, default=None
        The pair of encoders: a :class:`ZeroShotEncoders` module (frozen), or a
        fitted :class:`ZeroShotTrainer` (possibly in a ``FrozenEstimator``).
        ``None`` is the identity for both, for metadata that already lives in
        the samples' space (then ``fit(X, y)`` is
        :class:`sklearn.neighbors.NearestCentroid`).
    metric : {"sqeuclidean", "euclidean", "cosine"}, default="sqeuclidean"
    temperature : float, default=1.0
        ``predict_proba`` is ``softmax(-distance / temperature)``.
    metadata_weight : float, default=1.0
        With support examples, a prototype is ``(metadata_weight * m_c +
        sum of example embeddings) / (metadata_weight + n_c)``: the metadata
        counts as that many examples. Ignored without examples.
    batch_size : int, default=1024
        Rows embedded at a time.
    device : str, torch.device or None, default=None
        Where embedding runs; ``None`` follows the encoder.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The classes of the metadata (and of the support examples).
    prototypes_ : ndarray of shape (n_classes, embedding_dim)
    metadata_prototypes_ : ndarray of shape (n_classes, embedding_dim)
        The metadata's points alone.
    encoder_ : None, torch.nn.Module or estimator
        The encoder used.
    n_features_in_ : int
        Number of features of the samples that ``predict`` takes, when known:
        the metadata's with the identity encoder (one space), the support
        examples', or the encoder's first layer's.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of those samples, when they were a DataFrame with string
        column names.
    input_shape_ : tuple or None
        Shape of one sample, when known (identity encoder, support examples).

    See Also
    --------
    ZeroShotTrainer : meta-trains the pair of encoders.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_protonet.zero_shot import ZeroShotPrototypicalClassifier
    >>> metadata = pd.DataFrame({"x": [0.0, 5.0], "y": [0.0, 5.0]}, index=["a", "b"])
    >>> clf = ZeroShotPrototypicalClassifier().fit(metadata)
    >>> clf.predict(pd.DataFrame({"x": [4.0, 1.0], "y": [4.5, 0.0]}))
    array(['b', 'a'], dtype=object)
    """

    _parameter_constraints: dict = {
        "encoder": "no_validation",
        "metric": [StrOptions(set(metric_names(variance_aware=False)))],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "metadata_weight": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [None, DeviceName(), torch.device],
    }

    def __init__(
        self,
        encoder=None,
        *,
        metric: str = DEFAULT_METRIC,
        temperature: float = 1.0,
        metadata_weight: float = 1.0,
        batch_size: int = 1024,
        device: str | torch.device | None = None,
    ) -> None:
        self.encoder = encoder
        self.metric = metric
        self.temperature = temperature
        self.metadata_weight = metadata_weight
        self.batch_size = batch_size
        self.device = device

    # Defined here, not only in the mixin: scikit-learn's set_output wraps
    # the transform that the estimator's own class defines.
    transform = PrototypePredictionMixin.transform

    def _fitted_class(self, kind) -> type[Fitted]:
        if kind != _ZeroShotFitted.__name__:
            raise ValueError(f"unknown fitted state {kind!r}")
        return _ZeroShotFitted

    @property
    def metadata_prototypes_(self) -> np.ndarray:
        return self._fitted_value("metadata_prototypes_").metadata_prototypes

    def fit(self, X, y=None, *, X_support=None, y_support=None):
        """Compute one prototype per class from its metadata (and examples).

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_rows, n_attributes)
            Class metadata: a DataFrame indexed by class label, or an array
            with the labels in ``y``. Rows of one class are averaged.
        y : array-like of shape (n_rows,), default=None
            The class of each metadata row; ``None`` takes a DataFrame's index.
        X_support : array-like of shape (n_samples, ...), default=None
            Optional examples of some classes, blended into their prototypes.
        y_support : array-like of shape (n_samples,), default=None
            Their labels; each must be a class of the metadata.

        Returns
        -------
        self : ZeroShotPrototypicalClassifier
        """
        vars(self).pop("_fitted", None)
        self._validate_params()
        values, labels, _ = check_metadata(X, y, name="X (the metadata)")
        # One row per class: many classes for the rows, by design.
        labels = check_labels(labels, type(self).__name__)
        classes, codes = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "ZeroShotPrototypicalClassifier needs metadata for at least 2 "
                f"classes, got 1 class ({classes[0]!r}). Add rows for the "
                "other classes."
            )
        encoder = self._checked_encoder()
        module = encoder_module(encoder)
        embedder = Embedder(
            encoder,
            batch_size=self.batch_size,
            device=self.device,
            inference_dtype="float32",
        )
        input_shape = None
        if module is None:
            # Metadata and samples share one space: the samples' width is the
            # metadata's (and so are the column names).
            embedded = torch.as_tensor(values, dtype=torch.float64)
            input_shape = values.shape[1:]
            self._record_features(X, reset=True)
        else:
            embedded = embed_metadata(module, values, embedder.device)
            self._forget_features()
            width = first_layer_width(module)
            if width is not None:
                self.n_features_in_ = width[0]
        codes_t = torch.as_tensor(codes)
        k = len(classes)
        sums = embedded.new_zeros(k, embedded.shape[1]).index_add_(0, codes_t, embedded)
        counts = torch.bincount(codes_t, minlength=k).double()
        metadata = (sums / counts[:, None]).numpy()
        weights = np.full(len(classes), float(self.metadata_weight))
        support = SupportState.from_prototypes(
            metadata.copy(), weights, get_metric(self.metric)
        )
        if X_support is not None or y_support is not None:
            support, input_shape = self._blend(
                support, classes, embedder, X_support, y_support, input_shape
            )
        self._fitted = _ZeroShotFitted(
            classes, embedder, support, input_shape, metadata_prototypes=metadata
        )
        return self

    def _checked_encoder(self):
        encoder = self.encoder
        if encoder is None:
            return None
        module = encoder.estimator if isinstance(encoder, FrozenEstimator) else encoder
        if isinstance(module, ZeroShotTrainer):
            check_is_fitted(module, msg=_UNFITTED)
            return encoder
        if isinstance(module, nn.Module) and hasattr(module, "embed_metadata"):
            return encoder
        raise TypeError(
            "encoder must be None, a ZeroShotEncoders module or a fitted "
            f"ZeroShotTrainer, got {type(encoder).__name__}."
        )

    def _record_features(self, X, *, reset: bool) -> None:
        _check_n_features(self, X, reset=reset)
        _check_feature_names(self, X, reset=reset)

    def _forget_features(self) -> None:
        for name in ("n_features_in_", "feature_names_in_"):
            vars(self).pop(name, None)

    def _blend(self, support, classes, embedder, X_support, y_support, input_shape):
        """Support examples added to the metadata's prototypes."""
        if X_support is None or y_support is None:
            raise ValueError("Pass both X_support and y_support, or neither.")
        if input_shape is None:  # the support examples tell the samples' width
            self._record_features(X_support, reset=True)
        X_support = self._samples(X_support, "X_support")
        y_support = column_or_1d(np.asarray(y_support), warn=True)
        if len(y_support) != len(X_support):
            raise ValueError(
                f"X_support has {len(X_support)} rows but y_support has "
                f"{len(y_support)}; they must match."
            )
        unknown = np.setdiff1d(y_support, classes).tolist()
        if unknown:
            raise ValueError(
                f"classes {unknown[:10]} in y_support have no metadata row; add a "
                "row for each of them to the metadata (indexed by class label)."
            )
        if input_shape is not None and X_support.shape[1:] != input_shape:
            raise ValueError(
                f"X_support has samples of shape {X_support.shape[1:]}, but the "
                f"identity encoder needs the metadata's shape {input_shape}."
            )
        embeddings, _ = embedder.support(X_support)
        codes = np.searchsorted(classes, y_support)
        support = support.add(
            embeddings.cpu(), codes, len(classes), np.arange(len(classes))
        )
        return support, X_support.shape[1:]

    def _samples(self, X, name: str) -> np.ndarray:
        with numeric_input(name):
            dtype = np.float64 if self.encoder is None else np.float32
            return check_array(
                as_samples(X), dtype=dtype, allow_nd=True, input_name=name
            )

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """``fit(X, y)``, then :meth:`transform` of ``X`` (identity encoder:
        metadata and samples share one space)."""
        return self.fit(X, y, **fit_params).transform(X)

    def _check_predict_input(self, X, fitted: Fitted) -> np.ndarray:
        checked = self._samples(X, "X")
        if checked.ndim == 2 and hasattr(self, "n_features_in_"):
            self._record_features(X, reset=False)  # scikit-learn's messages
        if fitted.input_shape is not None and checked.shape[1:] != fitted.input_shape:
            raise ValueError(
                f"X has samples of shape {checked.shape[1:]}, but "
                f"{type(self).__name__} was fitted for samples of shape "
                f"{fitted.input_shape}."
            )
        return checked
