"""Prototype estimation: partial_fit's running sums and unlabeled rows in the
classifier (the refinement itself: tests/test_refinement.py)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_protonet import PrototypicalClassifier
from sklearn_protonet._labels import unlabeled_rows
from sklearn_protonet.covariance import GaussianEncoder
from sklearn_protonet.modules import MLP

from .test_refinement import _blobs

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True)
DIM = 6


def _encoder(kind: str, metric: str, fitted_trainer):
    if kind == "identity":
        return None
    if kind == "trainer":
        return fitted_trainer  # a fitted EpisodicTrainer on 64 features
    torch.manual_seed(0)
    module = MLP(in_features=DIM, hidden_sizes=(8,), out_features=4)
    if metric == "gaussian":
        module = GaussianEncoder(module, embedding_dim=4)
        torch.nn.init.normal_(module.head.weight)  # precisions that vary
    return module


def _data(kind: str, metric: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    dim = 64 if kind == "trainer" else DIM
    X = rng.normal(size=(n, dim))
    if kind == "identity" and metric == "gaussian":
        X[:, dim // 2 :] = 0.5 + rng.random((n, dim - dim // 2))  # precisions > 0
    return X


@pytest.mark.parametrize("kind", ["identity", "module", "trainer"])
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine", "gaussian"])
@SETTINGS
@given(
    n_classes=st.integers(2, 5),
    n_calls=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    weighted=st.booleans(),
)
def test_partial_fit_sequence_equals_one_fit_on_the_union(
    kind, metric, fitted_trainer, n_classes, n_calls, seed, weighted
):
    if kind == "trainer" and metric == "gaussian":
        return  # the trainer's MLP does not output precisions
    rng = np.random.default_rng(seed)
    n = 3 * n_classes + n_calls
    X = _data(kind, metric, n, seed)
    # Every class has an example; the first batch holds two classes (as fit).
    y = np.concatenate(
        [np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)]
    )
    order = np.concatenate([[0, 1], 2 + rng.permutation(n - 2)])
    X, y = X[order], y[order]
    weights = rng.uniform(0.1, 2.0, n) if weighted else None
    encoder = _encoder(kind, metric, fitted_trainer)
    whole = PrototypicalClassifier(encoder, metric=metric).fit(X, y, weights)
    online = PrototypicalClassifier(encoder, metric=metric)
    cuts = np.sort(rng.choice(np.arange(2, n), n_calls - 1, replace=False))
    for rows in np.split(np.arange(n), cuts):
        rows_weights = None if weights is None else weights[rows]
        online.partial_fit(X[rows], y[rows], sample_weight=rows_weights)
    np.testing.assert_array_equal(online.classes_, whole.classes_)
    np.testing.assert_allclose(
        online.prototypes_, whole.prototypes_, rtol=1e-5, atol=1e-6
    )
    if metric == "gaussian":
        np.testing.assert_allclose(
            online.precisions_, whole.precisions_, rtol=1e-5, atol=1e-6
        )
    queries = X[:5]
    np.testing.assert_allclose(
        online.predict_proba(queries), whole.predict_proba(queries), atol=1e-5
    )


def test_partial_fit_inserts_new_classes_in_sorted_order():
    X = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 5.0]])
    clf = PrototypicalClassifier().partial_fit(X[:2], ["b", "d"])
    assert clf.predict_proba(X).shape == (3, 2)
    clf.partial_fit(X[2:], ["a"])
    np.testing.assert_array_equal(clf.classes_, ["a", "b", "d"])
    np.testing.assert_array_equal(clf.predict(X), ["b", "d", "a"])
    np.testing.assert_array_equal(clf.prototypes_, X[[2, 0, 1]])
    assert clf.predict_proba(X).shape == (3, 3)


def test_fit_resets_partial_fit():
    X = np.array([[0.0], [1.0], [5.0], [6.0]])
    clf = PrototypicalClassifier().partial_fit(X[:2], [0, 1]).partial_fit(X[2:], [2, 3])
    clf.fit(X[:2], [0, 1])
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    clf.partial_fit(X[2:], [0, 0])
    np.testing.assert_allclose(clf.prototypes_, [[11 / 3], [1.0]])


def test_partial_fit_cost_is_the_new_rows():
    """Later calls embed only their own rows: the encoder sees them alone."""
    seen = []
    encoder = MLP(in_features=3, out_features=2)
    encoder.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    clf = PrototypicalClassifier(encoder)
    rng = np.random.default_rng(0)
    clf.partial_fit(rng.normal(size=(50, 3)), np.arange(50) % 5)
    seen.clear()
    clf.partial_fit(rng.normal(size=(2, 3)), [7, 7])
    assert seen == [2]
    assert len(clf.classes_) == 6


def test_partial_fit_cl2n_keeps_the_first_mean():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), np.arange(8) % 2
    clf = PrototypicalClassifier(normalization="cl2n").partial_fit(X[:4], y[:4])
    mean = clf.embedding_mean_.copy()
    clf.partial_fit(X[4:] + 10, y[4:])
    np.testing.assert_array_equal(clf.embedding_mean_, mean)
    np.testing.assert_allclose(mean, X[:4].mean(0))


def test_partial_fit_adapts_only_on_the_first_call(digits):
    from sklearn_protonet.modules import Conv4

    images = digits["X_novel"][:6].reshape(6, 1, 8, 8)
    encoder = Conv4(input_shape=(1, 8, 8), n_blocks=2)
    clf = PrototypicalClassifier(encoder, fine_tune_steps=2, random_state=0)
    clf.partial_fit(images[:4], [0, 1, 0, 1])
    adapted = clf.encoder_
    clf.partial_fit(images[4:], [2, 2])
    assert clf.encoder_ is adapted


def test_no_partial_fit_with_mahalanobis():
    clf = PrototypicalClassifier(metric="mahalanobis")
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError) as error:
        clf.partial_fit([[0.0], [1.0]], [0, 1])
    assert "metric='mahalanobis'" in str(error.value.__cause__)
    assert hasattr(clf.set_params(metric="gaussian"), "partial_fit")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"refinement_steps": 2}, "refinement_steps=2"),
        ({"unknown_label": -1}, "unknown_label=-1"),
    ],
)
def test_partial_fit_refuses_what_needs_the_whole_support_set(params, match):
    clf = PrototypicalClassifier(**params)
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError) as error:
        clf.partial_fit([[0.0], [1.0]], [0, 1])
    assert match in str(error.value.__cause__)


def test_partial_fit_int8_and_float32_agree():
    torch.manual_seed(0)
    module = MLP(in_features=6, hidden_sizes=(16,), out_features=8)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 6)).astype(np.float32), np.arange(40) % 4
    clf = PrototypicalClassifier(module, inference_dtype="int8")
    clf.partial_fit(X[:20], y[:20]).partial_fit(X[20:], y[20:])
    reference = PrototypicalClassifier(module).fit(X, y)
    assert clf.inference_module_ is not None
    assert (clf.predict(X) == reference.predict(X)).mean() > 0.9


# -- semi-supervised ----------------------------------------------------------


def test_unlabeled_marker_numbers_and_strings():
    np.testing.assert_array_equal(
        unlabeled_rows(np.array([0, -1, 2]), -1, active=True), [0, 1, 0]
    )
    np.testing.assert_array_equal(
        unlabeled_rows(np.array(["a", "-1"]), -1, active=True), [0, 1]
    )
    np.testing.assert_array_equal(
        unlabeled_rows(np.array(["a", -1, None], dtype=object), -1, active=True),
        [0, 1, 0],
    )


def test_refinement_steps_zero_keeps_minus_one_a_class():
    X = np.array([[0.0], [1.0], [9.0]])
    clf = PrototypicalClassifier().fit(X, [-1, 1, 1])
    np.testing.assert_array_equal(clf.classes_, [-1, 1])


def test_string_labels_mark_unlabeled_rows_with_minus_one_string():
    _, X_labeled, X_unlabeled = _blobs()
    X = np.vstack([X_labeled, X_unlabeled])
    y = np.r_[["cat", "dog"], ["-1"] * len(X_unlabeled)]
    clf = PrototypicalClassifier(refinement_steps=1).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog"])


def test_unlabeled_rows_join_the_cl2n_mean():
    _, X_labeled, X_unlabeled = _blobs()
    X = np.vstack([X_labeled, X_unlabeled])
    y = np.r_[[0, 1], [-1] * len(X_unlabeled)]
    clf = PrototypicalClassifier(normalization="cl2n", refinement_steps=1).fit(X, y)
    np.testing.assert_allclose(clf.embedding_mean_, X.mean(0))
    np.testing.assert_array_equal(clf.classes_, [0, 1])


def test_unlabeled_rows_with_fine_tuning_and_rejection(digits):
    from sklearn_protonet.modules import Conv4

    images = digits["X_novel"][:12].reshape(12, 1, 8, 8)
    y = np.r_[[0, 0, 1, 1, 2, 2], [-1] * 6]
    encoder = Conv4(input_shape=(1, 8, 8), n_blocks=2)
    clf = PrototypicalClassifier(
        encoder, fine_tune_steps=2, refinement_steps=2, unknown_label=9, random_state=0
    ).fit(images, y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2, 9])  # unknown: last
    assert clf.threshold_ is not None
    assert set(clf.predict(images)) <= {0, 1, 2, 9}


def test_sparse_support_sets_take_every_prototype_path():
    # Sparse rows (TF-IDF, one-hot): exact sparse arithmetic for plain fits,
    # dense support rows where unlabeled rows or the threshold need them;
    # every path gives the prototypes and labels of dense input.
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    X = rng.random((40, 6))
    X[X < 0.5] = 0
    y = np.repeat([0, 1, 2, 3], 10)
    csr = sparse.csr_matrix(X)
    dense = PrototypicalClassifier().fit(X[:20], y[:20]).partial_fit(X[20:], y[20:])
    grown = PrototypicalClassifier().fit(csr[:20], y[:20]).partial_fit(csr[20:], y[20:])
    np.testing.assert_allclose(grown.prototypes_, dense.prototypes_)
    np.testing.assert_array_equal(grown.predict(csr), dense.predict(X))
    unlabeled = np.where(np.arange(40) % 5 == 0, -1, y)
    for params, labels in (
        ({"unknown_label": -5}, y),
        ({"refinement_steps": 2}, unlabeled),
    ):
        on_dense = PrototypicalClassifier(**params).fit(X, labels)
        on_sparse = PrototypicalClassifier(**params).fit(csr, labels)
        np.testing.assert_allclose(on_sparse.prototypes_, on_dense.prototypes_)
        np.testing.assert_array_equal(on_sparse.predict(csr), on_dense.predict(X))
