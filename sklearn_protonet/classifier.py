"""The scikit-learn estimator: prototypes of a small support set, nearest wins."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
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
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
from torch import nn

from . import adaptation, contracts, open_set, prototypes
from ._encoders import (
    DeviceName,
    check_device_available,
    encoder_module,
    has_lazy_parameters,
    iter_embeddings,
    materialize,
    one_thread,
    resolve_device,
)
from ._inputs import as_tensor, check_labels, numeric_input
from ._numerics import (
    check_finite_embeddings,
    decision,
    logits,
    scaled_distances,
    stable_prototypes,
)
from ._rng import draw_seed
from ._sklearn_contract import (
    check_encoder_input,
    check_frozen_encoder_params,
    is_fitted,
)
from ._sparse import (
    SPARSE_METRICS,
    dense_rows,
    iter_dense,
    sparse_distances,
    sparse_embeddings,
    sparse_prototypes,
)
from .adaptation import AUGMENTATIONS
from .covariance import (
    VARIANCE_METRICS,
    ShrunkCovariance,
    class_precisions,
    variance_distances,
)
from .distances import METRICS, class_prototypes
from .normalization import NORMALIZATIONS, normalize, support_mean
from .precision import (
    INFERENCE_DTYPES,
    inference_module,
    relative_error,
    uncertain_rows,
)

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
          ``encoder__max_epochs``... If that meta-training is interrupted
          (Ctrl-C, ``KeyboardInterrupt``), ``fit`` re-raises it and the
          classifier is left unfitted, whereas a bare trainer's ``fit``
          keeps skorch's behaviour (it returns the net trained so far, with
          ``interrupted_=True``); ``EarlyStopping`` is not an interruption.
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
    fine_tune_augmentation : {"shift", "affine"}, default="shift"
        How the fine-tuning's views of an image differ: random shifts only,
        or random rotations (up to 15 degrees) and scalings (up to 15 %) as
        well (:class:`~sklearn_protonet.modules.RandomAffine`).
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
        faster than float32 on x86 CPUs. Prototypes come from float32
        embeddings, and the queries whose decision the int8 error could
        change are embedded again in float32, so predictions agree with
        float32's (``benchmarks/inference.py`` measures agreement and
        speed; the recheck covers the ``"sqeuclidean"``, ``"euclidean"``
        and ``"cosine"`` metrics).
        ``"bfloat16"`` / ``"float16"`` use ``torch.autocast``: fast on GPUs
        and on CPUs with bfloat16 instructions (AMX; AVX-512 BF16 on recent
        AMD CPUs), several times *slower* on CPUs without them (see
        :mod:`sklearn_protonet.precision` and the performance page).
    refinement_steps : int, default=0
        Semi-supervised prototypes (:ref:`semi_supervised`): with a positive
        value, rows of ``y`` marked ``-1`` (``"-1"`` for string labels, as
        :mod:`sklearn.semi_supervised` marks them) are *unlabeled*: they
        refine the labeled prototypes by this many soft k-means steps (Ren et
        al. 2018) and belong to no class. 0 (the default) uses no unlabeled
        rows: ``-1`` is then an ordinary label, today's behaviour.
    refinement : {"masked", "soft_kmeans"}, default="masked"
        The refinement: plain soft k-means, where every unlabeled row joins
        the prototypes; or its masked variant, where a row about as far from
        its nearest prototype as from the second nearest (a *distractor* of a
        class outside the support set) counts little
        (:func:`sklearn_protonet.prototypes.soft_kmeans`).
    unknown_label : int, float, str or None, default=None
        Open-set rejection (:ref:`open_set`): ``predict`` returns this label
        for queries farther from every prototype than ``threshold_``,
        calibrated at ``fit`` from the support set alone (the
        ``rejection_quantile`` of its leave-one-out distances; needs two
        examples of some class). ``None`` never rejects. ``predict_proba``
        and ``decision_function`` ignore it.
    rejection_quantile : float, default=0.99
        The quantile of the support set's leave-one-out distances taken as
        ``threshold_``: the share of known-class examples to accept. With a
        few examples per class the sample quantile underestimates the
        distances' tail, so the known queries actually accepted fall a little
        short of it (0.99 was chosen on Omniglot's validation classes;
        ``benchmarks/open_set.py`` measures the rates on its test classes).

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
        The support set's mean embedding with ``normalization="cl2n"`` (with
        :meth:`partial_fit`, the first call's, then kept fixed).
    prototype_sums_ : ndarray of shape (n_classes, embedding_dim)
        Each class's sum of (weighted) embeddings, plus the unlabeled rows'
        soft shares: ``prototypes_ = prototype_sums_ / prototype_totals_``.
        :meth:`partial_fit` adds to it.
    prototype_totals_ : ndarray of shape (n_classes,) or \
(n_classes, embedding_dim)
        Each class's summed weight (per dimension: the summed precisions for
        ``metric="gaussian"``).
    threshold_ : float or None
        The largest distance to the nearest prototype accepted when
        ``unknown_label`` is set; None otherwise.
    inference_module_ : torch.nn.Module or None
        The module that embeds in ``inference_dtype`` (an autocast wrapper or
        an int8 copy of the encoder's module); None for float32, where the
        encoder's own module embeds.
    int8_error_ : float or None
        With ``inference_dtype="int8"``: the largest relative error of the
        int8 embeddings of the support set against float32's. Queries whose
        two nearest prototypes are closer than that error (scaled to the
        query) are embedded again in float32, so predictions agree with
        float32's (:func:`sklearn_protonet.precision.uncertain_rows`). None
        otherwise.
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
        "fine_tune_augmentation": [StrOptions(set(AUGMENTATIONS))],
        "fine_tune_layers": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "inference_dtype": [StrOptions(set(INFERENCE_DTYPES))],
        # -- issue 14: semi-supervised prototypes and open-set rejection --
        "refinement_steps": [Interval(Integral, 0, 1_000, closed="both")],
        "refinement": [StrOptions(set(prototypes.REFINEMENTS))],
        "unknown_label": [None, str, Real],
        "rejection_quantile": [Interval(Real, 0, 1, closed="both")],
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
        fine_tune_augmentation: str = "shift",
        fine_tune_layers: int | None = 4,
        random_state=None,
        inference_dtype: str = "float32",
        refinement_steps: int = 0,
        refinement: str = "masked",
        unknown_label=None,
        rejection_quantile: float = 0.99,
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
        self.fine_tune_augmentation = fine_tune_augmentation
        self.fine_tune_layers = fine_tune_layers
        self.random_state = random_state
        self.inference_dtype = inference_dtype
        self.refinement_steps = refinement_steps
        self.refinement = refinement
        self.unknown_label = unknown_label
        self.rejection_quantile = rejection_quantile

    def __sklearn_clone__(self):
        # A fitted encoder is a frozen, expensive artefact: the clone shares
        # it instead of getting a blank, untrained copy (which the next fit
        # would retrain on the tiny support set).
        new = super().__sklearn_clone__()
        if self.encoder is not None and not isinstance(self.encoder, nn.Module):
            if is_fitted(self.encoder):
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
        if is_fitted(encoder):
            return encoder
        fitted = clone(encoder).fit(X, y)
        if getattr(fitted, "interrupted_", False) is True:
            self._refuse_interrupted(fitted)
        return fitted

    def _refuse_interrupted(self, trainer) -> None:
        """skorch swallows Ctrl-C and returns a partly trained net; a
        classifier on it would look fitted. Forget this fit and re-raise."""
        for name in [
            k for k in vars(self) if k.endswith("_") and not k.startswith("_")
        ]:
            delattr(self, name)
        epochs = len(getattr(trainer, "history_", []))
        raise KeyboardInterrupt(
            f"The encoder's meta-training was interrupted at epoch {epochs} of "
            f"{trainer.max_epochs}, so the classifier is not fitted. To use a "
            "partly trained encoder, fit the trainer yourself (trainer.fit(X, y) "
            "keeps skorch's behaviour: it returns the net trained so far) and "
            "pass the fitted trainer as the encoder."
        )

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
        seed = draw_seed(self.random_state)  # NumPy's global state untouched
        return adaptation.adapt_encoder(
            module,
            as_tensor(X).reshape(len(X), *shape).to(device),
            as_tensor(codes.astype(np.int64)).to(device),
            steps=self.fine_tune_steps,
            lr=self.fine_tune_lr,
            max_shift=self.fine_tune_shift,
            augmentation=self.fine_tune_augmentation,
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

    def _iter_embeddings(
        self, X: np.ndarray, float32: bool = False
    ) -> Iterator[torch.Tensor]:
        """Embeddings of X in chunks of ``batch_size`` rows, checked finite;
        with ``float32``, by the encoder's own module whatever
        ``inference_dtype`` is."""
        start = 0
        for chunk in self._embed_chunks(X, float32):
            if self.encoder_ is not None:  # the identity's rows were validated
                check_finite_embeddings(chunk, start, "X")
            start += len(chunk)
            yield chunk

    def _embed_chunks(
        self, X: np.ndarray, float32: bool = False
    ) -> Iterator[torch.Tensor]:
        if sp.issparse(X):  # dense blocks of batch_size rows: bounded memory
            dtype = np.float64 if self.encoder_ is None else np.float32
            for block in iter_dense(X, self.batch_size, dtype):
                yield from self._embed_chunks(block, float32)
            return
        own = encoder_module(self.encoder_)
        device = resolve_device(own, self.device)
        # None: float32, or a classifier pickled before inference_dtype.
        module = None if float32 else getattr(self, "inference_module_", None)
        module = own if module is None else module
        if module is not None:
            yield from iter_embeddings(module, as_tensor(X), self.batch_size, device)
            return
        for start in range(0, len(X), self.batch_size):
            chunk = X[start : start + self.batch_size]
            if self.encoder_ is None:
                # float64 chunk by chunk: X itself is never copied whole.
                yield as_tensor(chunk.reshape(len(chunk), -1)).to(device, torch.float64)
            else:
                embedded = np.asarray(self.encoder_.transform(chunk))
                yield as_tensor(embedded).to(device)

    def _check_input(self, X, *, reset: bool, y=None):
        # Modules compute in float32; the identity computes in float64 so it
        # agrees with NearestCentroid to the last digit, converting float32
        # chunk by chunk (no float64 copy of all of X).
        dtype = (np.float64, np.float32) if self.encoder is None else np.float32
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
            With ``refinement_steps > 0``, ``-1`` (``"-1"``) marks unlabeled
            rows.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights in each class's mean (of unlabeled rows: in their soft
            shares). An unfitted trainer encoder is meta-trained without them.

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
        # -- semi-supervised: rows marked -1 join the prototypes unlabeled --
        unlabeled = self._unlabeled_rows(y)
        labeled = ~unlabeled
        if unlabeled.any():
            X_labeled, y = X[labeled], y[labeled]
        else:
            X_labeled = X
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
        class_weight = np.bincount(
            codes, weights=weights[labeled], minlength=len(self.classes_)
        )
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
            # Unlabeled rows and the rejection threshold work on dense rows.
            exact = labeled.all() and self.unknown_label is None
            if exact and self._sparse_identity(X, self.encoder):
                weights = None if sample_weight is None else weights
                return self._fit_sparse_identity(X, codes, weights)
            # A support set is small: modules (and refinement) take it dense.
            X, X_labeled = dense_rows(X), dense_rows(X_labeled)
        self.encoder_ = self._fit_encoder(X_labeled, y)
        # Stated contracts only: a module's own shape check says more (Conv4).
        contract = contracts.get_input_contract(self.encoder_, infer_shape=False)
        if contract is not None:
            contracts.check_sample_shape(X.shape[1:], contract)
            contracts.warn_on_violations(X, contract)
        if self.fine_tune_steps > 0:
            self.encoder_ = self._adapt_encoder(X_labeled, codes)
        self.inference_module_ = self._inference_module(X)
        self.int8_error_ = None  # set by _support_embeddings with int8
        # Prototypes are averaged in float64 so weights and repeats agree exactly.
        embeddings = self._support_embeddings(X)
        with self._threads():
            self._set_prototypes(embeddings, codes, weights, sample_weight, labeled)
        return self

    def _threads(self):
        """One torch thread for the identity's memory-bound arithmetic:
        more only contend for a busy machine's cores
        (benchmarks/identity_busy.py)."""
        return one_thread() if self.encoder_ is None else nullcontext()

    def _set_prototypes(
        self, embeddings, codes, weights, sample_weight, labeled
    ) -> None:
        """Prototypes (and precisions) of the support set's embeddings; rows
        not ``labeled`` refine them (semi-supervised)."""
        device = embeddings.device
        weights = None if sample_weight is None else as_tensor(weights).to(device)
        mean = support_mean(self.normalization, embeddings, weights)
        self.embedding_mean_ = None if mean is None else mean.cpu().numpy()
        normalized = normalize(self.normalization, embeddings, mean)
        rows, free_rows, free_weights = normalized, normalized[:0], None
        if not labeled.all():  # (indexing copies: only when there is a split)
            labeled_t = as_tensor(labeled).to(device)
            rows, free_rows = normalized[labeled_t], normalized[~labeled_t]
            if weights is not None:
                weights, free_weights = weights[labeled_t], weights[~labeled_t]
        args = (
            rows,
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
            # Rescaled if the class sums overflow (inputs near float64's limit).
            prototypes = stable_prototypes(class_prototypes, *args)
        if not bool(torch.isfinite(prototypes).all()):
            raise ValueError(
                f"The prototypes of metric={self.metric!r} are not finite: the "
                "support set's embeddings are too large for float64 arithmetic. "
                "Scale the inputs (e.g. StandardScaler) before the classifier."
            )
        self.prototypes_ = prototypes.cpu().numpy()
        # Running sums (partial_fit), unlabeled rows, rejection threshold.
        self._fit_sums(args, free_rows, free_weights)
        return self

    def _unlabeled_rows(self, y: np.ndarray) -> np.ndarray:
        """Rows marked unlabeled (only with ``refinement_steps > 0``)."""
        if self.refinement_steps == 0:
            return np.zeros(len(y), dtype=bool)
        if self.metric in VARIANCE_METRICS:
            raise ValueError(
                f"refinement_steps={self.refinement_steps} refines mean prototypes, "
                f"but metric={self.metric!r} has variance-aware ones; use "
                "refinement_steps=0 or metric='sqeuclidean'."
            )
        unlabeled = prototypes.unlabeled_mask(y)
        if unlabeled.all():
            raise ValueError(
                "Every row of y is marked unlabeled (-1): the prototypes need "
                "labeled examples. Give at least one labeled example of each of "
                "two classes."
            )
        return unlabeled

    def _fit_sums(self, args, unlabeled_rows, unlabeled_weights) -> None:
        """Running sums (partial_fit), soft k-means, the rejection threshold."""
        embeddings, codes_t, n_classes, labeled_weights = args
        sums, totals = prototypes.class_sums(
            self.metric, embeddings, codes_t, n_classes, labeled_weights
        )
        if len(unlabeled_rows):
            sums, totals = prototypes.soft_kmeans(
                sums,
                totals,
                unlabeled_rows,
                self.refinement_steps,
                metric=self.metric,
                weights=unlabeled_weights,
                masked=self.refinement == "masked",
            )
            self.prototypes_ = prototypes.as_prototypes(sums, totals).cpu().numpy()
        self.prototype_sums_ = sums.cpu().numpy()
        self.prototype_totals_ = totals.cpu().numpy()
        self.threshold_ = None
        if self.unknown_label is None:
            return
        if np.any(self.classes_ == self.unknown_label):
            raise ValueError(
                f"unknown_label={self.unknown_label!r} is also a class label in y; "
                "choose a label no class has (e.g. -1 or 'unknown')."
            )
        precisions = getattr(self, "precisions_", None)
        distances = open_set.leave_one_out_distances(
            self.metric,
            embeddings,
            codes_t,
            sums,
            totals,
            labeled_weights,
            None if precisions is None else as_tensor(precisions).to(sums.device),
        )
        if len(distances) == 0:
            raise ValueError(
                f"unknown_label={self.unknown_label!r} calibrates its threshold on "
                "leave-one-out distances, which need two support examples of some "
                "class, but every class has one. Add a second example to some "
                "class, or use unknown_label=None."
            )
        self.threshold_ = open_set.calibrate_threshold(
            distances, self.rejection_quantile
        )

    def _has_partial_fit(self) -> bool:
        # Class covariances are not running sums: like scikit-learn's
        # estimators whose methods depend on a parameter, there is then no
        # partial_fit (hasattr is False; the cause names the metric).
        if self.metric == "mahalanobis":
            raise ValueError(
                "partial_fit does not support metric='mahalanobis': its shrunk "
                "class covariances need the whole support set at once. Use fit "
                "on all examples, or another metric."
            )
        return True

    @available_if(_has_partial_fit)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Add support examples, of known or new classes, to the prototypes.

        The first call (or the first after :meth:`fit`, which resets) does
        what :meth:`fit` does on its batch: it sets up the encoder (an
        unfitted trainer is meta-trained on it, ``fine_tune_steps`` adapts it,
        ``inference_dtype="int8"`` is calibrated on it) and, with
        ``normalization="cl2n"``, fixes the centring mean. Later calls only
        embed their rows and add them to each class's running sums
        (``prototype_sums_``, ``prototype_totals_``): the cost is that of the
        new rows, and the prototypes equal those of one ``fit`` on all rows
        seen (but for ``"cl2n"``'s mean and the set-up on the first batch).

        A class seen for the first time is inserted into ``classes_``, which
        stays sorted: the columns of ``predict_proba`` and
        ``decision_function`` follow ``classes_``, so a new class can shift
        the columns of the classes after it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New support examples.
        y : array-like of shape (n_samples,)
            Their labels; new labels add classes.
        classes : array-like, default=None
            Accepted for scikit-learn's ``partial_fit`` convention; when given,
            every label of ``y`` must be among them. Classes without examples
            get no prototype.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : PrototypicalClassifier
        """
        self._validate_params()
        self._check_incremental()
        if classes is not None and y is not None:
            missing = np.setdiff1d(np.unique(np.asarray(y)), np.asarray(classes))
            if len(missing):
                raise ValueError(
                    f"y has labels {missing.tolist()} that are not in classes; "
                    "include them in classes, or pass classes=None."
                )
        if not hasattr(self, "prototype_sums_"):
            return self.fit(X, y, sample_weight)
        if y is None:
            raise ValueError(
                "partial_fit requires y: give the class label of each example."
            )
        y = check_labels(y, type(self).__name__)
        X, y = self._check_input(X, reset=False, y=y)
        if X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but PrototypicalClassifier "
                f"was fitted on samples of shape {self.input_shape_}."
            )
        if sp.issparse(X):  # a batch of support rows is small: dense
            X = dense_rows(X)
        if (np.asarray(y).dtype.kind in "iufb") != (self.classes_.dtype.kind in "iufb"):
            raise ValueError(
                f"y has labels of dtype {np.asarray(y).dtype}, but classes_ are of "
                f"dtype {self.classes_.dtype}: give labels of the same kind "
                "(numbers or strings) in every call."
            )
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if (weights < 0).any():
            raise ValueError(
                f"sample_weight must be non-negative, got {weights.min()}; use 0 "
                "to ignore a sample."
            )
        classes = np.union1d(self.classes_, y)
        codes = np.searchsorted(classes, y)
        embeddings = self._support_embeddings(X)
        device = embeddings.device
        mean = None if self.embedding_mean_ is None else as_tensor(self.embedding_mean_)
        sums, totals = prototypes.class_sums(
            self.metric,
            normalize(self.normalization, embeddings, mean),
            as_tensor(codes.astype(np.int64)).to(device),
            len(classes),
            as_tensor(weights).to(device),
        )
        sums, totals = sums.cpu().numpy(), totals.cpu().numpy()
        old = np.searchsorted(classes, self.classes_)
        sums[old] += self.prototype_sums_
        totals[old] += self.prototype_totals_
        empty = (totals <= 0) if totals.ndim == 1 else (totals <= 0).any(1)
        if empty.any():
            raise ValueError(
                f"sample_weight sums to zero for classes {classes[empty].tolist()}: "
                "their prototypes are undefined. Give each class a positive weight."
            )
        self.classes_ = classes
        self.prototype_sums_, self.prototype_totals_ = sums, totals
        self.prototypes_ = sums / (totals[:, None] if totals.ndim == 1 else totals)
        if self.metric == "gaussian":
            self.precisions_ = totals
        return self

    def _check_incremental(self) -> None:
        """What partial_fit cannot keep up to date, refused by name."""
        refused = {
            f"refinement_steps={self.refinement_steps}": self.refinement_steps > 0,
            f"unknown_label={self.unknown_label!r}": self.unknown_label is not None,
        }
        for name, bad in refused.items():
            if bad:
                raise ValueError(
                    f"partial_fit does not support {name}: it needs the whole "
                    "support set at once (the unlabeled rows' soft k-means, "
                    "the rejection threshold's leave-one-out distances). Use "
                    "fit on all examples, or the default of that parameter."
                )

    def _support_embeddings(self, X: np.ndarray) -> torch.Tensor:
        """Embeddings of validated support rows, in float64.

        With ``inference_dtype="int8"`` the prototypes come from float32
        embeddings, and ``int8_error_`` records the int8 ones' largest
        relative error: queries whose decision it could change are embedded
        again in float32 (``_iter_normalized``).
        """
        if self.encoder_ is None:  # the rows are the embeddings: no copy
            device = resolve_device(None, self.device)
            return as_tensor(X.reshape(len(X), -1)).to(device, torch.float64)
        embeddings = torch.cat(list(self._iter_embeddings(X))).double()
        if not self._rechecks_int8():
            return embeddings
        exact = torch.cat(list(self._iter_embeddings(X, float32=True))).double()
        error = relative_error(embeddings, exact)
        self.int8_error_ = max(getattr(self, "int8_error_", None) or 0.0, error)
        return exact

    def _rechecks_int8(self) -> bool:
        return (
            getattr(self, "inference_dtype", "float32") == "int8"
            and getattr(self, "inference_module_", None) is not None
            and self.metric not in VARIANCE_METRICS
        )

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
        # partial_fit's running sums (the prototypes times the class weights)
        # and open-set rejection's threshold, as the dense path sets them.
        w = np.ones(X.shape[0]) if weights is None else weights
        self.prototype_totals_ = np.bincount(codes, w, minlength=len(self.classes_))
        self.prototype_sums_ = self.prototypes_ * self.prototype_totals_[:, None]
        self.threshold_ = None
        return self

    def _iter_normalized(self, X: np.ndarray) -> Iterator[torch.Tensor]:
        """Embeddings of validated ``X``, normalised as the support set was.

        With ``inference_dtype="int8"``, the rows whose nearest prototype the
        int8 error could change are embedded again in float32, so that
        predictions agree with float32's (``precision.uncertain_rows``).
        """
        mean = None if self.embedding_mean_ is None else as_tensor(self.embedding_mean_)
        recheck = (
            self._rechecks_int8() and getattr(self, "int8_error_", None) is not None
        )
        start = 0
        for embeddings in self._iter_embeddings(X):
            normalized = normalize(self.normalization, embeddings, mean)
            if recheck:
                prototypes = as_tensor(self.prototypes_).to(embeddings.device)
                rows = uncertain_rows(
                    embeddings,
                    normalized,
                    prototypes,
                    metric=self.metric,
                    normalization=self.normalization,
                    mean=None if mean is None else mean.to(embeddings.device),
                    error=self.int8_error_,
                )
                if len(rows):
                    again = X[start + rows.cpu().numpy()]
                    exact = torch.cat(list(self._iter_embeddings(again, float32=True)))
                    normalized = normalized.clone()
                    normalized[rows] = normalize(
                        self.normalization, exact.to(normalized.dtype), mean
                    )
            start += len(embeddings)
            yield normalized

    def _check_predict_input(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = self._check_input(X, reset=False)
        if X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but PrototypicalClassifier "
                f"was fitted on samples of shape {self.input_shape_}."
            )
        return X

    def _iter_distances(self, X: np.ndarray) -> Iterator[tuple[torch.Tensor, float]]:
        """Distances of validated ``X`` to the prototypes, chunk by chunk, as
        ``(d, factor)``: the true distances are ``d * factor`` (factor 1
        unless they overflow float64, see ``_numerics.scaled_distances``)."""
        if self._sparse_identity(X, self.encoder_):
            for start in range(0, X.shape[0], self.batch_size):
                yield (
                    sparse_distances(
                        X[start : start + self.batch_size],
                        self.prototypes_,
                        self.embedding_mean_,
                        self.normalization,
                        self.metric,
                    ),
                    1.0,
                )
            return
        prototypes = None
        for embeddings in self._iter_normalized(X):
            if prototypes is None:
                prototypes = as_tensor(self.prototypes_).to(embeddings.device)
            if self.metric in VARIANCE_METRICS:
                precisions = as_tensor(self.precisions_).to(embeddings.device)
                distances = variance_distances(
                    self.metric, embeddings.double(), prototypes, precisions
                )
                if not bool(torch.isnan(distances).any()):
                    yield distances, 1.0
                    continue
                raise ValueError(
                    f"metric={self.metric!r} gives NaN distances: the embeddings "
                    "are too large for float64 arithmetic. Scale the inputs (e.g. "
                    "StandardScaler) before the classifier."
                )
            yield scaled_distances(embeddings.double(), prototypes, self.metric)

    def _per_chunk(self, X, reduce) -> np.ndarray:
        """``reduce(d, factor)`` applied to each chunk's distances, in one array."""
        X = self._check_predict_input(X)
        with self._threads():
            chunks = (reduce(*pair).cpu().numpy() for pair in self._iter_distances(X))
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
        # Never NaN: -inf at worst, for any temperature and input (_numerics).
        return self._per_chunk(X, lambda d, f: decision(d, f, self.temperature))

    def predict(self, X) -> np.ndarray:
        """The class of the nearest prototype.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            With ``unknown_label`` set, queries farther from every prototype
            than ``threshold_`` get ``unknown_label``.
        """
        if self.unknown_label is not None:
            return self._predict_open_set(X)
        # Chunks first: they check fitting (NotFittedError, not AttributeError).
        nearest = self._per_chunk(X, lambda d, f: d.argmin(1))
        return self.classes_[nearest]

    # -- issue 14: open-set rejection (open_set.py) ---------------------------

    def score_samples(self, X) -> np.ndarray:
        """Typicality: the negative distance to the nearest prototype.

        Higher is more typical of the known classes, as for scikit-learn's
        outlier detectors; ``predict`` rejects (with ``unknown_label``) the
        rows whose score is below ``-threshold_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        # d * f: the true distances (f rescales distances beyond float64).
        return -self._per_chunk(X, lambda d, f: d.min(1).values * f)

    def _predict_open_set(self, X) -> np.ndarray:
        nearest = self._per_chunk(
            X,
            lambda d, f: torch.stack([d.argmin(1).to(d.dtype), d.min(1).values * f], 1),
        )
        if getattr(self, "threshold_", None) is None:
            raise NotFittedError(
                f"unknown_label={self.unknown_label!r} was set after fit: the "
                "rejection threshold is calibrated by fit. Call fit again."
            )
        labels = self.classes_[nearest[:, 0].astype(np.intp)]
        return open_set.reject_labels(
            labels, nearest[:, 1] > self.threshold_, self.unknown_label
        )

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return self._per_chunk(
            X, lambda d, f: torch.log_softmax(logits(d, f, self.temperature), 1)
        )

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
        # Stable for any temperature > 0 (1e-310 included): see _numerics.
        return self._per_chunk(
            X, lambda d, f: torch.softmax(logits(d, f, self.temperature), 1)
        )

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
        with self._threads():
            chunks = (e.cpu().numpy() for e in self._iter_normalized(X))
            return _fill(chunks, X.shape[0])
