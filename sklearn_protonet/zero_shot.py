"""Zero-shot prototypes: a class's prototype from its metadata, not its examples.

Prototypical Networks extend to zero-shot learning (Snell et al., 2017,
section 2.6): each class comes with a metadata vector (attributes, a
description's embedding), a second encoder maps it into the embedding space,
and that point is the class's prototype. Both encoders are meta-trained
together on episodes of classes with their metadata and query examples
(:class:`ZeroShotTrainer`); :class:`ZeroShotPrototypicalClassifier` then
classifies samples of classes never seen with an example, and can blend the
metadata with a few examples when there are some.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d
from skorch.callbacks import Callback
from torch import nn

from ._encoders import encoder_module, eval_mode, resolve_device
from ._inputs import as_tensor, numeric_input
from .classifier import PrototypicalClassifier
from .distances import METRICS, pairwise_distances
from .episodes import EpisodeDataset
from .trainer import EpisodicTrainer

__all__ = [
    "ZeroShotEncoders",
    "ZeroShotPrototypicalClassifier",
    "ZeroShotTrainer",
    "check_metadata",
]


def check_metadata(metadata, labels=None, *, name: str = "metadata"):
    """Validate class metadata and return its values, labels and columns.

    Parameters
    ----------
    metadata : DataFrame or array-like of shape (n_rows, n_attributes)
        One row per class (rows of the same class are averaged by the
        estimators). A DataFrame is indexed by class label unless ``labels``
        is given.
    labels : array-like of shape (n_rows,), default=None
        The class of each row; required for arrays.
    name : str, default="metadata"
        How error messages call the input.

    Returns
    -------
    values : ndarray of shape (n_rows, n_attributes), float32
    labels : ndarray of shape (n_rows,)
    columns : ndarray of str or None
        The DataFrame's column names.

    Raises
    ------
    ValueError
        For non-numeric columns, missing values (naming the classes and
        columns), missing labels, or labels and rows of different lengths.
    """
    columns = None
    if isinstance(metadata, pd.DataFrame):
        text = [c for c, dtype in metadata.dtypes.items() if not _is_numeric(dtype)]
        if text:
            raise ValueError(
                f"{name} columns {text} are not numeric; encode them first, e.g. "
                "with pandas.get_dummies or a OneHotEncoder."
            )
        if labels is None:
            labels = metadata.index.to_numpy()
        columns = np.asarray(metadata.columns, dtype=object)
        values = metadata.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        if labels is None:
            raise ValueError(
                f"Zero-shot fitting requires y to be passed, but the target y "
                f"is None and {name} is an array, so the class of each row is "
                "unknown: pass y (one label per row) or a DataFrame indexed by "
                "class label."
            )
        with numeric_input(name):
            values = check_array(
                metadata, dtype=np.float64, ensure_all_finite=False, input_name=name
            )
    labels = column_or_1d(np.asarray(labels), warn=True)
    if len(labels) != len(values):
        raise ValueError(
            f"{name} has {len(values)} rows but {len(labels)} class labels; give "
            "one label per row."
        )
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D table with at least one column.")
    missing = ~np.isfinite(values)
    if missing.any():
        rows, cols = np.nonzero(missing)
        where = sorted({str(labels[r]) for r in rows})
        what = sorted({str(columns[c] if columns is not None else c) for c in cols})
        raise ValueError(
            f"{name} has missing or infinite values for classes {where} in columns "
            f"{what}; impute them (e.g. with the column mean) or drop the columns."
        )
    return values.astype(np.float32), labels, columns


def _is_numeric(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(
        dtype
    )


class ZeroShotEncoders(nn.Module):
    """The pair of encoders of zero-shot Prototypical Networks.

    ``forward`` embeds samples (so the pair is an encoder like any other for
    :class:`~sklearn_protonet.EpisodicTrainer`'s ``transform``), and
    :meth:`embed_metadata` maps class metadata into the same space.

    Parameters
    ----------
    sample_encoder : torch.nn.Module
        E.g. :class:`~sklearn_protonet.modules.Conv4` or
        :class:`~sklearn_protonet.modules.MLP`.
    metadata_encoder : torch.nn.Module
        Maps metadata rows to embeddings of the sample encoder's width, e.g.
        ``MLP(out_features=...)`` or ``torch.nn.Linear``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_protonet.modules import MLP
    >>> from sklearn_protonet.zero_shot import ZeroShotEncoders
    >>> pair = ZeroShotEncoders(MLP(64, out_features=8), torch.nn.Linear(5, 8))
    >>> pair(torch.zeros(3, 64)).shape, pair.embed_metadata(torch.zeros(2, 5)).shape
    (torch.Size([3, 8]), torch.Size([2, 8]))
    """

    def __init__(self, sample_encoder: nn.Module, metadata_encoder: nn.Module):
        super().__init__()
        self.sample_encoder = sample_encoder
        self.metadata_encoder = metadata_encoder

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.sample_encoder(X)

    def embed_metadata(self, metadata: torch.Tensor) -> torch.Tensor:
        """Prototypes of the classes described by ``metadata`` rows."""
        return self.metadata_encoder(metadata)


class ZeroShotDataset(EpisodeDataset):
    """Samples with class codes, plus one metadata row per class."""

    def __init__(self, X, codes, classes, metadata: torch.Tensor):
        super().__init__(X, codes, classes)
        self.metadata = metadata

    def subset(self, class_codes: np.ndarray) -> ZeroShotDataset:
        part = super().subset(class_codes)
        rows = self.metadata[as_tensor(np.sort(class_codes))]
        return ZeroShotDataset(part.X, part.codes, part.classes, rows)


class ZeroShotEpisodes:
    """Yields ``n_episodes`` zero-shot episodes as skorch batches.

    Each draws ``n_way`` classes and ``n_query`` examples of each; the batch is
    ``(queries, {"metadata": rows of the classes, "query": local codes})``.
    """

    def __init__(self, dataset: ZeroShotDataset, n_way, n_query, n_episodes, seed):
        counts = np.bincount(dataset.codes, minlength=len(dataset.classes))
        short = dataset.classes[counts < n_query].tolist()
        if len(dataset.classes) < n_way or short:
            raise ValueError(
                f"Zero-shot episodes need n_way={n_way} classes with n_query="
                f"{n_query} examples each; there are {len(dataset.classes)} "
                f"classes, and these have fewer examples: {short[:10]}. Lower "
                "n_way or n_query."
            )
        self.dataset, self.n_way, self.n_query = dataset, n_way, n_query
        self.n_episodes, self.seed = n_episodes, seed
        self.members = [np.flatnonzero(dataset.codes == c) for c in range(len(counts))]
        self.target = torch.arange(n_way).repeat_interleave(n_query)

    def __len__(self) -> int:
        return self.n_episodes

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.n_episodes):
            classes = rng.choice(len(self.members), self.n_way, replace=False)
            index = np.concatenate(
                [
                    rng.choice(self.members[c], self.n_query, replace=False)
                    for c in classes
                ]
            )
            yield (
                self.dataset.X[as_tensor(index)],
                {
                    "metadata": self.dataset.metadata[as_tensor(classes)],
                    "query": self.target,
                },
            )


class _ZeroShotAccuracy(Callback):
    """Records each episode's query accuracy as ``train_acc`` / ``valid_acc``."""

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        with torch.no_grad():
            logits, codes = net.episode_logits(y_pred.detach(), batch[1])
            accuracy = (logits.argmax(1) == codes).float().mean().item()
        net.history.record_batch("train_acc" if training else "valid_acc", accuracy)


class ZeroShotTrainer(EpisodicTrainer):
    """Meta-trains a sample encoder and a metadata encoder together.

    Every episode draws ``n_way`` classes and ``n_query`` examples of each; the
    metadata encoder turns the classes' metadata into prototypes and the loss
    is the cross-entropy of the queries' negative distances to them (Snell et
    al., 2017, section 2.6). Everything else is
    :class:`~sklearn_protonet.EpisodicTrainer`'s (skorch callbacks, history,
    ``ClassSplit`` validation on held-out classes, ``transform``).

    Parameters
    ----------
    module : ZeroShotEncoders class or instance
        Pass its encoders as ``module__sample_encoder=...`` and
        ``module__metadata_encoder=...``, or an instance.
    n_way : int, default=5
        Classes per episode.
    n_query : int, default=10
        Query examples per class and episode.
    episodes_per_epoch : int, default=100
    valid_episodes : int, default=100
        Validation episodes (the same every epoch).
    metric : {"sqeuclidean", "euclidean", "cosine"}, default="sqeuclidean"
    train_split : callable or None, default=None
        E.g. ``ClassSplit(0.3)``: validation on held-out classes, zero-shot.
    random_state : int, RandomState instance or None, default=None
    **kwargs
        Any other ``EpisodicTrainer`` / ``NeuralNet`` argument (``lr``,
        ``max_epochs``, ``callbacks``, ``device``, ``verbose``...).

    Attributes
    ----------
    module_ : ZeroShotEncoders
        The trained pair.
    metadata_columns_ : ndarray of str or None
        The metadata's column names, when it was a DataFrame.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn_protonet.modules import MLP
    >>> from sklearn_protonet.zero_shot import ZeroShotEncoders, ZeroShotTrainer
    >>> rng = np.random.default_rng(0)
    >>> metadata = pd.DataFrame(rng.random((6, 3)), index=list("abcdef"))
    >>> X, y = rng.random((60, 4)), np.repeat(list("abcdef"), 10)
    >>> pair = ZeroShotEncoders(MLP(4, out_features=8), MLP(3, out_features=8))
    >>> trainer = ZeroShotTrainer(pair, n_way=3, max_epochs=1, verbose=0)
    >>> trainer.fit(X, y, metadata=metadata).transform(X[:2]).shape
    (2, 8)
    """

    def __init__(
        self,
        module,
        *args,
        n_way: int = 5,
        n_query: int = 10,
        episodes_per_epoch: int = 100,
        valid_episodes: int = 100,
        metric: str = "sqeuclidean",
        train_split=None,
        random_state=None,
        **kwargs,
    ):
        super().__init__(
            module,
            *args,
            n_way=n_way,
            n_query=n_query,
            episodes_per_epoch=episodes_per_epoch,
            valid_episodes=valid_episodes,
            metric=metric,
            train_split=train_split,
            random_state=random_state,
            **kwargs,
        )

    @property
    def _default_callbacks(self):
        return [
            (name, _ZeroShotAccuracy() if name == "episode_accuracy" else callback)
            for name, callback in super()._default_callbacks
        ]

    def initialize(self):
        """Initialise as :class:`~sklearn_protonet.EpisodicTrainer` does, and
        check the module is a :class:`ZeroShotEncoders`."""
        if self.metric not in METRICS:
            raise ValueError(
                f"ZeroShotTrainer's metric must be one of {METRICS}, got "
                f"{self.metric!r}."
            )
        super().initialize()
        if not hasattr(self.module_, "embed_metadata"):
            raise TypeError(
                "ZeroShotTrainer needs a module with an embed_metadata method: "
                f"wrap the encoders in ZeroShotEncoders, got "
                f"{type(self.module_).__name__}."
            )
        return self

    def fit(self, X, y=None, metadata=None, **fit_params):
        """Meta-train both encoders on the base classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            Class labels.
        metadata : DataFrame of shape (n_classes, n_attributes)
            Indexed by class label: one row for every class of ``y`` (extra
            rows are ignored).

        Returns
        -------
        self
        """
        if not self.warm_start or not self.initialized_:
            self.initialize()
        return self.partial_fit(X, y, metadata=metadata, **fit_params)

    def partial_fit(self, X, y=None, classes=None, metadata=None, **fit_params):
        """Continue meta-training (see :meth:`fit`)."""
        if isinstance(X, ZeroShotDataset):
            return super().partial_fit(X, None, classes, **fit_params)
        if metadata is None or y is None:
            raise ValueError(
                "ZeroShotTrainer.fit needs X, y and metadata (a DataFrame indexed "
                "by class label with a row for each class of y)."
            )
        return super().partial_fit(
            self._dataset(X, y, metadata), None, classes, **fit_params
        )

    def _dataset(self, X, y, metadata) -> ZeroShotDataset:
        values, labels, columns = check_metadata(metadata)
        data = EpisodeDataset.from_labelled(X, y)
        rows = _rows_for(data.classes, labels, "y")
        self.metadata_columns_ = columns
        return ZeroShotDataset(
            data.X, data.codes, data.classes, as_tensor(values[rows])
        )

    def get_iterator(self, dataset, training=False):
        """Zero-shot episodes for labelled data with metadata."""
        if not isinstance(dataset, ZeroShotDataset):
            return super().get_iterator(dataset, training=training)
        if training:
            seed = [self.seed_, 1, len(self.history)]
            return ZeroShotEpisodes(
                dataset, self.n_way, self.n_query, self.episodes_per_epoch, seed
            )
        n_way = self.valid_n_way or min(self.n_way, len(dataset.classes))
        n_query = self.valid_n_query or self.n_query
        return ZeroShotEpisodes(
            dataset, n_way, n_query, self.valid_episodes, [self.seed_, 0]
        )

    def episode_logits(self, y_pred, target) -> tuple[torch.Tensor, torch.Tensor]:
        """Negative distances of the queries to the metadata prototypes."""
        prototypes = self.module_.embed_metadata(target["metadata"].to(y_pred.device))
        logits = -pairwise_distances(y_pred, prototypes.float(), self.metric)
        return logits, target["query"].to(y_pred.device)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Cross-entropy of the queries over the episode's metadata prototypes."""
        return self.criterion_(*self.episode_logits(y_pred, y_true))

    def transform_metadata(self, metadata) -> np.ndarray:
        """Embed metadata rows (DataFrame or array) with the metadata encoder.

        Returns
        -------
        ndarray of shape (n_rows, embedding_dim)
        """
        check_is_fitted(self)
        if isinstance(metadata, pd.DataFrame):
            values = check_metadata(metadata)[0]
        else:
            values = check_metadata(metadata, np.arange(len(metadata)))[0]
        return _embed_metadata(self.module_, values, self.device).numpy()


def _embed_metadata(module, values: np.ndarray, device) -> torch.Tensor:
    with eval_mode(module), torch.inference_mode():
        out = module.embed_metadata(as_tensor(values).to(device))
    return out.double().cpu()


def _rows_for(classes: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    """Index of each class's metadata row; every class needs exactly one."""
    unique, counts = np.unique(labels, return_counts=True)
    doubled = unique[counts > 1].tolist()
    if doubled:
        raise ValueError(
            f"metadata has several rows for classes {doubled[:10]}; give one row "
            "per class."
        )
    missing = np.setdiff1d(classes, labels).tolist()
    if missing:
        raise ValueError(
            f"classes {missing[:10]} in {name} have no metadata row; add a row for "
            "each of them to the metadata (indexed by class label)."
        )
    order = np.argsort(labels)
    return order[np.searchsorted(labels[order], classes)]


class ZeroShotPrototypicalClassifier(PrototypicalClassifier):
    """Classifies samples of classes known only by their metadata.

    ``fit`` takes class metadata (a DataFrame indexed by class label: one row
    of attributes per class) and maps it into the embedding space: those
    points are the prototypes. ``predict`` embeds samples and returns the
    class of the nearest prototype, as
    :class:`~sklearn_protonet.PrototypicalClassifier` does, so the classes
    need no example at all. Given a few examples too (``X_support``,
    ``y_support``), each prototype blends the metadata's point with the
    examples' mean.

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
        Number of metadata columns.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The metadata's column names, when it was a DataFrame with string
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
        "metric": [StrOptions(set(METRICS))],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "metadata_weight": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [None, str, torch.device],
    }

    def __init__(
        self,
        encoder=None,
        *,
        metric: str = "sqeuclidean",
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Sparse rows are the identity encoder's (PrototypicalClassifier);
        # fit here takes class metadata, not rows.
        tags.input_tags.sparse = False
        return tags

    def _fit_encoder(self, X, y):
        encoder = self.encoder
        if encoder is None:
            return None
        module = encoder
        if isinstance(module, FrozenEstimator):
            module = module.estimator
        if isinstance(module, ZeroShotTrainer):
            check_is_fitted(module, msg=_UNFITTED)
            return encoder
        if isinstance(module, nn.Module) and hasattr(module, "embed_metadata"):
            return encoder
        raise TypeError(
            "encoder must be None, a ZeroShotEncoders module or a fitted "
            f"ZeroShotTrainer, got {type(encoder).__name__}."
        )

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
        self._validate_params()
        values, labels, _ = check_metadata(X, y, name="X (the metadata)")
        check_classification_targets(labels)
        # Feature names, counts and dtype checks on the metadata table.
        X = self._check_input(X, reset=True)
        self.classes_, codes = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "ZeroShotPrototypicalClassifier needs metadata for at least 2 "
                f"classes, got 1 class ({self.classes_[0]!r}). Add rows for the "
                "other classes."
            )
        self.encoder_ = self._fit_encoder(X, labels)
        module = encoder_module(self.encoder_)
        if module is None:
            embedded = torch.as_tensor(values, dtype=torch.float64)
            self.input_shape_ = X.shape[1:]
        else:
            device = resolve_device(module, self.device)
            embedded = _embed_metadata(module, values, device)
            self.input_shape_ = None
        codes_t = torch.as_tensor(codes)
        k = len(self.classes_)
        sums = embedded.new_zeros(k, embedded.shape[1]).index_add_(0, codes_t, embedded)
        counts = torch.bincount(codes_t, minlength=k).double()
        self.metadata_prototypes_ = (sums / counts[:, None]).numpy()
        self.prototypes_ = self.metadata_prototypes_.copy()
        if X_support is not None or y_support is not None:
            self._blend_support(X_support, y_support)
        return self

    def _blend_support(self, X_support, y_support) -> None:
        if X_support is None or y_support is None:
            raise ValueError("Pass both X_support and y_support, or neither.")
        with numeric_input("X_support"):
            dtype = np.float64 if self.encoder is None else np.float32
            X_support = check_array(
                X_support, dtype=dtype, allow_nd=True, input_name="X_support"
            )
        y_support = column_or_1d(np.asarray(y_support), warn=True)
        if len(y_support) != len(X_support):
            raise ValueError(
                f"X_support has {len(X_support)} rows but y_support has "
                f"{len(y_support)}; they must match."
            )
        unknown = np.setdiff1d(y_support, self.classes_).tolist()
        if unknown:
            raise ValueError(
                f"classes {unknown[:10]} in y_support have no metadata row; add a "
                "row for each of them to the metadata (indexed by class label)."
            )
        if self.input_shape_ is not None and X_support.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X_support has samples of shape {X_support.shape[1:]}, but the "
                f"identity encoder needs the metadata's shape {self.input_shape_}."
            )
        self.input_shape_ = X_support.shape[1:]
        embedded = torch.cat(list(self._iter_embeddings(X_support))).double().cpu()
        codes = torch.as_tensor(np.searchsorted(self.classes_, y_support))
        k = len(self.classes_)
        sums = embedded.new_zeros(k, embedded.shape[1]).index_add_(0, codes, embedded)
        counts = torch.bincount(codes, minlength=k).double()
        w = float(self.metadata_weight)
        blended = (w * torch.as_tensor(self.metadata_prototypes_) + sums) / (
            w + counts[:, None]
        )
        self.prototypes_ = blended.numpy()

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """``fit(X, y)``, then :meth:`transform` of ``X`` (identity encoder:
        metadata and samples share one space)."""
        return self.fit(X, y, **fit_params).transform(X)

    def _iter_normalized(self, X: np.ndarray) -> Iterator[torch.Tensor]:
        # Prototypes come from metadata, not from a support set: there is no
        # support statistic to normalise by, so embeddings are used as they are.
        return self._iter_embeddings(X)

    def predict(self, X) -> np.ndarray:
        """The class of the nearest prototype.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples (in the metadata's space with the identity encoder).

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        # No open-set rejection: there is no support set to calibrate it on.
        nearest = self._per_chunk(X, lambda d, f: d.argmin(1))  # checks fitted
        return self.classes_[nearest]

    def _no_partial_fit(self) -> bool:
        raise AttributeError(
            "ZeroShotPrototypicalClassifier has no partial_fit: its prototypes "
            "come from class metadata. Call fit with the metadata of every class "
            "(and X_support, y_support for examples)."
        )

    @available_if(_no_partial_fit)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Not available: see :meth:`fit`."""
        raise NotImplementedError  # unreachable: available_if hides it

    def _check_predict_input(self, X) -> np.ndarray:
        if self.encoder is None:  # samples live in the metadata's space
            return super()._check_predict_input(X)
        check_is_fitted(self)
        with numeric_input("X"):
            X = check_array(X, dtype=np.float32, allow_nd=True, input_name="X")
        if self.input_shape_ is not None and X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but the support examples "
                f"had shape {self.input_shape_}."
            )
        return X


_UNFITTED = (
    "This ZeroShotTrainer is not fitted yet: meta-train it first with "
    "trainer.fit(X, y, metadata=...), then pass it as the encoder."
)
