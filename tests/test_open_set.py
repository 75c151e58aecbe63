"""Open-set rejection: score_samples, the leave-one-out threshold, unknown_label."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.open_set import leave_one_out_distances, reject_labels
from sklearn_protonet.prototypes import class_sums


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
    sums, totals = class_sums(metric, embeddings, codes, 3, weights)
    loo = leave_one_out_distances(metric, embeddings, codes, sums, totals, weights)
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
    sums, totals = class_sums(
        "sqeuclidean", torch.from_numpy(X), torch.tensor([0, 0, 1]), 2
    )
    loo = leave_one_out_distances(
        "sqeuclidean", torch.from_numpy(X), torch.tensor([0, 0, 1]), sums, totals
    )
    np.testing.assert_allclose(loo.numpy(), [1.0, 1.0])


def test_rejection_accepts_known_and_rejects_far_queries():
    centres, X, y = _clusters(shots=8)
    clf = PrototypicalClassifier(unknown_label=-1, rejection_quantile=1.0).fit(X, y)
    rng = np.random.default_rng(3)
    known = centres[[0, 1, 2]] + 0.1 * rng.normal(size=(3, 4))
    unknown = np.array([[-5.0, -5.0, 0, 5.0], [0, 0, 0, -6.0]])
    np.testing.assert_array_equal(clf.predict(known), [0, 1, 2])
    np.testing.assert_array_equal(clf.predict(unknown), [-1, -1])
    # predict_proba ignores the reject option.
    plain = PrototypicalClassifier().fit(X, y)
    np.testing.assert_array_equal(
        clf.predict_proba(unknown), plain.predict_proba(unknown)
    )
    assert clf.threshold_ > 0


def test_threshold_is_the_quantile_of_the_leave_one_out_distances():
    _, X, y = _clusters(shots=4)
    clf = PrototypicalClassifier(unknown_label="?", rejection_quantile=0.5)
    clf.fit(X, y)
    embeddings, codes = torch.from_numpy(X), torch.from_numpy(y)
    sums, totals = class_sums("sqeuclidean", embeddings, codes, 3)
    loo = leave_one_out_distances("sqeuclidean", embeddings, codes, sums, totals)
    assert clf.threshold_ == pytest.approx(float(np.median(loo.numpy())))
    # The quantile is the share of support rows accepted by leave-one-out.
    assert (loo.numpy() <= clf.threshold_).mean() >= 0.5


@pytest.mark.parametrize(
    "labels, unknown, expected",
    [
        (np.array([1, 2]), -1, np.array([1, -1])),
        (np.array(["a", "b"]), "unknown", np.array(["a", "unknown"])),
        (np.array([1, 2]), "unknown", np.array([1, "unknown"], dtype=object)),
    ],
)
def test_rejected_labels_keep_both_kinds(labels, unknown, expected):
    out = reject_labels(labels, np.array([False, True]), unknown)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype.kind == expected.dtype.kind
    # The same dtype when nothing is rejected.
    assert reject_labels(labels, np.array([False, False]), unknown).dtype == out.dtype


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
