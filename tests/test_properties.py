"""Properties of the prototype rule, checked on random support sets (hypothesis).

Features are small integers, so sums and means of the identity encoder are
exact in float64: a property that holds in exact arithmetic holds here to
the last bit, and exact ties (which ``argmin`` breaks by position) are
handled explicitly rather than by luck.
"""

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.neighbors import NearestCentroid

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet.modules import MLP

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def support_sets(draw, max_classes: int = 5, max_shots: int = 4, max_dim: int = 4):
    """``(X, y, queries)``: 2-5 classes of 1-4 integer-valued examples."""
    n_classes = draw(st.integers(2, max_classes))
    shots = draw(
        st.lists(st.integers(1, max_shots), min_size=n_classes, max_size=n_classes)
    )
    dim = draw(st.integers(1, max_dim))
    y = np.repeat(np.arange(n_classes), shots)
    values = st.integers(-5, 5).map(float)
    X = draw(arrays(np.float64, (len(y), dim), elements=values))
    queries = draw(arrays(np.float64, (draw(st.integers(1, 12)), dim), elements=values))
    return X, y, queries


def _margin(clf, queries) -> np.ndarray:
    """Gap between the nearest and second-nearest prototype of each query."""
    distances = np.sort(-clf.decision_function(queries).reshape(len(queries), -1), 1)
    if distances.shape[1] == 1:  # two classes: the decision is a difference
        return np.abs(distances[:, 0])
    return distances[:, 1] - distances[:, 0]


@SETTINGS
@given(data=support_sets(), seed=st.integers(0, 2**16))
def test_predictions_do_not_depend_on_support_order(data, seed):
    X, y, queries = data
    order = np.random.default_rng(seed).permutation(len(y))
    clf = PrototypicalClassifier().fit(X, y)
    shuffled = PrototypicalClassifier().fit(X[order], y[order])
    np.testing.assert_array_equal(clf.prototypes_, shuffled.prototypes_)
    np.testing.assert_array_equal(clf.predict(queries), shuffled.predict(queries))
    np.testing.assert_array_equal(
        clf.predict_proba(queries), shuffled.predict_proba(queries)
    )


@SETTINGS
@given(data=support_sets(max_shots=3, max_dim=3), seed=st.integers(0, 2**16))
def test_module_encoder_predictions_do_not_depend_on_support_order(data, seed):
    X, y, queries = data
    torch.manual_seed(seed)
    encoder = MLP(in_features=X.shape[1], hidden_sizes=(8,), out_features=4)
    order = np.random.default_rng(seed).permutation(len(y))
    clf = PrototypicalClassifier(encoder).fit(X, y)
    shuffled = PrototypicalClassifier(encoder).fit(X[order], y[order])
    # float32 embeddings: the summation order of a class mean shows in the
    # last bits only.
    np.testing.assert_allclose(clf.prototypes_, shuffled.prototypes_, atol=1e-6)
    clear = _margin(clf, queries) > 1e-4
    np.testing.assert_array_equal(
        clf.predict(queries)[clear], shuffled.predict(queries)[clear]
    )


@SETTINGS
@given(data=support_sets(), seed=st.integers(0, 2**16))
def test_renaming_labels_renames_predictions(data, seed):
    X, y, queries = data
    n_classes = y.max() + 1
    # A bijection onto strings, in an order unrelated to the original one.
    names = np.array(
        [f"class-{i}" for i in np.random.default_rng(seed).permutation(99)]
    )
    rename = names[:n_classes]
    clf = PrototypicalClassifier().fit(X, y)
    renamed = PrototypicalClassifier().fit(X, rename[y])
    # Exact ties go to the first class in ``classes_`` order, which renaming
    # changes: compare the queries with a unique nearest prototype.
    unique = _margin(clf, queries) > 0
    np.testing.assert_array_equal(
        rename[clf.predict(queries)][unique], renamed.predict(queries)[unique]
    )
    # The probabilities are the same columns, permuted.
    columns = np.searchsorted(renamed.classes_, rename[clf.classes_])
    np.testing.assert_allclose(
        clf.predict_proba(queries), renamed.predict_proba(queries)[:, columns]
    )


@SETTINGS
@given(
    data=support_sets(),
    weights=st.lists(st.floats(0.1, 10.0), min_size=20, max_size=20),
)
def test_prototypes_are_weighted_class_means(data, weights):
    X, y, _ = data
    sample_weight = np.array(weights[: len(y)] + [1.0] * (len(y) - len(weights)))
    clf = PrototypicalClassifier().fit(X, y, sample_weight=sample_weight)
    expected = np.stack(
        [
            np.average(X[y == c], axis=0, weights=sample_weight[y == c])
            for c in clf.classes_
        ]
    )
    np.testing.assert_allclose(clf.prototypes_, expected, rtol=1e-12, atol=1e-12)
    unweighted = PrototypicalClassifier().fit(X, y)
    means = np.stack([X[y == c].mean(0) for c in unweighted.classes_])
    np.testing.assert_allclose(unweighted.prototypes_, means, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(data=support_sets(max_shots=3, max_dim=3), seed=st.integers(0, 2**16))
def test_module_prototypes_are_class_means_of_the_embeddings(data, seed):
    X, y, _ = data
    torch.manual_seed(seed)
    encoder = MLP(in_features=X.shape[1], hidden_sizes=(8,), out_features=4)
    clf = PrototypicalClassifier(encoder).fit(X, y)
    embeddings = clf.transform(X).astype(np.float64)
    means = np.stack([embeddings[y == c].mean(0) for c in clf.classes_])
    np.testing.assert_allclose(clf.prototypes_, means, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(
    data=support_sets(),
    temperature=st.floats(0.1, 10.0),
    metric=st.sampled_from(["sqeuclidean", "euclidean", "cosine"]),
)
def test_probabilities_sum_to_one_and_argmax_is_predict(data, temperature, metric):
    X, y, queries = data
    clf = PrototypicalClassifier(metric=metric, temperature=temperature).fit(X, y)
    proba = clf.predict_proba(queries)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=0, atol=1e-12)
    assert (proba >= 0).all()
    # Equal probabilities can only come from (numerically) equal distances,
    # where both rules take the first class.
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(queries))
    np.testing.assert_allclose(
        np.exp(clf.predict_log_proba(queries)), proba, atol=1e-12
    )


@SETTINGS
@given(data=support_sets())
def test_identity_encoder_equals_nearest_centroid(data):
    X, y, queries = data
    assume(np.ptp(X, axis=0).max() > 0)  # NearestCentroid refuses constant X
    ours = PrototypicalClassifier().fit(X, y)
    theirs = NearestCentroid().fit(X, y)
    np.testing.assert_allclose(ours.prototypes_, theirs.centroids_, rtol=1e-12)
    # Both take the first class on ties, but compute distances with different
    # rounding: compare where the nearest centroid is clearly unique.
    clear = _margin(ours, queries) > 1e-9
    np.testing.assert_array_equal(
        ours.predict(queries)[clear], theirs.predict(queries)[clear]
    )
