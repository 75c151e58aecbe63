"""Open-set rejection: score_samples, the leave-one-out threshold, unknown_label."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet._geometry import get_metric
from sklearn_protonet._support import SupportState


def _leave_one_out(metric, embeddings, codes, n_classes, weights=None):
    """The support state's leave-one-out distances of labeled rows."""
    state = SupportState.from_support(
        embeddings,
        codes.numpy(),
        n_classes,
        None if weights is None else weights.numpy(),
        metric=get_metric(metric),
        normalization=None,
    )
    return state._leave_one_out(
        embeddings, codes.numpy(), None if weights is None else weights.numpy()
    )


def _clusters(seed=0, shots=5, n_classes=3, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = 5.0 * np.eye(n_classes, 4)
    y = np.repeat(np.arange(n_classes), shots)
    X = centres[y] + spread * rng.normal(size=(len(y), 4))
    return centres, X, y


def test_score_samples_is_minus_the_nearest_distance():
    _, X, y = _clusters()
    clf = PrototypicalClassifier().fit(X, y)
    queries = np.random.default_rng(1).normal(size=(7, 4))
    distances = ((queries[:, None] - clf.prototypes_[None]) ** 2).sum(-1)
    np.testing.assert_allclose(clf.score_samples(queries), -distances.min(1))


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
def test_leave_one_out_distances_match_refitting_without_the_row(metric):
    _, X, y = _clusters(shots=3)
    X[0] += 1.0
    embeddings, codes = torch.from_numpy(X), torch.from_numpy(y)
    weights = torch.linspace(0.5, 2.0, len(y), dtype=torch.float64)
    loo = _leave_one_out(metric, embeddings, codes, 3, weights)
    expected = []
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        clf = PrototypicalClassifier(metric=metric).fit(
            X[rest], y[rest], sample_weight=weights.numpy()[rest]
        )
        expected.append(-clf.decision_function(X[i : i + 1])[0, y[i]])
    np.testing.assert_allclose(loo.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_single_example_classes_have_no_leave_one_out_distance():
    X = np.array([[0.0], [1.0], [5.0]])
    loo = _leave_one_out("sqeuclidean", torch.from_numpy(X), torch.tensor([0, 0, 1]), 2)
    np.testing.assert_allclose(loo.numpy(), [1.0, 1.0])


def test_rejection_accepts_known_and_rejects_far_queries():
    centres, X, y = _clusters(shots=8)
    clf = PrototypicalClassifier(unknown_label=-1, rejection_quantile=1.0).fit(X, y)
    rng = np.random.default_rng(3)
    known = centres[[0, 1, 2]] + 0.1 * rng.normal(size=(3, 4))
    unknown = np.array([[-5.0, -5.0, 0, 5.0], [0, 0, 0, -6.0]])
    np.testing.assert_array_equal(clf.predict(known), [0, 1, 2])
    np.testing.assert_array_equal(clf.predict(unknown), [-1, -1])
    # The unknown label is the last column: a virtual prototype at distance
    # threshold_, so predict_proba's argmax is predict's label, and the known
    # columns keep their ratios.
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2, -1])
    proba = clf.predict_proba(np.r_[known, unknown])
    np.testing.assert_array_equal(
        clf.classes_[proba.argmax(1)], clf.predict(np.r_[known, unknown])
    )
    plain = PrototypicalClassifier().fit(X, y).predict_proba(unknown)
    known_columns = clf.predict_proba(unknown)[:, :3]
    np.testing.assert_allclose(
        known_columns / known_columns.sum(1, keepdims=True), plain, rtol=1e-6
    )
    assert clf.threshold_ > 0


def test_threshold_is_the_quantile_of_the_leave_one_out_distances():
    _, X, y = _clusters(shots=4)
    clf = PrototypicalClassifier(unknown_label=-1, rejection_quantile=0.5)
    clf.fit(X, y)
    embeddings, codes = torch.from_numpy(X), torch.from_numpy(y)
    loo = _leave_one_out("sqeuclidean", embeddings, codes, 3)
    assert clf.threshold_ == pytest.approx(float(np.median(loo.numpy())))
    # The quantile is the share of support rows accepted by leave-one-out.
    assert (loo.numpy() <= clf.threshold_).mean() >= 0.5


@pytest.mark.parametrize(
    "y, unknown, match",
    [
        ([1, 1, 2, 2], "unknown", "must be of the labels' kind"),
        (["a", "a", "b", "b"], -1, "must be of the labels' kind"),
        ([1, 1, 2, 2], 1, "is also a class label"),
        ([1, 1, 2, 2], 0.5, "must be a whole number"),
    ],
)
def test_unknown_label_is_checked_against_y(y, unknown, match):
    X = np.array([[0.0], [0.1], [5.0], [5.1]])
    with pytest.raises(ValueError, match=match):
        PrototypicalClassifier(unknown_label=unknown).fit(X, y)


@pytest.mark.parametrize(
    "y, unknown", [([1, 1, 2, 2], -1), (["a", "a", "b", "b"], "unknown")]
)
def test_rejected_labels_keep_the_labels_dtype(y, unknown):
    X = np.array([[0.0], [0.1], [5.0], [5.1]])
    clf = PrototypicalClassifier(unknown_label=unknown).fit(X, y)
    labels = clf.predict([[0.05], [100.0]])
    assert labels[1] == unknown and labels.dtype.kind == np.asarray(y).dtype.kind
    assert clf.score(X, y) == 1.0  # no mixed types to sort


@pytest.mark.parametrize("metric", ["mahalanobis", "gaussian"])
def test_rejection_with_variance_metrics(metric):
    centres, X, y = _clusters(shots=6)
    if metric == "gaussian":
        X = np.hstack([X, np.ones_like(X)])
    clf = PrototypicalClassifier(metric=metric, unknown_label=-1).fit(X, y)
    far = np.full((1, X.shape[1]), 30.0)
    if metric == "gaussian":
        far[:, 4:] = 1.0
    assert clf.predict(far)[0] == -1
    assert np.isfinite(clf.threshold_)


def test_unknown_label_set_after_fit_asks_to_refit():
    _, X, y = _clusters()
    clf = PrototypicalClassifier().fit(X, y).set_params(unknown_label=-1)
    with pytest.raises(NotFittedError, match="Call fit again"):
        clf.predict(X)


def test_open_set_on_omniglot_features_beats_chance():
    """Embeddings of two well-separated families: unknown rows score lower."""
    rng = np.random.default_rng(0)
    known = rng.normal(size=(5, 16)) * 3
    X = np.repeat(known, 5, 0) + rng.normal(size=(25, 16)) * 0.5
    y = np.repeat(np.arange(5), 5)
    clf = PrototypicalClassifier(unknown_label=-1).fit(X, y)
    queries_known = np.repeat(known, 4, 0) + rng.normal(size=(20, 16)) * 0.5
    queries_unknown = rng.normal(size=(20, 16)) * 3
    assert clf.score_samples(queries_known).min() > np.median(
        clf.score_samples(queries_unknown)
    )
    assert (clf.predict(queries_unknown) == -1).mean() > 0.8
    assert (clf.predict(queries_known) != -1).mean() > 0.8


def test_open_set_benchmark_episodes():
    """benchmarks/open_set.py: unknown classes give queries only."""
    import open_set

    y = np.repeat(np.arange(12), 20)
    for support, labels, query, known in open_set.episodes(y, 5, 4, seed=0):
        assert len(support) == 25 and len(query) == 150 and known.sum() == 75
        assert not set(y[query[~known]]) & set(y[support])
        assert set(y[query[known]]) == set(y[support])
        assert len(np.unique(np.r_[support, query])) == 175
        np.testing.assert_array_equal(np.unique(labels), np.arange(5))
