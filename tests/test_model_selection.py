"""EpisodicSplit and the confidence interval: the paper's protocol in sklearn."""

import warnings

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import NearestCentroid

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.model_selection import (
    EpisodicSplit,
    episodic_score,
    mean_confidence_interval,
)


def test_episodes_have_the_requested_shape():
    y = np.repeat(np.array(list("abcdefgh")), 20)
    X = np.zeros((len(y), 2))
    cv = EpisodicSplit(n_way=5, n_shot=3, n_query=4, n_episodes=50, random_state=0)
    assert cv.get_n_splits() == 50
    episodes = list(cv.split(X, y))
    assert len(episodes) == 50
    for support, query in episodes:
        assert not set(support) & set(query)
        support_classes, counts = np.unique(y[support], return_counts=True)
        assert len(support_classes) == 5 and (counts == 3).all()
        query_classes, counts = np.unique(y[query], return_counts=True)
        assert (query_classes == support_classes).all() and (counts == 4).all()
    # Every class and sample shows up over many episodes.
    assert len(np.unique(np.concatenate([s for s, _ in episodes]))) > 100


def test_integer_random_state_repeats_episodes():
    y = np.repeat(np.arange(10), 5)
    X = np.zeros((50, 1))
    first = list(EpisodicSplit(3, 1, 2, 5, random_state=1).split(X, y))
    second = list(EpisodicSplit(3, 1, 2, 5, random_state=1).split(X, y))
    other = list(EpisodicSplit(3, 1, 2, 5, random_state=2).split(X, y))
    assert all(
        (a[0] == b[0]).all() and (a[1] == b[1]).all()
        for a, b in zip(first, second, strict=True)
    )
    assert any((a[0] != b[0]).any() for a, b in zip(first, other, strict=True))


def test_mean_confidence_interval():
    scores = np.array([0.5, 0.7, 0.6, 0.6])
    mean, half = mean_confidence_interval(scores)
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(1.96 * scores.std() / 2)
    with pytest.raises(ValueError, match="at least 2 episodes"):
        mean_confidence_interval([0.5])


def test_cross_val_score_is_the_few_shot_protocol(fitted_trainer, digits):
    X, y = digits["X_novel"], digits["y_novel"]
    cv = EpisodicSplit(5, 5, 15, n_episodes=30, random_state=0)
    scores = cross_val_score(PrototypicalClassifier(fitted_trainer), X, y, cv=cv)
    assert scores.shape == (30,)
    mean, half = episodic_score(PrototypicalClassifier(fitted_trainer), X, y, cv)
    assert mean == pytest.approx(scores.mean())
    assert 0 < half < 0.1
    # The same episodes reach other estimators: a side-by-side comparison.
    with warnings.catch_warnings():  # NearestCentroid on constant pixels
        warnings.simplefilter("ignore", UserWarning)
        baseline = cross_val_score(NearestCentroid(), X, y, cv=cv)
    assert baseline.shape == (30,)
