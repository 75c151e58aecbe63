"""Meta-training the pair of encoders on zero-shot episodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from .._geometry import metric_names
from .._inputs import as_tensor
from ..distances import pairwise_distances
from ..episodes import EpisodeDataset
from ..trainer import EpisodicTrainer
from ._callbacks import ZeroShotAccuracy
from ._episodes import ZeroShotDataset, ZeroShotEpisodes
from ._metadata import check_metadata, rows_for
from ._pair import embed_metadata

__all__ = ["ZeroShotTrainer"]


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
        n_query: int = 10,
        train_split=None,
        **kwargs,
    ):
        # Only the defaults that differ from EpisodicTrainer's: the signature
        # (hence get_params, clone and the repr) takes the others from it.
        super().__init__(
            module, *args, n_query=n_query, train_split=train_split, **kwargs
        )

    @property
    def _default_callbacks(self):
        return [
            (name, ZeroShotAccuracy() if name == "episode_accuracy" else callback)
            for name, callback in super()._default_callbacks
        ]

    def initialize(self):
        """Initialise as :class:`~sklearn_protonet.EpisodicTrainer` does, and
        check the module is a :class:`ZeroShotEncoders`."""
        allowed = metric_names(variance_aware=False)
        if self.metric not in allowed:
            raise ValueError(
                f"ZeroShotTrainer's metric must be one of {allowed}, got "
                f"{self.metric!r}."
            )
        if self.episode_loss != "prototypical":
            raise ValueError(
                "ZeroShotTrainer's episode_loss must be 'prototypical': its "
                "queries are compared with prototypes embedded from metadata, "
                f"not with other samples; got {self.episode_loss!r}."
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
        if y is None:
            raise ValueError(
                "ZeroShotTrainer requires y to be passed, but the target y is None: "
                "give the class label of each row of X (and metadata, a DataFrame "
                "indexed by class label)."
            )
        if metadata is None:
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
        rows = rows_for(data.classes, labels, "y")
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
        return embed_metadata(self.module_, values, self.device).numpy()
