"""The support state: one object for the prototypes and what extends them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet._geometry import get_metric
from sklearn_protonet._support import SupportState

RNG = np.random.default_rng(0)


def _state(X, y, metric="sqeuclidean", normalization=None):
    return SupportState.from_support(
        torch.as_tensor(X),
        np.asarray(y),
        int(np.max(y)) + 1,
        metric=get_metric(metric),
        normalization=normalization,
    )


@pytest.mark.parametrize("normalization", [None, "l2"])
def test_add_equals_one_state_of_all_rows(normalization):
    X, y = RNG.normal(size=(20, 3)), np.arange(20) % 4
    whole = _state(X, y, normalization=normalization)
    part = _state(X[:12], y[:12], normalization=normalization)
    grown = part.add(torch.as_tensor(X[12:]), y[12:], 4, np.arange(4))
    np.testing.assert_allclose(grown.prototypes, whole.prototypes, rtol=1e-12)


def test_unlabeled_rows_count_in_the_mean_only():
    X, y = RNG.normal(size=(10, 3)), np.r_[[0, 0, 1, 1], [-1] * 6]
    state = _state(X, y, normalization="cl2n")
    np.testing.assert_allclose(state.mean, X.mean(0))
    assert state.prototypes.shape == (2, 3)


def test_round_trip_through_plain_data():
    X, y = RNG.normal(size=(12, 3)), np.arange(12) % 3
    state = _state(X, y, normalization="cl2n")
    again = SupportState.from_dict(state.to_dict())
    for field in ("prototypes", "sums", "totals", "mean"):
        np.testing.assert_array_equal(getattr(again, field), getattr(state, field))
    assert again.metric.name == state.metric.name


@pytest.mark.parametrize(
    "tamper, match",
    [
        ({"prototype_sums": np.zeros((2, 3))}, "prototype_sums must be float64"),
        ({"prototypes": np.zeros((3, 3), np.float32)}, "prototypes must be float64"),
        ({"embedding_mean": None}, "embedding_mean disagree"),
        ({"prototype_totals": -np.ones(3)}, "must not be negative"),
        ({"threshold": -1.0}, "finite distance"),
        ({"metric": "mahalanobis"}, "needs precisions"),
    ],
)
def test_inconsistent_states_are_refused_naming_the_field(tamper, match):
    X, y = RNG.normal(size=(12, 3)), np.arange(12) % 3
    data = _state(X, y, normalization="cl2n").to_dict()
    data.update(tamper)
    with pytest.raises(ValueError, match=match):
        SupportState.from_dict(data)


def test_a_pickled_classifier_with_swapped_prototypes_is_refused():
    import pickle

    X, y = RNG.normal(size=(12, 3)), np.arange(12) % 3
    clf = PrototypicalClassifier().fit(X, y)
    state = clf.__getstate__()
    state["_fitted_data"]["classes"] = np.array([0, 1])  # 3 prototypes
    tampered = PrototypicalClassifier.__new__(PrototypicalClassifier)
    with pytest.raises(ValueError, match="3 prototypes for classes"):
        tampered.__setstate__(state)
    assert pickle.loads(pickle.dumps(clf)).predict(X).shape == (12,)
