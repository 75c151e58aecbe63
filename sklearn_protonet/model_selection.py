"""The few-shot evaluation protocol as a scikit-learn cross-validation splitter."""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import clone
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import _safe_indexing, column_or_1d
from sklearn.utils._param_validation import Interval, validate_parameter_constraints
from sklearn.utils.parallel import Parallel, delayed

from .episodes import EpisodeSampler, make_rng

__all__ = ["EpisodicSplit", "episodic_score", "mean_confidence_interval"]


class EpisodicSplit(BaseCrossValidator):
    """N-way K-shot episodes as cross-validation splits.

    Each split is one episode: ``n_way`` classes drawn at random, ``n_shot``
    support (train) and ``n_query`` query (test) examples of each. With a
    frozen encoder,
    ``cross_val_score(PrototypicalClassifier(encoder), X, y, cv=EpisodicSplit())``
    is the few-shot protocol of Snell et al. (2017): accuracy averaged over
    episodes, reported with :func:`mean_confidence_interval`.

    Parameters
    ----------
    n_way : int, default=5
        Classes per episode.
    n_shot : int, default=1
        Support examples per class.
    n_query : int, default=15
        Query examples per class.
    n_episodes : int, default=1000
        Number of episodes (splits).
    random_state : int, RandomState instance or None, default=None
        With an int, every call to ``split`` yields the same episodes, so
        models compared with one splitter see identical episodes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_protonet.model_selection import EpisodicSplit
    >>> y = np.repeat(np.arange(4), 3)
    >>> cv = EpisodicSplit(n_way=2, n_shot=1, n_query=2, n_episodes=2, random_state=0)
    >>> [(len(s), len(q)) for s, q in cv.split(np.zeros((12, 1)), y)]
    [(2, 4), (2, 4)]
    """

    _parameter_constraints: dict = {
        "n_way": [Interval(Integral, 2, None, closed="left")],
        "n_shot": [Interval(Integral, 1, None, closed="left")],
        "n_query": [Interval(Integral, 1, None, closed="left")],
        "n_episodes": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_way: int = 5,
        n_shot: int = 1,
        n_query: int = 15,
        n_episodes: int = 1000,
        random_state=None,
    ) -> None:
        self.n_way = n_way
        self.n_shot = n_shot
        self.n_query = n_query
        self.n_episodes = n_episodes
        self.random_state = random_state

    def split(self, X, y, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (support indices, query indices) for each episode.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Only its length is used.
        y : array-like of shape (n_samples,)
            Class labels; each episode class needs ``n_shot + n_query`` samples.
        groups : ignored

        Yields
        ------
        support : ndarray of shape (n_way * n_shot,)
        query : ndarray of shape (n_way * n_query,)
        """
        validate_parameter_constraints(
            self._parameter_constraints,
            {name: getattr(self, name) for name in self._parameter_constraints},
            caller_name=type(self).__name__,
        )
        if y is None:
            raise ValueError("EpisodicSplit.split needs the class labels y.")
        y = column_or_1d(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}.")
        classes, codes = np.unique(y, return_inverse=True)
        sampler = EpisodeSampler(codes, self.n_way, self.n_shot, self.n_query, classes)
        rng = make_rng(self.random_state)
        for _ in range(self.n_episodes):
            support, query = sampler.sample(rng)
            yield support.ravel(), query.ravel()

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """The number of episodes."""
        return self.n_episodes

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        raise NotImplementedError("EpisodicSplit defines split() directly.")


def mean_confidence_interval(scores, confidence_z: float = 1.96) -> tuple[float, float]:
    """Mean of per-episode scores and the half-width of its 95% interval.

    Parameters
    ----------
    scores : array-like of shape (n_episodes,)
    confidence_z : float, default=1.96
        Normal quantile; 1.96 gives the 95% interval the literature reports.

    Returns
    -------
    mean : float
    half_width : float
        ``confidence_z * std / sqrt(n_episodes)``; report ``mean +- half_width``.

    Examples
    --------
    >>> mean_confidence_interval([0.5, 0.7, 0.6, 0.6])
    (0.6, 0.0692...)
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1 or len(scores) < 2:
        raise ValueError("scores must be a 1-D array of at least 2 episodes.")
    return float(scores.mean()), float(
        confidence_z * scores.std() / np.sqrt(len(scores))
    )


def _episode_scores(estimator, X, y, episodes) -> list[float]:
    """Accuracy of a clone of ``estimator`` fitted on each episode's support
    set, as :func:`~sklearn.model_selection.cross_val_score` computes it."""
    scores = []
    for support, query in episodes:
        model = clone(estimator).fit(
            _safe_indexing(X, support), _safe_indexing(y, support)
        )
        scores.append(model.score(_safe_indexing(X, query), _safe_indexing(y, query)))
    return scores


def episodic_score(
    estimator, X, y, cv: EpisodicSplit, n_jobs=None
) -> tuple[float, float]:
    """Few-shot accuracy over the episodes of ``cv``, with its 95% interval.

    Each episode's score is what
    :func:`sklearn.model_selection.cross_val_score` gives for that split; the
    mean and half-width come from :func:`mean_confidence_interval`. Unlike
    ``cross_val_score``, the episodes are split into one task per parallel
    job, so the estimator (with its fitted encoder) and the data travel once
    per job, not with every batch of episodes: once per worker on a dask
    cluster under ``joblib.parallel_config(backend="dask")``.

    Parameters
    ----------
    estimator : classifier
        Refitted on each episode's support set (a fitted encoder stays frozen).
    X, y : array-like
        Samples and labels of the evaluation classes.
    cv : EpisodicSplit
    n_jobs : int, default=None
        Parallel jobs, in joblib's active backend (loky processes, or the
        threads of a dask cluster's workers).

    Returns
    -------
    mean, half_width : float
    """
    episodes = list(cv.split(X, y))
    n_tasks = max(1, min(effective_n_jobs(n_jobs), len(episodes)))
    chunks = Parallel(n_jobs=n_jobs)(
        delayed(_episode_scores)(estimator, X, y, episodes[task::n_tasks])
        for task in range(n_tasks)
    )
    # Task t scored episodes t, t + n_tasks, ...: put them back in order.
    scores = np.empty(len(episodes))
    for task, chunk in enumerate(chunks):
        scores[task::n_tasks] = chunk
    return mean_confidence_interval(scores)
