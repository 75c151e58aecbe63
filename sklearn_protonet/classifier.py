"""The scikit-learn estimator: prototypes of a small support set, nearest wins."""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    clone,
)
from sklearn.exceptions import NotFittedError
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    check_random_state,
    validate_data,
)
from torch import nn

from . import adaptation, contracts
from ._encoders import (
    DeviceName,
    check_device_available,
    encoder_module,
    has_lazy_parameters,
    iter_embeddings,
    materialize,
    resolve_device,
)
from ._inputs import as_tensor, check_labels, numeric_input
from ._sklearn_contract import check_encoder_input, check_frozen_encoder_params
from ._sparse import (
    SPARSE_METRICS,
    dense_rows,
    iter_dense,
    sparse_distances,
    sparse_embeddings,
    sparse_prototypes,
)
from .covariance import (
    VARIANCE_METRICS,
    ShrunkCovariance,
    class_precisions,
    variance_distances,
)
from .distances import METRICS, class_prototypes, pairwise_distances
from .normalization import NORMALIZATIONS, normalize, support_mean
from .precision import INFERENCE_DTYPES, inference_module

__all__ = ["PrototypicalClassifier"]


def _fill(chunks: Iterator[np.ndarray], n_rows: int) -> np.ndarray:
    """Write row chunks into one preallocated array.

    The peak memory is the output plus one chunk; concatenating a list of
    chunks would hold the output twice (benchmarks/memory.py).
    """
    out, start = None, 0
    for chunk in chunks:
        if out is None:
            out = np.empty((n_rows, *chunk.shape[1:]), dtype=chunk.dtype)
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    return out


def _is_fitted(estimator) -> bool:
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


class PrototypicalClassifier(
    ClassNamePrefixFeaturesOutMixin, ClassifierMixin, TransformerMixin, BaseEstimator
):
    """Few-shot classifier: each class is the mean of its embedded examples.

    ``fit`` embeds a (small) labelled support set and keeps one prototype per
    class, the mean embedding; ``predict`` returns the class of the nearest
    prototype and ``predict_proba`` the softmax over negative distances
    (Snell, Swersky & Zemel, 2017). One example per class is enough.

    Parameters
    ----------
    encoder : None, torch.nn.Module, EpisodicTrainer or transformer, default=None
        How samples are embedded:

        - ``None``: the identity; predictions then equal
          :class:`sklearn.neighbors.NearestCentroid` on the same data.
        - a ``torch.nn.Module``: used as given, frozen (eval mode, no gradient).
        - a *fitted* :class:`~sklearn_protonet.EpisodicTrainer` (or any fitted
          scikit-learn transformer, or one wrapped in
          :class:`sklearn.frozen.FrozenEstimator`): used frozen. ``clone`` keeps
          it as it is, so grid searches and cross-validation never retrain it,
          and ``set_params(encoder__...)`` refuses to change it (see
          :ref:`pipelines`). Its ``n_features_in_`` fixes the input width.
        - an *unfitted* ``EpisodicTrainer`` (or transformer): ``fit`` first
          meta-trains (fits) a clone of it on ``(X, y)``, then computes the
          prototypes. This lets ``GridSearchCV`` tune ``encoder__lr``,
          ``encoder__max_epochs``...
    metric : {"sqeuclidean", "euclidean", "cosine", "mahalanobis", \
"gaussian"}, default="sqeuclidean"
        Distance between embeddings and prototypes; squared Euclidean is the
        paper's choice. The variance-aware ones (:ref:`covariance`):
        ``"mahalanobis"`` weighs differences by each class's covariance,
        estimated from the support set by ``covariance``; ``"gaussian"``
        takes the precisions from a
        :class:`~sklearn_protonet.covariance.GaussianEncoder`'s output
        (precision-weighted prototypes, Fort 2017).
    temperature : float, default=1.0
        ``predict_proba`` is ``softmax(-distance / temperature)``. It changes
        the probabilities' sharpness, never ``predict``.
    covariance : ShrunkCovariance or None, default=None
        How ``metric="mahalanobis"`` estimates the class covariances
        (structure, shrinkage, target); ``None`` uses
        :class:`~sklearn_protonet.covariance.ShrunkCovariance` ``()``. Ignored
        by the other metrics.
    batch_size : int, default=1024
        Rows embedded and compared at a time, which bounds memory for large X.
    device : str, torch.device or None, default=None
        Where embedding runs; ``None`` uses the encoder's own device (CPU for
        the identity).
    normalization : {"l2", "cl2n"} or None, default=None
        Normalise every embedding, of the support set and of the queries
        alike, before prototypes and distances: ``"l2"`` to unit length,
        ``"cl2n"`` after subtracting the support set's mean embedding
        (SimpleShot, Wang et al. 2019). See
        :mod:`sklearn_protonet.normalization`.
    fine_tune_steps : int, default=0
        Adapt a private copy of a module encoder to the support set before
        computing prototypes: its BatchNorm statistics are re-estimated on
        the support set, then its last layers take this many Adam steps on
        pseudo-episodes made of two randomly shifted views of the support set
        (:mod:`sklearn_protonet.adaptation`). 0 uses the encoder frozen, as
        given. Works from one example per class; ``fit`` takes time
        proportional to it.
    fine_tune_lr : float, default=1e-3
        Adam's learning rate for the fine-tuning.
    fine_tune_shift : int, default=2
        Largest random shift, in pixels, of the fine-tuning's augmented views.
    fine_tune_layers : int or None, default=4
        Fine-tune only the last this many layers holding parameters (4: the
        last two blocks of :class:`~sklearn_protonet.modules.Conv4`); None
        fine-tunes all. Fewer layers are faster and overfit less.
    random_state : int, RandomState instance or None, default=None
        Seeds the fine-tuning's augmentations; an int makes ``fit``
        reproducible.
    inference_dtype : {"float32", "bfloat16", "float16", "int8"}, default="float32"
        Numeric precision of a ``torch`` encoder in ``fit`` (prototypes) and
        prediction. ``"int8"`` quantises a copy of the encoder (CPU only),
        calibrated on the support set in ``fit`` (about a second more):
        faster than float32 on x86 CPUs, with predictions that can differ
        from float32's on a few queries (``benchmarks/inference.py``
        measures both).
        ``"bfloat16"`` / ``"float16"`` use ``torch.autocast``: fast on GPUs
        and CPUs with AMX, several times *slower* on CPUs without bfloat16
        instructions (see :mod:`sklearn_protonet.precision`).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    prototypes_ : ndarray of shape (n_classes, embedding_dim)
        The (sample-weighted) mean embedding of each class.
    precisions_ : ndarray of shape (n_classes, embedding_dim) or \
(n_classes, embedding_dim, embedding_dim)
        Each class's precision (diagonal, or full matrix), for the
        variance-aware metrics only.
    shrinkage_ : ndarray of shape (n_classes,)
        The covariance shrinkage used for each class (``"mahalanobis"`` only).
    encoder_ : None, torch.nn.Module or estimator
        The encoder actually used (the meta-trained clone when ``encoder`` was
        an unfitted trainer, the adapted copy's module with
        ``fine_tune_steps``).
    embedding_mean_ : ndarray of shape (embedding_dim,) or None
        The support set's mean embedding with ``normalization="cl2n"``.
    inference_module_ : torch.nn.Module or None
        The module that embeds in ``inference_dtype`` (an autocast wrapper or
        an int8 copy of the encoder's module); None for float32, where the
        encoder's own module embeds.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame with string column names.

    See Also
    --------
    sklearn_protonet.EpisodicTrainer : meta-trains an encoder.
    sklearn.neighbors.NearestCentroid : the same rule on raw features.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_protonet import PrototypicalClassifier
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    >>> clf = PrototypicalClassifier().fit(X, ["a", "a", "b"])
    >>> clf.predict([[4.0, 4.0], [0.0, 0.4]])
    array(['b', 'a'], dtype='<U1')
    >>> clf.predict_proba([[0.0, 0.5]]).round(3)
    array([[1., 0.]])
    """

    _parameter_constraints: dict = {
        "encoder": "no_validation",
        "metric": [StrOptions(set(METRICS) | set(VARIANCE_METRICS))],
        "covariance": [None, ShrunkCovariance],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [None, DeviceName(), torch.device],
        "normalization": [None, StrOptions(set(NORMALIZATIONS))],
        "fine_tune_steps": [Interval(Integral, 0, 10_000, closed="both")],
        "fine_tune_lr": [Interval(Real, 0, None, closed="neither")],
        "fine_tune_shift": [Interval(Integral, 0, None, closed="left")],
        "fine_tune_layers": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "inference_dtype": [StrOptions(set(INFERENCE_DTYPES))],
    }

    def __init__(
        self,
        encoder=None,
        *,
        metric: str = "sqeuclidean",
        temperature: float = 1.0,
        covariance: ShrunkCovariance | None = None,
        batch_size: int = 1024,
        device: str | torch.device | None = None,
        normalization: str | None = None,
        fine_tune_steps: int = 0,
        fine_tune_lr: float = 1e-3,
        fine_tune_shift: int = 2,
        fine_tune_layers: int | None = 4,
        random_state=None,
        inference_dtype: str = "float32",
    ) -> None:
        self.encoder = encoder
        self.metric = metric
        self.temperature = temperature
        self.covariance = covariance
        self.batch_size = batch_size
        self.device = device
        self.normalization = normalization
        self.fine_tune_steps = fine_tune_steps
        self.fine_tune_lr = fine_tune_lr
        self.fine_tune_shift = fine_tune_shift
        self.fine_tune_layers = fine_tune_layers
        self.random_state = random_state
        self.inference_dtype = inference_dtype

    def __sklearn_clone__(self):
        # A fitted encoder is a frozen, expensive artefact: the clone shares
        # it instead of getting a blank, untrained copy (which the next fit
        # would retrain on the tiny support set).
        new = super().__sklearn_clone__()
        if self.encoder is not None and not isinstance(self.encoder, nn.Module):
            if _is_fitted(self.encoder):
                new.encoder = self.encoder
        return new

    def set_params(self, **params):
        """Set parameters; those of a fitted encoder (``encoder__*``) are
        refused: a fitted encoder is frozen (see :ref:`pipelines`)."""
        check_frozen_encoder_params(self, params)
        return super().set_params(**params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR/CSC/COO rows (see _sparse)
        # Also a transformer (``transform`` embeds). Modules compute in
        # float32; only the identity keeps float64.
        tags.transformer_tags = TransformerTags(
            preserves_dtype=["float64"] if self.encoder is None else []
        )
        return tags

    # -- encoder handling -----------------------------------------------------

    def _fit_encoder(self, X, y):
        encoder = self.encoder
        if encoder is None or isinstance(encoder, nn.Module):
            if encoder is not None and has_lazy_parameters(encoder):
                # A lazy module takes its shape here; work on a copy so the
                # user's module (a parameter) is left untouched.
                encoder = clone(encoder, safe=False)
                materialize(encoder, as_tensor(X), seed=0)
            return encoder
        if not hasattr(encoder, "transform"):
            raise TypeError(
                "encoder must be None, a torch.nn.Module, an EpisodicTrainer or "
                f"a scikit-learn transformer, got {type(encoder).__name__}."
            )
        if _is_fitted(encoder):
            return encoder
        return clone(encoder).fit(X, y)

    def _adapt_encoder(self, X: np.ndarray, codes: np.ndarray):
        """The adapted copy of the encoder's module (fine_tune_steps > 0)."""
        module = encoder_module(self.encoder_)
        if module is None:
            raise ValueError(
                f"fine_tune_steps={self.fine_tune_steps} needs a torch module "
                f"encoder to fine-tune, got {type(self.encoder_).__name__}; use "
                "fine_tune_steps=0."
            )
        shape = getattr(contracts.get_input_contract(module), "shape", None)
        if X.ndim == 4 or (X.ndim == 3 and shape is None):
            shape = (X.shape[1], *X.shape[2:]) if X.ndim == 4 else (1, *X.shape[1:])
        if shape is None:
            raise ValueError(
                "fine_tune_steps > 0 augments the support images by shifting them, "
                f"but samples of shape {X.shape[1:]} are not images and the "
                "encoder states no input shape. Pass X as (n, channels, height, "
                "width) images."
            )
        device = resolve_device(module, self.device)
        seed = check_random_state(self.random_state).randint(2**31 - 1)
        return adaptation.adapt_encoder(
            module,
            as_tensor(X).reshape(len(X), *shape).to(device),
            as_tensor(codes.astype(np.int64)).to(device),
            steps=self.fine_tune_steps,
            lr=self.fine_tune_lr,
            max_shift=self.fine_tune_shift,
            n_layers=self.fine_tune_layers,
            metric=self.metric,
            seed=int(seed),
        )

    def _inference_module(self, X: np.ndarray) -> nn.Module | None:
        """The encoder's module in ``inference_dtype`` (int8: calibrated on X)."""
        module = encoder_module(self.encoder_)
        if module is None:
            if self.inference_dtype != "float32":
                raise ValueError(
                    f"inference_dtype={self.inference_dtype!r} applies to torch "
                    "encoders only, but the encoder is "
                    f"{type(self.encoder_).__name__}; use inference_dtype='float32'."
                )
            return None
        if self.inference_dtype == "float32":
            return None  # the encoder's own module embeds
        calibration = as_tensor(X) if self.inference_dtype == "int8" else None
        return inference_module(
            module, self.inference_dtype, calibration, self.batch_size
        )

    def _iter_embeddings(self, X: np.ndarray) -> Iterator[torch.Tensor]:
        """Embeddings of X in chunks of ``batch_size`` rows."""
        if sp.issparse(X):  # dense blocks of batch_size rows: bounded memory
            dtype = np.float64 if self.encoder_ is None else np.float32
            for block in iter_dense(X, self.batch_size, dtype):
                yield from self._iter_embeddings(block)
            return
        own = encoder_module(self.encoder_)
        device = resolve_device(own, self.device)
        # None: float32, or a classifier pickled before inference_dtype.
        module = getattr(self, "inference_module_", None)
        module = own if module is None else module
        if module is not None:
            yield from iter_embeddings(module, as_tensor(X), self.batch_size, device)
            return
        for start in range(0, len(X), self.batch_size):
            chunk = X[start : start + self.batch_size]
            if self.encoder_ is None:
                yield as_tensor(chunk.reshape(len(chunk), -1)).to(device)
            else:
                embedded = np.asarray(self.encoder_.transform(chunk))
                yield as_tensor(embedded).to(device)

    def _check_input(self, X, *, reset: bool, y=None):
        # Modules compute in float32; the identity keeps float64 so it agrees
        # with NearestCentroid to the last digit.
        dtype = np.float64 if self.encoder is None else np.float32
        kwargs = dict(dtype=dtype, allow_nd=True, reset=reset, accept_sparse="csr")
        with numeric_input("X"):
            if y is None:
                return validate_data(self, X, **kwargs)
            return validate_data(self, X, y, **kwargs)

    # -- estimator API --------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Embed the support set and store one prototype per class.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (n_samples, n_features)
            The support set (flattened images or table rows; N-D arrays when
            the encoder takes them; sparse rows, e.g. TF-IDF, are never
            densified by the identity encoder).
        y : array-like of shape (n_samples,)
            Class labels, ints or strings. One example per class is enough.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights in each class's mean. An unfitted trainer encoder is
            meta-trained without them.

        Returns
        -------
        self : PrototypicalClassifier
        """
        self._validate_params()
        if y is None:
            raise ValueError(
                "PrototypicalClassifier requires y to be passed, but the target y "
                "is None: give the class label of each support example."
            )
        check_device_available(self.device, type(self).__name__)
        y = check_labels(y, type(self).__name__)
        X, y = self._check_input(X, reset=True, y=y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "PrototypicalClassifier needs at least 2 classes in y to "
                f"separate, got 1 class ({self.classes_[0]!r}). Add support "
                "examples of other classes."
            )
        try:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        except ValueError as error:
            raise ValueError(
                f"Invalid sample_weight: {error} Pass one weight per row of X, "
                f"shape ({len(X)},), or None."
            ) from error
        if (weights < 0).any():
            raise ValueError(
                f"sample_weight must be non-negative, got {weights.min()}; use 0 "
                "to ignore a sample."
            )
        class_weight = np.bincount(codes, weights=weights, minlength=len(self.classes_))
        if (class_weight <= 0).any():
            empty = self.classes_[class_weight <= 0].tolist()
            raise ValueError(
                f"sample_weight sums to zero for classes {empty}: their prototypes "
                "are undefined. Give each class a positive weight."
            )
        self.input_shape_ = X.shape[1:]
        check_encoder_input(
            self.encoder,
            X.shape[1:],
            getattr(self, "feature_names_in_", None),
            type(self).__name__,
        )
        if sp.issparse(X):
            if self._sparse_identity(X, self.encoder):
                weights = None if sample_weight is None else weights
                return self._fit_sparse_identity(X, codes, weights)
            X = dense_rows(X)  # a support set is small: modules take it dense
        self.encoder_ = self._fit_encoder(X, y)
        # Stated contracts only: a module's own shape check says more (Conv4).
        contract = contracts.get_input_contract(self.encoder_, infer_shape=False)
        if contract is not None:
            contracts.check_sample_shape(X.shape[1:], contract)
            contracts.warn_on_violations(X, contract)
        if self.fine_tune_steps > 0:
            self.encoder_ = self._adapt_encoder(X, codes)
        self.inference_module_ = self._inference_module(X)
        # Prototypes are averaged in float64 so weights and repeats agree exactly.
        if self.encoder_ is None:  # the rows are the embeddings: no copy
            device = resolve_device(None, self.device)
            embeddings = as_tensor(X.reshape(len(X), -1)).to(device)
        else:
            embeddings = torch.cat(list(self._iter_embeddings(X))).double()
        device = embeddings.device
        weights = None if sample_weight is None else as_tensor(weights).to(device)
        mean = support_mean(self.normalization, embeddings, weights)
        self.embedding_mean_ = None if mean is None else mean.cpu().numpy()
        args = (
            normalize(self.normalization, embeddings, mean),
            as_tensor(codes.astype(np.int64)).to(device),
            len(self.classes_),
            weights,
        )
        if self.metric in VARIANCE_METRICS:
            prototypes, precisions, shrinkage = class_precisions(
                self.metric, *args, covariance=self.covariance
            )
            self.precisions_ = precisions.cpu().numpy()
            if shrinkage is not None:
                self.shrinkage_ = shrinkage.cpu().numpy()
        else:
            prototypes = class_prototypes(*args)
        self.prototypes_ = prototypes.cpu().numpy()
        return self

    # -- sparse input (see _sparse) ------------------------------------------

    def _sparse_identity(self, X, encoder) -> bool:
        """Whether sparse ``X`` takes the exact sparse path (never densified)."""
        return sp.issparse(X) and encoder is None and self.metric in SPARSE_METRICS

    def _fit_sparse_identity(self, X, codes, weights):
        self.encoder_ = None
        self.inference_module_ = self._inference_module(X)  # checks the dtype
        self.prototypes_, self.embedding_mean_ = sparse_prototypes(
            X, codes, len(self.classes_), weights, self.normalization
        )
        return self

    def _iter_normalized(self, X: np.ndarray) -> Iterator[torch.Tensor]:
        """Embeddings of validated ``X``, normalised as the support set was."""
        mean = None if self.embedding_mean_ is None else as_tensor(self.embedding_mean_)
        for embeddings in self._iter_embeddings(X):
            yield normalize(self.normalization, embeddings, mean)

    def _check_predict_input(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = self._check_input(X, reset=False)
        if X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but PrototypicalClassifier "
                f"was fitted on samples of shape {self.input_shape_}."
            )
        return X

    def _iter_distances(self, X: np.ndarray) -> Iterator[torch.Tensor]:
        """Distances of validated ``X`` to the prototypes, chunk by chunk."""
        if self._sparse_identity(X, self.encoder_):
            for start in range(0, X.shape[0], self.batch_size):
                yield sparse_distances(
                    X[start : start + self.batch_size],
                    self.prototypes_,
                    self.embedding_mean_,
                    self.normalization,
                    self.metric,
                )
            return
        prototypes = None
        for embeddings in self._iter_normalized(X):
            if prototypes is None:
                prototypes = as_tensor(self.prototypes_).to(embeddings.device)
            if self.metric in VARIANCE_METRICS:
                precisions = as_tensor(self.precisions_).to(embeddings.device)
                yield variance_distances(
                    self.metric, embeddings.double(), prototypes, precisions
                )
            else:
                yield pairwise_distances(embeddings.double(), prototypes, self.metric)

    def _per_chunk(self, X, reduce) -> np.ndarray:
        """``reduce`` applied to each chunk's distances, in one array."""
        X = self._check_predict_input(X)
        chunks = (reduce(d).cpu().numpy() for d in self._iter_distances(X))
        return _fill(chunks, X.shape[0])

    def decision_function(self, X) -> np.ndarray:
        """Negative distances to the prototypes, divided by ``temperature``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            The score of each class, in the order of ``classes_``. With two
            classes, one column as scikit-learn's binary classifiers return
            it: the score of ``classes_[1]`` minus that of ``classes_[0]``.
        """
        scores = self._per_chunk(X, lambda d: -d / self.temperature)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict(self, X) -> np.ndarray:
        """The class of the nearest prototype.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        # Chunks first: they check fitting (NotFittedError, not AttributeError).
        nearest = self._per_chunk(X, lambda d: d.argmin(1))
        return self.classes_[nearest]

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return self._per_chunk(X, lambda d: torch.log_softmax(-d / self.temperature, 1))

    def predict_proba(self, X) -> np.ndarray:
        """Softmax over negative distances to the prototypes (eq. 2).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        return self._per_chunk(X, lambda d: torch.softmax(-d / self.temperature, 1))

    @property
    def _n_features_out(self) -> int:
        # Columns of transform, named prototypicalclassifier0, ... by
        # get_feature_names_out; set_output(transform="pandas") uses them.
        return self.prototypes_.shape[1]

    def fit_transform(self, X, y, sample_weight=None) -> np.ndarray:
        """``fit(X, y)``, then the embeddings of ``X``."""
        return self.fit(X, y, sample_weight).transform(X)

    def transform(self, X) -> np.ndarray:
        """Embed samples with the encoder (the classifier as a feature extractor).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, embedding_dim)
            Normalised as set by ``normalization``.
        """
        X = self._check_predict_input(X)
        if self._sparse_identity(X, self.encoder_):  # sparse in, sparse out
            return sparse_embeddings(X, self.embedding_mean_, self.normalization)
        return _fill((e.cpu().numpy() for e in self._iter_normalized(X)), X.shape[0])
