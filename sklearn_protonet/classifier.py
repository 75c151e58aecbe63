"""The scikit-learn estimator: prototypes of a small support set, nearest wins.

``fit`` is a short recipe over parts that own their state: the encoder is
set up (meta-trained when it is an unfitted trainer, adapted to the support
set with ``fine_tune_steps``), an :class:`~sklearn_protonet._embedder.Embedder`
embeds the rows, a :class:`~sklearn_protonet._support.SupportState` turns them
into prototypes (refined by unlabeled rows, calibrated for rejection), and the
metric object of the registry (:mod:`sklearn_protonet._geometry`) measures the
distances. Predictions are shared with the zero-shot classifier
(:mod:`sklearn_protonet._prediction`).
"""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.exceptions import NotFittedError
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import validate_data
from torch import nn

from . import contracts
from ._embedder import Embedder
from ._encoders import DeviceName, check_device_available
from ._geometry import DEFAULT_METRIC, check_capabilities, get_metric, metric_names
from ._inference import INFERENCE_DTYPES
from ._inputs import (
    as_samples,
    as_tensor,
    check_image_shape,
    check_labels,
    numeric_input,
)
from ._labels import (
    check_unknown_label,
    class_weights,
    fixed_classes,
    grown_classes,
    unlabeled_rows,
)
from ._normalization import CENTRED, NORMALIZATIONS
from ._prediction import Fitted, PrototypePredictionMixin, fitted_attribute
from ._setup import adapted_encoder, fitted_encoder
from ._sklearn_contract import (
    check_encoder_input,
    check_frozen_encoder_params,
    is_fitted,
)
from ._sparse import dense_rows
from ._support import SupportState
from .adaptation import AUGMENTATIONS
from .covariance import ShrunkCovariance
from .refinement import REFINEMENTS

__all__ = ["PrototypicalClassifier"]

#: Parameters that need a capability of the metric when they are active:
#: (parameter, is it active, the capability, what the capability means).
_NEEDS = (
    ("fine_tune_steps", lambda v: v > 0, "adaptable", "fine-tunes on mean prototypes"),
    ("refinement_steps", lambda v: v > 0, "refinable", "refines mean prototypes"),
    ("normalization", lambda v: v in CENTRED, "centrable", "centres the embeddings"),
)


class PrototypicalClassifier(
    PrototypePredictionMixin,
    ClassNamePrefixFeaturesOutMixin,
    ClassifierMixin,
    TransformerMixin,
    BaseEstimator,
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
        (precision-weighted prototypes, Fort 2017). The variance-aware
        metrics do not combine with ``fine_tune_steps`` or
        ``refinement_steps``, and ``"mahalanobis"`` has no ``partial_fit``.
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
        (SimpleShot, Wang et al. 2019).
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
        calibrated on the support set in ``fit``: faster than float32 on x86
        CPUs. Prototypes come from float32 embeddings, and the queries whose
        decision the int8 error could change are embedded again in float32,
        so predictions agree with float32's (for the metrics with such a
        bound: ``"sqeuclidean"``, ``"euclidean"`` and ``"cosine"``).
        ``"bfloat16"`` / ``"float16"`` use ``torch.autocast``: fast on GPUs
        and on CPUs with bfloat16 instructions, several times *slower* on
        CPUs without them (:func:`sklearn_protonet.hardware.cpu_info` and the
        performance page).
    refinement_steps : int, default=0
        Semi-supervised prototypes (:ref:`semi_supervised`): with a positive
        value, rows of ``y`` equal to ``unlabeled_label`` are *unlabeled*:
        they refine the labeled prototypes by this many soft k-means steps
        (Ren et al. 2018) and belong to no class. 0 (the default) uses no
        unlabeled rows: ``unlabeled_label`` is then an ordinary label.
    refinement : {"guarded", "masked", "soft_kmeans"}, default="guarded"
        How unlabeled rows refine the prototypes
        (:func:`sklearn_protonet.refinement.soft_kmeans`): ``"guarded"``
        keeps rows unlike every class out (the mask of ``"masked"``), leaves
        out rows beyond the reach of the labeled prototypes, and stands aside
        (labeled prototypes unchanged) unless most classes have an unlabeled
        row confidently their own, so that unlabeled rows never cost
        accuracy; ``"masked"`` only masks; ``"soft_kmeans"`` lets every row
        join (Ren et al. 2018). :ref:`semi_supervised` says when refinement
        pays.
    unknown_label : int, float, str or None, default=None
        Open-set rejection (:ref:`open_set`): the label of queries farther
        from every prototype than ``threshold_``, calibrated at ``fit`` from
        the support set alone (the ``rejection_quantile`` of its
        leave-one-out distances; needs two examples of some class). It is
        the last column of ``classes_``, ``predict_proba`` and
        ``decision_function``: a virtual prototype at distance ``threshold_``
        from every query, so ``predict`` is always their argmax. It must be
        of the labels' kind (number or string) and no class of ``y``.
        ``None`` never rejects.
    rejection_quantile : float, default=0.99
        The quantile of the support set's leave-one-out distances taken as
        ``threshold_``: the share of known-class examples to accept. With a
        few examples per class the sample quantile underestimates the
        distances' tail, so the known queries actually accepted fall a little
        short of it (``benchmarks/open_set.py`` measures the rates).
    unlabeled_label : int, str or None, default=-1
        The mark of an unlabeled row in ``y`` when ``refinement_steps > 0``
        (``-1`` as in :mod:`sklearn.semi_supervised`; the string ``"-1"``
        also marks string labels). Set another value when ``-1`` is a real
        class, e.g. for a binary ``{-1, 1}`` problem with refinement.
    verbose : int, default=0
        With a positive value, ``fit`` shows a progress bar of the steps
        that take time (``fine_tune_steps``; an unfitted trainer encoder
        reports through its own ``verbose``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (then ``unknown_label`` when rejecting).
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
        int8 embeddings of the support set against float32's; queries whose
        two nearest prototypes are closer than that error (scaled to the
        query) are embedded again in float32. None otherwise.
    input_shape_ : tuple of int
        The shape of one sample seen during ``fit``.
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

    # Saved as weights (the encoder) or chosen at load (the device):
    # persistence writes every other parameter (_schema).
    _unsaved_params = frozenset({"encoder", "device"})
    #: The parameter whose value turns open-set rejection on (and then a
    #: saved file must hold the threshold).
    _rejection_param = "unknown_label"

    _parameter_constraints: dict = {
        "encoder": "no_validation",
        "metric": [StrOptions(set(metric_names()))],
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
        "refinement_steps": [Interval(Integral, 0, 1_000, closed="both")],
        "refinement": [StrOptions(set(REFINEMENTS))],
        "unknown_label": [None, str, Real],
        "rejection_quantile": [Interval(Real, 0, 1, closed="both")],
        "unlabeled_label": [None, str, Integral],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        encoder=None,
        *,
        metric: str = DEFAULT_METRIC,
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
        refinement: str = "guarded",
        unknown_label=None,
        rejection_quantile: float = 0.99,
        unlabeled_label=-1,
        verbose: int = 0,
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
        self.unlabeled_label = unlabeled_label
        self.verbose = verbose

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
        """Set parameters; those of a fitted encoder (``encoder__*``) may only
        be set to their current values: a fitted encoder is frozen (see
        :ref:`pipelines`)."""
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

    # Defined here, not only in the mixin: scikit-learn's set_output wraps
    # the transform that the estimator's own class defines.
    transform = PrototypePredictionMixin.transform

    # -- fitted state, as scikit-learn attributes ------------------------------

    prototype_sums_ = fitted_attribute("support.sums")
    prototype_totals_ = fitted_attribute("support.totals")
    embedding_mean_ = fitted_attribute("support.mean")
    threshold_ = fitted_attribute("support.threshold")
    precisions_ = fitted_attribute(
        "support.precisions", optional="for the variance-aware metrics only"
    )
    shrinkage_ = fitted_attribute(
        "support.shrinkage", optional="for metric='mahalanobis' only"
    )
    inference_module_ = fitted_attribute("embedder.fast_module")
    int8_error_ = fitted_attribute("embedder.int8_error")

    # -- fitting --------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Embed the support set and store one prototype per class.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (n_samples, n_features)
            The support set (flattened images or table rows; N-D arrays or
            lists of images when the encoder takes them; sparse rows, e.g.
            TF-IDF, are never densified by the identity encoder).
        y : array-like of shape (n_samples,)
            Class labels, ints or strings. One example per class is enough.
            With ``refinement_steps > 0``, ``unlabeled_label`` marks
            unlabeled rows.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights in each class's mean (of unlabeled rows: in their soft
            shares). An unfitted trainer encoder is meta-trained without them.

        Returns
        -------
        self : PrototypicalClassifier
        """
        vars(self).pop("_fitted", None)  # a failed fit leaves no stale state
        try:
            self._fitted = self._fit_support(X, y, sample_weight, classes=None)
        except KeyboardInterrupt:  # an interrupted meta-training: not fitted
            for name in ("n_features_in_", "feature_names_in_"):
                vars(self).pop(name, None)
            raise
        return self

    def _fit_support(self, X, y, sample_weight, classes) -> Fitted:
        """The recipe of ``fit`` and of the first ``partial_fit``."""
        self._validate_params()
        metric = get_metric(self.metric)
        check_capabilities(self, metric, _NEEDS)
        check_device_available(self.device, type(self).__name__)
        X, y = self._check_samples(X, y, reset=True)
        unlabeled = unlabeled_rows(
            y, self.unlabeled_label, active=self.refinement_steps > 0
        )
        labels = y[~unlabeled]
        if classes is None:
            known = np.unique(labels)
        else:
            known = fixed_classes(classes, labels, type(self).__name__)
        check_unknown_label(self.unknown_label, known)
        codes = np.full(len(y), -1)
        codes[~unlabeled] = np.searchsorted(known, labels)
        weights = class_weights(sample_weight, X, codes, known, classes is not None)
        names = getattr(self, "feature_names_in_", None)
        check_encoder_input(self.encoder, X.shape[1:], names, type(self).__name__)
        encoder = self.encoder
        if isinstance(encoder, nn.Module | None) or (
            hasattr(encoder, "fit") and is_fitted(encoder)
        ):
            contract = contracts.get_input_contract(encoder, infer_shape=False)
            if contract is not None and contract.shape is not None:
                check_image_shape(X.shape[1:], contract, type(self).__name__)
        given = None if sample_weight is None else weights
        fixed = classes is not None
        exact_sparse = self.encoder is None and metric.sparse_exact
        if sp.issparse(X) and exact_sparse and self.unknown_label is None:
            if not unlabeled.any():  # never densified
                support = SupportState.from_sparse(
                    X,
                    codes,
                    len(known),
                    given,
                    metric=metric,
                    normalization=self.normalization,
                )
                embedder = self._embedder(None, metric)
                return Fitted(known, embedder, support, X.shape[1:], None, fixed)
        X = dense_rows(X)  # a support set is small; modules take dense rows
        encoder = fitted_encoder(self.encoder, X[~unlabeled], labels)
        if self.fine_tune_steps > 0:
            encoder = adapted_encoder(
                encoder,
                X[~unlabeled],
                codes[~unlabeled],
                steps=self.fine_tune_steps,
                lr=self.fine_tune_lr,
                shift=self.fine_tune_shift,
                augmentation=self.fine_tune_augmentation,
                layers=self.fine_tune_layers,
                metric=self.metric,
                device=self.device,
                random_state=self.random_state,
                progress=self.verbose > 0,
            )
        embedder = self._embedder(encoder, metric, calibration=X)
        embeddings, error = embedder.support(X)
        embedder = embedder.with_error(error)
        with embedder.threads():
            support = SupportState.from_support(
                embeddings,
                codes,
                len(known),
                given,
                metric=metric,
                normalization=self.normalization,
                covariance=self.covariance,
            )
            rows = as_tensor(unlabeled).to(embeddings.device)
            support = support.refine(
                embeddings[rows],
                None if given is None else given[unlabeled],
                self.refinement_steps,
                self.refinement,
            )
            if self.unknown_label is not None:
                support = _calibrated(self, support, embeddings[~rows], codes, given)
        unknown = self.unknown_label
        return Fitted(known, embedder, support, X.shape[1:], unknown, fixed)

    def _embedder(self, encoder, metric, calibration=None) -> Embedder:
        return Embedder(
            encoder,
            batch_size=self.batch_size,
            device=self.device,
            inference_dtype=self.inference_dtype,
            calibration=calibration,
            keep_sparse=metric.sparse_exact,
            recheck_int8=metric.int8_bound,
        )

    def _check_samples(self, X, y=None, *, reset: bool):
        """Validated samples (and labels), the encoder's input contract
        checked and its warnings given, alike in fit and predict."""
        if reset and y is None:
            raise ValueError(
                "PrototypicalClassifier requires y to be passed, but the target y "
                "is None: give the class label of each support example."
            )
        if y is not None:
            y = check_labels(y, type(self).__name__)
        # Modules compute in float32; the identity computes in float64 so it
        # agrees with NearestCentroid to the last digit, converting float32
        # chunk by chunk (no float64 copy of all of X).
        dtype = (np.float64, np.float32) if self.encoder is None else np.float32
        kwargs = dict(dtype=dtype, allow_nd=True, reset=reset, accept_sparse="csr")
        X = as_samples(X)
        encoder = self.encoder if reset else self.encoder_
        contract = None
        module_like = isinstance(encoder, nn.Module | None)
        if module_like or (hasattr(encoder, "fit") and is_fitted(encoder)):
            contract = contracts.get_input_contract(encoder, infer_shape=False)
        numeric = getattr(getattr(X, "dtype", None), "kind", "f") in "biuf"
        if not reset and contract is not None and contract.shape and numeric:
            # Before scikit-learn's width check, whose message cannot say
            # what the encoder takes (fit checks it after the labels).
            check_image_shape(np.shape(X)[1:], contract, type(self).__name__)
        with numeric_input("X"):
            if y is None:
                X = validate_data(self, X, **kwargs)
            else:
                X, y = validate_data(self, X, y, **kwargs)
        if contract is not None:
            sample = dense_rows(X[: contracts.MAX_CHECKED_IMAGES])
            what = "support set" if reset else "queries"
            contracts.warn_on_violations(sample, contract, what)
        return X if y is None else (X, y)

    def _check_predict_input(self, X, fitted: Fitted):
        if self.unknown_label != fitted.unknown_label:
            raise NotFittedError(
                f"unknown_label={self.unknown_label!r} was set after fit: the "
                "rejection threshold is calibrated by fit. Call fit again."
            )
        X = self._check_samples(X, reset=False)
        if X.shape[1:] != fitted.input_shape:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but PrototypicalClassifier "
                f"was fitted on samples of shape {fitted.input_shape}."
            )
        return X

    # -- incremental fitting --------------------------------------------------

    def _has_partial_fit(self) -> bool:
        # Like scikit-learn's estimators whose methods depend on a parameter,
        # there is no partial_fit where it cannot keep the state up to date
        # (hasattr is False; the exception's cause names the parameter).
        refused = {
            f"metric={self.metric!r} (class covariances need the whole support "
            "set at once)": not get_metric(self.metric).incremental,
            f"refinement_steps={self.refinement_steps} (the unlabeled rows' soft "
            "k-means needs the whole support set)": self.refinement_steps > 0,
            f"unknown_label={self.unknown_label!r} (the rejection threshold's "
            "leave-one-out distances need the whole support set)": (
                self.unknown_label is not None
            ),
        }
        for name, bad in refused.items():
            if bad:
                raise AttributeError(
                    f"partial_fit is not available with {name}. Use fit on all "
                    "examples, or the default of that parameter."
                )
        return True

    @available_if(_has_partial_fit)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Add support examples, of known or new classes, to the prototypes.

        The first call (or the first after :meth:`fit`, which resets) sets up
        the classifier on its batch as :meth:`fit` does: the encoder (an
        unfitted trainer is meta-trained on it, ``fine_tune_steps`` adapts it,
        ``inference_dtype="int8"`` is calibrated on it) and, with
        ``normalization="cl2n"``, the centring mean. Later calls only embed
        their rows and add them to each class's running sums
        (``prototype_sums_``, ``prototype_totals_``): the cost is that of the
        new rows, and the prototypes equal those of one ``fit`` on all rows
        seen (but for ``"cl2n"``'s mean and the set-up on the first batch).

        ``classes`` on the first call fixes ``classes_`` and the columns of
        ``predict_proba`` and ``decision_function`` for good, as in
        scikit-learn's incremental estimators: a class without an example
        yet is never predicted and has probability 0, and later labels
        outside ``classes`` are refused. Without it, a label seen for the
        first time is inserted into ``classes_``, which stays sorted, so the
        columns after it shift.

        A reader in another thread (``predict`` while ``partial_fit`` adds
        classes) sees the fitted state before the call or after it, never a
        mix: the state is replaced in one assignment.

        Not available (``hasattr`` is False) with ``metric="mahalanobis"``,
        ``refinement_steps > 0`` or ``unknown_label``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New support examples.
        y : array-like of shape (n_samples,)
            Their labels.
        classes : array-like, default=None
            All the classes there will be (first call); later calls may pass
            the same classes or None.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : PrototypicalClassifier
        """
        fitted = vars(self).get("_fitted")
        if fitted is None:
            self._fitted = self._fit_support(X, y, sample_weight, classes=classes)
            return self
        self._validate_params()
        if y is None:
            raise ValueError(
                "partial_fit requires y: give the class label of each example."
            )
        X, y = self._check_samples(X, y, reset=False)
        if X.shape[1:] != fitted.input_shape:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but PrototypicalClassifier "
                f"was fitted on samples of shape {fitted.input_shape}."
            )
        known = grown_classes(fitted.classes, fitted.fixed_classes, y, classes)
        codes = np.searchsorted(known, y)
        weights = class_weights(sample_weight, X, codes, known, allow_empty=True)
        embeddings, error = fitted.embedder.support(dense_rows(X))
        positions = np.searchsorted(known, fitted.classes)
        with fitted.embedder.threads():
            support = fitted.support.add(
                embeddings, codes, len(known), positions, weights
            )
        # One assignment: a concurrent predict sees the old state or this one.
        self._fitted = replace(
            fitted,
            classes=known,
            embedder=fitted.embedder.with_error(error),
            support=support,
        )
        return self

    def fit_transform(self, X, y, sample_weight=None) -> np.ndarray:
        """``fit(X, y)``, then the embeddings of ``X``."""
        return self.fit(X, y, sample_weight).transform(X)


def _calibrated(classifier, support, labeled, codes, weights) -> SupportState:
    """The rejection threshold (``unknown_label``), from the labeled rows."""
    rows = codes >= 0
    calibrated = support.calibrate_rejection(
        labeled,
        codes[rows],
        None if weights is None else weights[rows],
        classifier.rejection_quantile,
    )
    if calibrated is None:
        raise ValueError(
            f"unknown_label={classifier.unknown_label!r} calibrates its threshold "
            "on leave-one-out distances, which need two support examples of some "
            "class, but every class has one. Add a second example to some class, "
            "or use unknown_label=None."
        )
    return calibrated


def restore_fitted(
    classifier: PrototypicalClassifier,
    tensors: dict,
    *,
    classes: np.ndarray,
    input_shape: tuple,
    threshold: float | None,
) -> None:
    """Make ``classifier`` (parameters and encoder set) fitted from a saved
    support state, checked as ``fit`` would have made it."""
    classifier._validate_params()
    metric = get_metric(classifier.metric)
    support = SupportState.from_tensors(
        tensors,
        metric=metric,
        normalization=classifier.normalization,
        threshold=threshold,
    )
    check_unknown_label(classifier.unknown_label, classes)
    embedder = classifier._embedder(classifier.encoder, metric)
    fitted = Fitted(classes, embedder, support, input_shape, classifier.unknown_label)
    fitted.check()
    classifier._fitted = fitted
